"""Numbers, years, dates and amounts of a text, normalised so that "29 110 000 EUR", "29,110,000 EUR" and
"29.11 million euros" compare equal, and "150 millions de dollars" does not equal 150 million euros."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .lexicon import fold

_CURRENCIES = {
    "eur": "EUR", "euro": "EUR", "euros": "EUR", "€": "EUR",
    "usd": "USD", "us$": "USD", "$": "USD", "dollar": "USD", "dollars": "USD",
    "chf": "CHF", "xof": "XOF", "fcfa": "XOF", "cfa": "XOF", "gbp": "GBP", "£": "GBP", "cad": "CAD",
}
_UNITS = {
    "%": "%", "percent": "%", "pourcent": "%", "pour cent": "%",
    "month": "month", "months": "month", "mois": "month", "year": "year", "years": "year", "ans": "year",
    "an": "year", "annees": "year", "week": "week", "weeks": "week", "semaines": "week", "day": "day", "days": "day",
    "jours": "day", "km": "km", "ha": "ha", "hectares": "ha", "kg": "kg", "tonnes": "t", "tons": "t",
}
_SCALES = {"thousand": 1e3, "mille": 1e3, "k": 1e3, "million": 1e6, "millions": 1e6, "m": 1e6, "mn": 1e6,
           "mio": 1e6, "billion": 1e9, "billions": 1e9, "milliard": 1e9, "milliards": 1e9, "bn": 1e9}
_MONTHS = {m: i % 12 + 1 for i, m in enumerate(
    "january february march april may june july august september october november december "
    "janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre".split())}
_SEP = r"[ \u00a0\u202f,.']"
_NUMBER = re.compile(rf"(?<![\w.,])(\d{{1,3}}(?:{_SEP}\d{{3}})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)(?![\d])")
_CURRENCY_WORD = "|".join(sorted((re.escape(k) for k in _CURRENCIES), key=len, reverse=True))
_UNIT_WORD = "|".join(sorted((re.escape(k) for k in _UNITS), key=len, reverse=True))
_SCALE_WORD = "|".join(sorted(_SCALES, key=len, reverse=True))
_AFTER = re.compile(rf"\s*(?:({_SCALE_WORD})\b\.?\s*)?(?:(?:d['’]|de\s+|of\s+)?({_CURRENCY_WORD}|{_UNIT_WORD})"
                    r"(?![a-z]))?", re.I)
_BEFORE = re.compile(rf"({_CURRENCY_WORD})\s*$", re.I)
_DATE = re.compile(r"\b(\d{1,2})[./-](\d{1,2})[./-]((?:19|20)\d\d)\b")


@dataclass(frozen=True)
class Quantity:
    """A number found in a text: its ``value`` (scale words applied), its ``unit`` (a currency code such as "EUR",
    or "%", "month", "year"…; None when it has none) and the ``text`` it was read from."""

    value: float
    unit: str | None
    text: str
    tolerance: float = 0.0


def _value(digits: str) -> tuple[float, int]:
    """The value of "29 110 000", "29,110,000", "29.110.000", "29,11", "29.11" or "1,234.5", and how many decimals
    it is written with."""
    groups = re.split(_SEP, digits)
    if len(groups) == 1:
        return float(digits), 0
    if all(len(g) == 3 for g in groups[1:]):
        return float("".join(groups)), 0
    return float("".join(groups[:-1]) + "." + groups[-1]), len(groups[-1])


def quantities(text: str) -> list[Quantity]:
    """Every number of ``text`` with its unit: amounts, percentages, durations, years, and the day, month and year
    of dates ("31.12.2013", "31 December 2013" and "31 décembre 2013" give the same three numbers)."""
    out: list[Quantity] = []
    folded = fold(text)
    for m in _DATE.finditer(text):
        out += [Quantity(float(m[i]), None, m[0]) for i in (1, 2, 3)]
    covered = [(m.start(), m.end()) for m in _DATE.finditer(text)]
    for m in re.finditer(r"\b(" + "|".join(_MONTHS) + r")\b", folded):
        near = folded[max(0, m.start() - 4): m.end() + 6]
        if re.search(r"\d", near):
            out.append(Quantity(float(_MONTHS[m[1]]), None, text[m.start(): m.end()]))
    for m in _NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in covered):
            continue
        value, decimals = _value(m[1])
        tolerance = 0.0
        after = _AFTER.match(text, m.end())
        scale, unit = (after[1], after[2]) if after else (None, None)
        if scale and (scale.lower() == "m" and not unit and not _BEFORE.search(text[: m.start()])):
            scale = None  # a lone "m" is metres or a typo, not millions
        if scale:
            value *= _SCALES[scale.lower()]
            tolerance = 0.5 * 10.0 ** -decimals * _SCALES[scale.lower()]  # "29.1 million" is rounded
        before = _BEFORE.search(text[max(0, m.start() - 6): m.start()])
        word = (unit or (before[1] if before else "") or "").lower()
        code = _CURRENCIES.get(word) or _UNITS.get(fold(word))
        out.append(Quantity(value, code, (m[0] + (after[0] if after else "")).strip(), tolerance))
    return out


def matches(q: Quantity, found: list[Quantity], passage: str) -> bool:
    """Whether ``q`` is among the quantities ``found`` in ``passage``: the same value (within rounding when ``q``
    is written with fewer digits, e.g. "29.1 million") and, when ``q`` has a unit, the same unit, or no unit next to
    the number but that unit named in the passage (a "Budget (EUR)" column)."""
    named = {(_CURRENCIES.get(w) or _UNITS.get(w)) for w in re.findall(r"[a-z%€$£]+", fold(passage))}
    for p in found:
        if abs(p.value - q.value) > q.tolerance + 1e-9 * max(1.0, abs(q.value)):
            continue
        if q.unit is None or p.unit == q.unit or (p.unit is None and q.unit in named):
            return True
    return False
