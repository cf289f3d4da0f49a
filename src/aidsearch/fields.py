"""Fiche-field answers: a question that asks for a project's budget, funders, duration, dates, office, partner
or country is answered from the fields extracted at indexing, worded in the question's language and cited to
the passage that holds the value."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from .chunk import Sentence, passage_sentences
from .lexicon import ASKED_FIELDS, fold
from .metadata import find_country

FIELDS = ("funders", "budget", "duration_months", "start", "end", "agency", "partner", "country")

_NAMES = {
    "en": {"budget": "Total budget", "funders": "Funding", "duration_months": "Duration", "start": "Start",
           "end": "End", "agency": "Office", "partner": "Partner", "country": "Country",
           "months": "months", "unknown": "amount not given"},
    "fr": {"budget": "Budget total", "funders": "Financement", "duration_months": "Durée", "start": "Début",
           "end": "Fin", "agency": "Bureau", "partner": "Partenaire", "country": "Pays",
           "months": "mois", "unknown": "montant non précisé"},
}
_MONTHS = {"en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                  "November", "December"),
           "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
                  "novembre", "décembre")}


def asked_fields(question: str) -> list[str]:
    """The fiche fields a question asks for, in ``FIELDS`` order ("Who funds it and how much?" → funders)."""
    folded = fold(question)
    asked = [f for f, pattern in ASKED_FIELDS if pattern.search(folded)]
    return [f for f in FIELDS if f in asked]


def format_amount(value: float, currency: str | None, lang: str) -> str:
    """29110000, "EUR" → "29,110,000 EUR" (English) or "29 110 000 EUR" (French)."""
    whole = f"{value:,.0f}" if float(value).is_integer() or value >= 1000 else f"{value:,.2f}"
    if lang == "fr":
        whole = whole.replace(",", "\u202f").replace(".", ",").replace("\u202f", " ")
    return f"{whole} {currency}".strip() if currency else whole


def format_date(iso: str, lang: str) -> str:
    """"2016-01-01" → "1 January 2016" / "1 janvier 2016"; "2014-01" → "January 2014"; "2014" stays."""
    parts = iso.split("-")
    if len(parts) == 1:
        return iso
    month = _MONTHS[lang][int(parts[1]) - 1]
    return f"{month} {parts[0]}" if len(parts) == 2 else f"{int(parts[2])} {month} {parts[0]}"


def render(field: str, meta: dict[str, Any], lang: str) -> tuple[str, list[str]] | None:
    """The field as a line in ``lang`` and the values to look for in the text; None when the document lacks it."""
    names = _NAMES[lang]
    label = names[field]
    sep = " : " if lang == "fr" else ": "
    if field == "budget" and meta.get("budget"):
        value = format_amount(meta["budget"], meta.get("currency"), lang)
        return f"{label}{sep}{value}", [_digits(meta["budget"])]
    if field == "funders" and meta.get("funders"):
        items, needles = [], []
        for f in meta["funders"]:
            if f.get("amount"):
                items.append(f"{f['name']} ({format_amount(f['amount'], f.get('currency'), lang)})")
                needles.append(_digits(f["amount"]))
            else:
                items.append(f["name"])
                needles.append(f["name"])
        return f"{label}{sep}{'; '.join(items)}", needles
    if field == "duration_months" and meta.get("duration_months"):
        return f"{label}{sep}{meta['duration_months']} {names['months']}", [str(meta["duration_months"])]
    if field in ("start", "end") and meta.get(field):
        return f"{label}{sep}{format_date(meta[field], lang)}", [meta[field][:4]]
    if field == "country" and meta.get("country"):
        return f"{label}{sep}{meta['country']}", [_COUNTRY + meta["country"]]
    if field in ("agency", "partner") and meta.get(field):
        return f"{label}{sep}{meta[field]}", [meta[field]]
    return None


def _digits(value: float) -> str:
    return str(int(round(value))) if value >= 1 else str(value)


_SEPARATED = re.compile(r"(?<=\d)[ ,.\u202f\u00a0'’](?=\d{3}\b)")


_COUNTRY = "country:"


def holds(text: str, needle: str) -> bool:
    """Whether ``text`` holds ``needle``: digits compared without thousands separators, countries by any of their
    EN/FR names, other names accent-folded."""
    if needle.startswith(_COUNTRY):
        return find_country(text) == needle[len(_COUNTRY):]
    if needle.isdigit():
        return needle in _SEPARATED.sub("", text)
    return fold(needle) in fold(text)


@dataclass(frozen=True)
class FieldAnswer:
    """Lines worded in the question's language, and for each cited passage the sentences holding the values."""

    lines: tuple[str, ...]
    passage: int
    sentences: tuple[Sentence, ...]


def field_answer(question: str, lang: str, meta: dict[str, Any], passages: Sequence[str]) -> FieldAnswer | None:
    """Answer ``question`` from the fields ``meta`` of one document when it asks for fields that the document
    has and one of its ``passages`` (texts, best first) holds the values; else None."""
    asked = asked_fields(question)
    rendered = [r for r in (render(f, meta, lang) for f in asked) if r is not None]
    if not asked or len(rendered) < len(asked):
        return None
    needles = [n for _, ns in rendered for n in ns]
    for i, text in enumerate(passages):
        sentences = passage_sentences(text)
        chosen: dict[int, Sentence] = {}
        for needle in needles:
            holding = [s for s in sentences if holds(s.text, needle)]
            if not holding:
                break
            shortest = min(holding, key=lambda s: len(s.text))  # the label line rather than a sentence naming it
            chosen[shortest.start] = shortest
        else:
            return FieldAnswer(tuple(line for line, _ in rendered), i, tuple(chosen[k] for k in sorted(chosen)))
    return None
