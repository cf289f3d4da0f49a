"""Text cleaning, the same for every format: newlines, spaces and Unicode normalised, mojibake repaired, web
boilerplate and repeated titles removed; and the title guessed from the text when the file names none."""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

from ..lexicon import BULLET, LIST_MARKER
from ..metadata import is_label
from ..types import Page
from .boilerplate import bare, is_boilerplate
from .decode import repair_mojibake

_SPACES = re.compile(r"[\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]|[\x00-\x08\x0b\x0e-\x1f\x7f]")
_ENDS_SENTENCE = re.compile(r"[.!?…][\"'”»)\]]*$")
_BROKEN_WORD = re.compile(r"[^\W\d_]-$")
_NUMBER = re.compile(r"\d{1,3}[.)]?")
_LABELLED = re.compile(r"[A-ZÀ-ÖØ-Þ][^:;,.]{0,40}?\s?:\s")


def _title_key(text: str) -> str:
    text = bare(text).replace("’", "'").replace("‘", "'")
    return re.sub(r"\s+", " ", text).strip(" .:").casefold()


def _title_keys(title: str) -> set[str]:
    key = _title_key(title)
    keys = {key} if key else set()
    for sep in (" | ", " - ", " – ", " — "):
        head, found, _ = key.rpartition(sep)
        if found and len(head.split()) >= 3:
            keys.add(head)
    return keys


def _is_title_candidate(line: str) -> bool:
    if BULLET.match(line) or is_boilerplate(line):
        return False
    text = line.strip()
    words = text.split()
    letters = sum(ch.isalpha() for ch in text)
    visible = sum(not ch.isspace() for ch in text)
    return (
        2 <= len(words) <= 25
        and letters >= 8
        and letters >= 0.6 * visible
        and not text[0].isdigit()
        and not text.endswith((".", ":", ";", ",", "?", "!"))
        and not is_label(text)
    )


def guess_title(text: str) -> str | None:
    """The first heading-like line of ``text`` that is neither boilerplate nor a metadata label."""
    for line in text.splitlines()[:200]:
        if _is_title_candidate(line):
            return re.sub(r"\s+", " ", line.strip().lstrip("#").strip())
    return None


def lead_title(text: str, limit: int = 90) -> str | None:
    """A title made from the first full sentence, cut at a word boundary, for documents without a heading."""
    for line in text.splitlines():
        words = line.split()
        alpha = sum(w.isalpha() for w in words)
        if len(words) >= 8 and alpha >= 0.7 * len(words) and not is_boilerplate(line):
            sentence = re.split(r"(?<=[.!?:;])\s", line.strip(), maxsplit=1)[0].rstrip(".:;")
            return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0] + "…"
    return None


class _Cleaner:
    """Line-level cleaner; remembers whether the title line was already kept (shared across PDF pages)."""

    def __init__(self, title: str | None) -> None:
        self.keys = _title_keys(title) if title else set()
        self.title_seen = False

    def __call__(self, text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
        text = unicodedata.normalize("NFC", repair_mojibake(text))
        text = _INVISIBLE.sub("", _SPACES.sub(" ", text))
        out: list[str] = []
        for line in text.split("\n"):
            line = line.rstrip()
            stripped = line.strip()
            if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
                line = stripped.strip("|").strip()
            if not line.strip():
                out.append("")
                continue
            if is_boilerplate(line):
                continue
            if self.keys and _title_key(line) in self.keys:
                if self.title_seen:
                    continue
                self.title_seen = True
            out.append(line)
        return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def clean_text(text: str, title: str | None = None) -> str:
    """NFC, newline/space normalisation, mojibake repair and rule-based web-boilerplate removal.

    Repeats of the title (given, or guessed from the text) are dropped after the first.
    """
    if title is None:
        title = guess_title(text.replace("\r", "\n"))
    return _Cleaner(title)(text)


def line_width(texts: Sequence[str]) -> int:
    """The width at which ``texts`` were wrapped, in characters: the 90th percentile of their lines of three
    words or more (0 when there are fewer than five)."""
    lengths = sorted(len(line.strip()) for text in texts for line in text.split("\n") if len(line.split()) >= 3)
    return lengths[int(0.9 * (len(lengths) - 1))] if len(lengths) >= 5 else 0


def unwrap(text: str, width: int) -> str:
    """Lines that a layout wrapped (a PDF's) joined back into the line of text they were cut from.

    A line is joined to the one before when that one runs to ``width`` (at least 70 %, 40 characters or more) or
    this one starts in lower case, and that one does not end a sentence; a word cut by a hyphen is joined back.
    Blank lines, list items and their numbers, fiche labels and "Label: value" lines (unless the line before ends
    with a comma or semicolon), a heading before a blank line and lines after a short one (a heading, a value) stay
    as they are."""
    if not 50 <= width <= 200:  # short lines (a fiche) or whole paragraphs per line: nothing was wrapped
        return text
    lines = text.split("\n")
    out = [lines[0]]
    for n in range(1, len(lines)):
        prev, line, head = lines[n - 1].strip(), lines[n], lines[n].strip()
        after = lines[n + 1].strip() if n + 1 < len(lines) else ""
        long = len(prev) >= max(40, 0.7 * width)
        if (not prev or not head or _ENDS_SENTENCE.search(prev) or LIST_MARKER.match(line) or _NUMBER.fullmatch(head)
                or (_LABELLED.match(head) and not prev.endswith((";", ","))) or is_label(prev) or is_label(head)
                or (not after and len(head.split()) <= 4 and head[0].isupper())
                or not (long or (head[0].islower() and len(prev.split()) >= 4 and not prev.endswith(":")))):
            out.append(line)
        elif _BROKEN_WORD.search(prev) and head[0].islower():
            out[-1] = out[-1].rstrip()[:-1] + head
        else:
            out[-1] = f"{out[-1].rstrip()} {head}"
    return "\n".join(out)


def clean_pages(pages: tuple[str, ...], title: str | None) -> tuple[str, tuple[Page, ...]]:
    """Pages cleaned as one text (the title kept once), their wrapped lines joined back, joined by blank lines;
    empty pages are left out and the others keep their number and their span in the text."""
    cleaner = _Cleaner(title)
    cleaned = [cleaner(raw) for raw in pages]
    width = line_width(cleaned)
    parts: list[str] = []
    spans: list[Page] = []
    pos = 0
    for number, text in enumerate(cleaned, start=1):
        text = unwrap(text, width)
        if not text.strip():
            continue
        if parts:
            pos += 2
        parts.append(text)
        spans.append(Page(number, pos, pos + len(text)))
        pos += len(text)
    return "\n\n".join(parts), tuple(spans)
