"""What a question and its filters must be, checked before anything is loaded: one-line ``QueryError`` otherwise."""
from __future__ import annotations

import re
from typing import Mapping, Sequence

from .errors import QueryError

MAX_QUESTION_CHARS = 2000
_LETTER_OR_DIGIT = re.compile(r"[^\W_]", re.UNICODE)


def check_question(text: str | None) -> str:
    """The question stripped, or a one-line ``QueryError``."""
    text = (text or "").strip()
    if not text:
        raise QueryError("the question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise QueryError(f"the question is too long ({len(text):,} characters; at most {MAX_QUESTION_CHARS:,})")
    if not _LETTER_OR_DIGIT.search(text):
        raise QueryError("the question has no words to search for")
    return text


FILTER_KEYS = ("country", "lang", "funder", "year", "source")
YEAR_RANGE = re.compile(r"^\s*(\d{4})\s*(?:(?:-|–|\.\.|to|à)\s*(\d{4}))?\s*$")

Filters = Mapping[str, str | Sequence[str]]
MAX_FILTER_VALUES = 50  # alternatives per filter key
MAX_FILTER_CHARS = 200  # characters per filter value


def parse_filters(filters: Filters | Sequence[str] | None) -> dict[str, tuple[str, ...]]:
    """Normalize ``{"country": "Laos"}`` or ``["country=Laos", ...]``; values of one key are alternatives."""
    if not filters:
        return {}
    if isinstance(filters, str):
        filters = [filters]
    pairs: list[tuple[str, str]] = []
    if isinstance(filters, Mapping):
        for key, value in filters.items():
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int))):
                    raise QueryError(f"bad value {v!r:.60} for filter {key!r:.40}: use a text or a list of texts")
            pairs += [(key, str(v)) for v in values if v is not None and str(v).strip()]
    elif isinstance(filters, (list, tuple)):
        for item in filters:
            key, sep, value = item.partition("=") if isinstance(item, str) else ("", "", "")
            if not sep or not key.strip() or not value.strip():
                raise QueryError(f"malformed filter {item!r}: use key=value, e.g. country=Laos")
            pairs.append((key, value))
    else:
        raise QueryError(f"malformed filters {filters!r:.60}: use key=value texts, e.g. country=Laos")
    out: dict[str, tuple[str, ...]] = {}
    for key, value in pairs:
        if not isinstance(key, str):
            raise QueryError(f"unknown filter {key!r:.40}: use one of {', '.join(FILTER_KEYS)}")
        key = key.strip().lower()
        if key not in FILTER_KEYS:
            raise QueryError(f"unknown filter {key!r}: use one of {', '.join(FILTER_KEYS)}")
        value = str(value).strip()
        if len(value) > MAX_FILTER_CHARS:
            raise QueryError(f"filter {key!r} value too long ({len(value):,} characters; at most {MAX_FILTER_CHARS})")
        if key == "year" and not YEAR_RANGE.match(value):
            raise QueryError(f"bad year filter {value!r}: use 2015 or 2014-2016")
        out[key] = out.get(key, ()) + (value,)
        if len(out[key]) > MAX_FILTER_VALUES:
            raise QueryError(f"too many values for filter {key!r} (at most {MAX_FILTER_VALUES})")
    return out
