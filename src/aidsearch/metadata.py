"""Project-fiche metadata: label lines (EN/FR) followed by value lines, parsed into typed fields."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from .lexicon import FICHE_LABELS, LIST_MARKER, fold

__all__ = [
    "extract_metadata",
    "is_label",
    "find_country",
    "normalize_country",
    "parse_amount",
    "parse_date",
    "parse_date_range",
    "parse_duration_months",
    "parse_status",
]

# ---------------------------------------------------------------- amounts

_CURRENCIES: tuple[tuple[str, str], ...] = (
    (r"US\s?\$|USD|US\s+dollars?|dollars?\s+(?:US|américains?)", "USD"),
    (r"CA\$|C\$|CAD|canadian\s+dollars?|dollars?\s+canadiens?", "CAD"),
    (r"EUR|€|euros?", "EUR"),
    (r"XOF|F\.?\s?CFA|FCFA|francs?\s+CFA", "XOF"),
    (r"XAF", "XAF"),
    (r"CHF|swiss\s+francs?|francs?\s+suisses?", "CHF"),
    (r"GBP|£|pounds?\s+sterling", "GBP"),
    (r"JPY|¥", "JPY"),
    (r"SEK|NOK|DKK|AUD|NZD|CNY|INR|ZAR|RWF|BIF|CDF|MAD|TND|LAK|VND|KHR|MNT", ""),
    (r"\$|dollars?", "USD"),
)
_CUR_RE = "|".join(f"(?:{pat})" for pat, _ in _CURRENCIES)
_NUM = r"\d{1,3}(?:[ \u00a0\u202f.,'’]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_SCALE = r"(?:\s*(?:millions?|mio|mn|m|billions?|milliards?|mrd|bn|k|thousand|mille)\b)?"
_MONEY_RE = re.compile(
    rf"(?<![\w$€£])(?P<c1>{_CUR_RE})\s*(?P<n1>{_NUM})(?P<s1>{_SCALE})"
    rf"|(?<![\d.,])(?P<n2>{_NUM})(?P<s2>{_SCALE})\s*(?:d['’]\s*|de\s+)?(?P<c2>{_CUR_RE})(?!\w)",
    re.IGNORECASE,
)
_BARE_NUM_RE = re.compile(rf"(?<![\d.,])(?P<n>{_NUM})(?P<s>{_SCALE})", re.IGNORECASE)
_SCALES = {"k": 1e3, "thousand": 1e3, "mille": 1e3, "m": 1e6, "mn": 1e6, "mio": 1e6, "million": 1e6,
           "millions": 1e6, "bn": 1e9, "billion": 1e9, "billions": 1e9, "milliard": 1e9, "milliards": 1e9,
           "mrd": 1e9}


def _currency_code(token: str) -> str:
    for pat, code in _CURRENCIES:
        if re.fullmatch(pat, token.strip(), re.IGNORECASE):
            return code or token.strip().upper()
    return token.strip().upper()


def _parse_number(num: str, scale: str = "") -> float:
    s = re.sub(r"[ \u00a0\u202f'’]", "", num)
    if "," in s and "." in s:
        dec = "," if s.rfind(",") > s.rfind(".") else "."
        s = s.replace("." if dec == "," else ",", "").replace(dec, ".")
    else:
        for sep in ",.":
            if sep in s:
                parts = s.split(sep)
                thousands = len(parts) > 2 or len(parts[1]) == 3
                s = s.replace(sep, "") if thousands else s.replace(sep, ".")
    return float(s) * _SCALES.get(scale.strip().lower(), 1.0)


def _money_matches(text: str) -> list[tuple[int, int, float, str]]:
    out = []
    for m in _MONEY_RE.finditer(text):
        if m.group("n1"):
            value, cur = _parse_number(m.group("n1"), m.group("s1") or ""), m.group("c1")
        else:
            value, cur = _parse_number(m.group("n2"), m.group("s2") or ""), m.group("c2")
        out.append((m.start(), m.end(), value, _currency_code(cur)))
    return out


def parse_amount(text: str) -> tuple[float, str | None] | None:
    """First amount in ``text`` as (value, ISO currency or None): "US$ 4,000,000", "1,3 million EUR"."""
    found = _money_matches(text)
    if found:
        return found[0][2], found[0][3]
    for m in _BARE_NUM_RE.finditer(text):
        value = _parse_number(m.group("n"), m.group("s") or "")
        if value >= 1000 and not re.fullmatch(r"(?:19|20)\d\d", m.group("n")):
            return value, None
    return None


# ---------------------------------------------------------------- dates

_MONTHS = {
    "january": 1, "jan": 1, "janvier": 1, "janv": 1, "february": 2, "feb": 2, "février": 2, "fevrier": 2,
    "févr": 2, "fév": 2, "fev": 2, "march": 3, "mar": 3, "mars": 3, "april": 4, "apr": 4, "avril": 4,
    "avr": 4, "may": 5, "mai": 5, "june": 6, "jun": 6, "juin": 6, "july": 7, "jul": 7, "juillet": 7,
    "juil": 7, "august": 8, "aug": 8, "août": 8, "aout": 8, "september": 9, "sep": 9, "sept": 9,
    "septembre": 9, "october": 10, "oct": 10, "octobre": 10, "november": 11, "nov": 11, "novembre": 11,
    "december": 12, "dec": 12, "décembre": 12, "decembre": 12, "déc": 12,
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"), "ymd"),
    (re.compile(r"\b(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4})\b"), "dmy"),
    (re.compile(rf"\b(?P<d>\d{{1,2}})(?:er|st|nd|rd|th)?\s+(?P<mn>{_MONTH_RE})\.?,?\s+(?P<y>\d{{4}})\b", re.I), "ymd"),
    (re.compile(rf"\b(?P<mn>{_MONTH_RE})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b", re.I), "ymd"),
    (re.compile(rf"\b(?P<mn>{_MONTH_RE})\.?\s+(?:de\s+|d['’])?(?P<y>\d{{4}})\b", re.I), "ym"),
    (re.compile(r"\b(?P<y>\d{4})[-/](?P<m>\d{1,2})\b(?![-/]\d)"), "ym"),
    (re.compile(r"\b(?P<m>\d{1,2})[./](?P<y>\d{4})\b"), "ym"),
    (re.compile(r"\b(?P<y>(?:19|20)\d{2})\b"), "y"),
)


def parse_date(text: str) -> str | None:
    """First date in ``text`` as ISO "YYYY-MM-DD", "YYYY-MM" or "YYYY"; day-first for "01.02.2016"."""
    for pattern, kind in _DATE_PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
        groups = m.groupdict()
        year = int(groups["y"])
        if "mn" in groups and groups["mn"]:
            month = _MONTHS[groups["mn"].lower()]
        elif groups.get("m"):
            month = int(groups["m"])
        else:
            month = 0
        day = int(groups["d"]) if groups.get("d") else 0
        if kind == "dmy" and month > 12 >= day:
            day, month = month, day
        if not 1900 <= year <= 2100:
            continue
        if kind == "y":
            return f"{year:04d}"
        if not 1 <= month <= 12:
            continue
        if kind == "ym":
            return f"{year:04d}-{month:02d}"
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            continue
    return None


def full_dates(text: str) -> set[str]:
    """Every day-precise date in ``text``, as ISO "YYYY-MM-DD" ("31.12.2028" and "31 décembre 2028" agree)."""
    found = set()
    for pattern, _ in _DATE_PATTERNS[:4]:
        for m in pattern.finditer(text):
            iso = parse_date(m.group())
            if iso and len(iso) == 10:
                found.add(iso)
    return found


_RANGE_SPLIT = re.compile(
    r"\s+[-–—]\s+|\s*[–—]\s*|\s+(?:to|until|till|au|à|jusqu['’]au|jusqu['’]en)\s+", re.IGNORECASE
)


def parse_date_range(text: str) -> tuple[str | None, str | None]:
    """(start, end) of "01.01.2016 - 31.12.2028", "January 2014 - January 2021", "du 1er mars 2015 au ..."."""
    text = re.sub(r"^\s*(?:from|du|de|depuis)\s+", "", text.strip(), flags=re.I)
    m = re.fullmatch(r"((?:19|20)\d{2})\s*[-–—/]\s*((?:19|20)\d{2})", text)
    if m:
        return m.group(1), m.group(2)
    parts = _RANGE_SPLIT.split(text, maxsplit=1)
    if len(parts) == 2:
        return parse_date(parts[0]), parse_date(parts[1])
    return parse_date(text), None


def parse_duration_months(text: str) -> int | None:
    """Months in "84 months", "156 mois", "6 years", "3 ans"."""
    m = re.search(r"(\d+(?:[.,]\d+)?)\s*(months?|mois|years?|yrs?|ans|années?)\b", text, re.I)
    if not m:
        return None
    value = float(m.group(1).replace(",", "."))
    return round(value * (1 if m.group(2).lower().startswith(("mo", "mois")) else 12))


# ---------------------------------------------------------------- status

_STATUS_WORDS: tuple[tuple[str, str], ...] = (
    ("planned", r"plann|pipeline|prepar|préparation|formulat|upcoming|prévu|planifi|à venir|not (?:yet )?started"),
    ("closed", r"\bclos|closed|complet|finish|\bended\b|terminat|termin|achev|fermé|clôtur|clotur|inactive"),
    ("active", r"activ|actif|ongoing|on-going|in progress|en cours|exécution|execution|implementation|"
               r"mise en (?:œuvre|oeuvre)|running|current|\bopen\b"),
)
_STATUS_LINE = re.compile(
    r"(?:project\s+)?(?:active|closed|completed|ongoing|planned|in\s+progress|pipeline)(?:\s+project)?"
    r"|(?:projet\s+)?(?:en\s+exécution|en\s+cours(?:\s+d['’]exécution)?|clôturé|terminé|achevé|actif|planifié"
    r"|en\s+préparation|en\s+formulation)",
    re.I,
)
_STATUS_SENTENCE = re.compile(
    r"\b(?:this|the)\s+project\s+(?:is|was|has\s+been)\s+(?:now\s+)?(?P<en>closed|completed|finished|active|ongoing)"
    r"(?:\s+(?:since|on|in)\s+(?P<d1>[^.]+))?"
    r"|\b(?:ce|le)\s+projet\s+(?:est|a\s+été)\s+(?P<fr>clôturé|cloturé|terminé|achevé|fermé|en\s+cours|actif)"
    r"(?:\s+(?:depuis|le|en)\s+(?:le\s+)?(?P<d2>[^.]+))?",
    re.I,
)


def parse_status(text: str) -> str | None:
    """"active", "closed" or "planned" from EN/FR wording ("En exécution", "Completed", "Clôturé")."""
    low = text.strip().lower()
    for status, pattern in _STATUS_WORDS:
        if re.search(pattern, low):
            return status
    return None


# ---------------------------------------------------------------- countries

_COUNTRIES: dict[str, tuple[str, ...]] = {
    "Laos": ("Laos", "Lao PDR", "Lao P.D.R.", "Lao People's Democratic Republic", "RDP lao", "RDP Lao",
             "République démocratique populaire lao", "Lao"),
    "Vietnam": ("Vietnam", "Viet Nam", "Viêt Nam", "Viêt-Nam"),
    "Cambodia": ("Cambodia", "Cambodge"),
    "Myanmar": ("Myanmar", "Burma", "Birmanie"),
    "Mongolia": ("Mongolia", "Mongolie"),
    "Thailand": ("Thailand", "Thaïlande"),
    "Timor-Leste": ("Timor-Leste", "East Timor", "Timor oriental"),
    "Indonesia": ("Indonesia", "Indonésie"),
    "Philippines": ("Philippines",),
    "Bangladesh": ("Bangladesh",),
    "Nepal": ("Nepal", "Népal"),
    "India": ("India", "Inde"),
    "Pakistan": ("Pakistan",),
    "Afghanistan": ("Afghanistan",),
    "Kosovo": ("Kosovo",),
    "Serbia": ("Serbia", "Serbie"),
    "Montenegro": ("Montenegro", "Monténégro"),
    "Albania": ("Albania", "Albanie"),
    "North Macedonia": ("North Macedonia", "Macédoine du Nord"),
    "Ukraine": ("Ukraine",),
    "Moldova": ("Moldova", "Moldavie"),
    "Palestine": ("Palestine", "Palestinian Territories", "Territoires palestiniens"),
    "Jordan": ("Jordan", "Jordanie"),
    "Lebanon": ("Lebanon", "Liban"),
    "Syria": ("Syria", "Syrie"),
    "Iraq": ("Iraq", "Irak"),
    "Yemen": ("Yemen", "Yémen"),
    "Senegal": ("Senegal", "Sénégal"),
    "Mali": ("Mali",),
    "Burkina Faso": ("Burkina Faso", "Burkina"),
    "Niger": ("Niger",),
    "Nigeria": ("Nigeria", "Nigéria"),
    "Cabo Verde": ("Cabo Verde", "Cape Verde", "Cap-Vert", "Cap Vert"),
    "Benin": ("Benin", "Bénin"),
    "Togo": ("Togo",),
    "Côte d'Ivoire": ("Côte d'Ivoire", "Cote d'Ivoire", "Ivory Coast"),
    "Ghana": ("Ghana",),
    "Guinea": ("Guinea", "Guinée"),
    "Guinea-Bissau": ("Guinea-Bissau", "Guinée-Bissau"),
    "Sierra Leone": ("Sierra Leone",),
    "Liberia": ("Liberia", "Libéria"),
    "Gambia": ("The Gambia", "Gambia", "Gambie"),
    "Mauritania": ("Mauritania", "Mauritanie"),
    "Morocco": ("Morocco", "Maroc"),
    "Tunisia": ("Tunisia", "Tunisie"),
    "Algeria": ("Algeria", "Algérie"),
    "Egypt": ("Egypt", "Égypte", "Egypte"),
    "Chad": ("Chad", "Tchad"),
    "Cameroon": ("Cameroon", "Cameroun"),
    "Central African Republic": ("Central African Republic", "République centrafricaine", "Centrafrique"),
    "Gabon": ("Gabon",),
    "DR Congo": ("DR Congo", "DRC", "RDC", "RD Congo", "Democratic Republic of the Congo",
                 "Democratic Republic of Congo", "République démocratique du Congo", "Congo-Kinshasa"),
    "Republic of the Congo": ("Republic of the Congo", "République du Congo", "Congo-Brazzaville"),
    "Burundi": ("Burundi",),
    "Rwanda": ("Rwanda",),
    "Uganda": ("Uganda", "Ouganda"),
    "Kenya": ("Kenya",),
    "Tanzania": ("Tanzania", "Tanzanie"),
    "Ethiopia": ("Ethiopia", "Éthiopie", "Ethiopie"),
    "Sudan": ("Sudan", "Soudan"),
    "South Sudan": ("South Sudan", "Soudan du Sud"),
    "Somalia": ("Somalia", "Somalie"),
    "Mozambique": ("Mozambique",),
    "Madagascar": ("Madagascar",),
    "Malawi": ("Malawi",),
    "Zambia": ("Zambia", "Zambie"),
    "Zimbabwe": ("Zimbabwe",),
    "Namibia": ("Namibia", "Namibie"),
    "South Africa": ("South Africa", "Afrique du Sud"),
    "Haiti": ("Haiti", "Haïti"),
    "Nicaragua": ("Nicaragua",),
    "El Salvador": ("El Salvador",),
    "Honduras": ("Honduras",),
    "Guatemala": ("Guatemala",),
    "Bolivia": ("Bolivia", "Bolivie"),
    "Peru": ("Peru", "Pérou"),
    "Colombia": ("Colombia", "Colombie"),
    "Ecuador": ("Ecuador",),
}


def _fold(text: str) -> str:
    return fold(text.replace("’", "'")).strip()


_COUNTRY_BY_ALIAS = {_fold(alias): name for name, aliases in _COUNTRIES.items() for alias in aliases}
_COUNTRY_RE = re.compile(
    r"(?<![\w])(" + "|".join(re.escape(a) for a in sorted(_COUNTRY_BY_ALIAS, key=len, reverse=True)) + r")(?![\w])"
)


def normalize_country(value: str) -> str:
    """English name of a country given in EN or FR ("Cambodge" → "Cambodia"); other values unchanged."""
    return _COUNTRY_BY_ALIAS.get(_fold(value).rstrip("."), value.strip())


def find_country(text: str) -> str | None:
    """Most-mentioned country of the built-in list in ``text`` (first mention breaks ties)."""
    counts: dict[str, int] = {}
    for m in _COUNTRY_RE.finditer(_fold(text)):
        name = _COUNTRY_BY_ALIAS[m.group(1)]
        counts[name] = counts.get(name, 0) + 1
    return max(counts, key=lambda n: counts[n]) if counts else None


# ---------------------------------------------------------------- labels

_INLINE_RE = re.compile(r"^(?P<label>[^:|\t]{2,60}?)\s*(?::|\||\t)\s*(?P<value>\S.*)$")


def _strip(line: str) -> str:
    return LIST_MARKER.sub("", line.replace("\u00a0", " ")).strip()


def _label_of(line: str) -> tuple[str, int] | None:
    key = re.sub(r"[\s|\t]+", " ", line.replace("’", "'")).strip().rstrip(":").strip()
    if not key or len(key) > 60:
        return None
    for field, prio, regex in FICHE_LABELS:
        if regex.fullmatch(key):
            return field, prio
    return None


def is_label(line: str) -> bool:
    """True when ``line`` is one of the known project-fiche labels ("Total budget", "Pays", ...)."""
    return _label_of(_strip(line)) is not None


def _is_name_like(line: str, max_words: int) -> bool:
    return 0 < len(line.split()) <= max_words and not line.endswith((".", ":", "?", "!", ";")) and any(
        ch.isalpha() for ch in line
    )


def _parse_text_value(value: str) -> str | None:
    return value if _is_name_like(value, 15) else None


def _parse_country(value: str) -> str | None:
    return normalize_country(value) if _is_name_like(value, 8) else None


def _parse_budget(value: str) -> tuple[float, str | None] | None:
    return parse_amount(value)


def _parse_period(value: str) -> tuple[str | None, str | None] | None:
    start, end = parse_date_range(value)
    return (start, end) if start else None


def _parse_status_value(value: str) -> str | None:
    return parse_status(value) if len(value.split()) <= 8 else None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "country": _parse_country,
    "partner": _parse_text_value,
    "agency": _parse_text_value,
    "period": _parse_period,
    "start": parse_date,
    "end": parse_date,
    "duration_months": parse_duration_months,
    "budget": _parse_budget,
    "status": _parse_status_value,
}


def _parse_funders(lines: list[str], start: int) -> list[dict[str, Any]]:
    """Funder/amount pairs from the lines after a funders label, in either order or inline."""
    tokens: list[tuple[str, Any]] = []
    blank = False
    for raw in lines[start: start + 40]:
        line = _strip(raw)
        if not raw.strip():
            blank = True
            continue
        if not line or line in {"|", "/"}:
            continue
        inline = _INLINE_RE.match(line)
        if _label_of(line) or (inline and _label_of(inline.group("label"))):
            break
        bulleted = bool(LIST_MARKER.match(raw))
        money = _money_matches(line)
        last = tokens[-1][0] if tokens else None
        amount_first = tokens[0][0] == "A" if tokens else False
        if blank and tokens and not (bulleted or (money and last == "N") or (amount_first and last == "A")):
            break
        blank = False
        if money:
            pos = 0
            for s, e, value, cur in money:
                name = line[pos:s].strip(" -–—:|,;")
                if name and _is_name_like(name, 25):
                    tokens.append(("N", name))
                tokens.append(("A", (value, cur)))
                pos = e
            tail = line[pos:].strip(" -–—:|,;")
            if tail and _is_name_like(tail, 25):
                tokens.append(("N", tail))
            continue
        if not _is_name_like(line, 25 if last == "A" else 12):
            break
        tokens.append(("N", line))
    funders: list[dict[str, Any]] = []
    amount_first = bool(tokens) and tokens[0][0] == "A"
    i = 0
    while i < len(tokens):
        kind, val = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if amount_first and kind == "A" and nxt and nxt[0] == "N":
            funders.append({"name": nxt[1], "amount": val[0], "currency": val[1]})
            i += 2
        elif not amount_first and kind == "N":
            if nxt and nxt[0] == "A":
                funders.append({"name": val, "amount": nxt[1][0], "currency": nxt[1][1]})
                i += 2
            else:
                funders.append({"name": val, "amount": None, "currency": None})
                i += 1
        else:
            i += 1
    funders = [f for f in funders if not re.fullmatch(r"(?i)amount|montant|total|donors?|bailleurs?", f["name"])]
    if any(f["amount"] is not None for f in funders):
        while funders and funders[-1]["amount"] is None:
            funders.pop()
    return funders


def _next_value(lines: list[str], i: int) -> str | None:
    """The next non-empty line after ``i`` (within a few lines), unless it is itself a label."""
    for raw in lines[i + 1: i + 6]:
        line = _strip(raw)
        if line:
            return None if _label_of(line) or len(line.split()) > 15 else line
    return None


def extract_metadata(text: str, title: str = "") -> dict[str, Any]:
    """Project-fiche fields of ``text``; absent ones are omitted.

    Keys: country, agency, partner, start, end (ISO, possibly "YYYY-MM"), duration_months, budget,
    currency, funders ([{"name", "amount", "currency"}]), status ("active"/"closed"/"planned"), years.
    ``title`` is searched first when the country has to be guessed from country names.
    """
    lines = text.splitlines()
    found: dict[str, tuple[int, Any]] = {}
    funders: list[dict[str, Any]] = []
    closed_since: str | None = None

    def put(field: str, prio: int, value: Any) -> None:
        if value is not None and (field not in found or prio > found[field][0]):
            found[field] = (prio, value)

    for i, raw in enumerate(lines):
        line = _strip(raw)
        if not line:
            continue
        label = _label_of(line)
        value: str | None = None
        if label:
            if label[0] == "funders":
                funders.extend(_parse_funders(lines, i + 1))
                continue
            value = _next_value(lines, i)
        else:
            m = _INLINE_RE.match(line)
            label = _label_of(m.group("label")) if m else None
            if m and label:
                value = m.group("value").strip()
                if label[0] == "funders":
                    funders.extend(_parse_funders([value], 0))
                    continue
            elif _STATUS_LINE.fullmatch(line.rstrip(".")):
                put("status", 1, parse_status(line))
            else:
                s = _STATUS_SENTENCE.search(line)
                if s:
                    put("status", 1, parse_status(s.group("en") or s.group("fr")))
                    when = s.group("d1") or s.group("d2")
                    closed_since = parse_date(when) if when else closed_since
        if label and value:
            put(label[0], label[1], _PARSERS[label[0]](value))

    meta: dict[str, Any] = {}
    country = found.get("country", (0, None))[1] or find_country(title) or find_country(text)
    if country:
        meta["country"] = country
    for key in ("agency", "partner"):
        if key in found:
            meta[key] = found[key][1]
    start, end = found.get("period", (0, (None, None)))[1]
    start = found["start"][1] if "start" in found else start
    end = found["end"][1] if "end" in found else end
    if end is None and closed_since and found.get("status", (0, ""))[1] == "closed":
        end = closed_since
    if start:
        meta["start"] = start
    if end:
        meta["end"] = end
    if "duration_months" in found:
        meta["duration_months"] = found["duration_months"][1]
    if "budget" in found:
        amount, currency = found["budget"][1]
        meta["budget"] = amount
        if currency:
            meta["currency"] = currency
    if funders:
        unique: dict[str, dict[str, Any]] = {}
        for f in funders:
            unique.setdefault(f["name"].casefold(), f)
        meta["funders"] = list(unique.values())
    if "status" in found:
        meta["status"] = found["status"][1]
    years = [int(d[:4]) for d in (start, end) if d]
    if years:
        lo, hi = min(years), max(years)
        meta["years"] = list(range(lo, hi + 1)) if hi - lo <= 60 else sorted(set(years))
    return meta
