"""Split documents into overlapping passages that follow sentences and paragraphs, sized in model tokens."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from .lang import detect_language
from .lexicon import BULLET_RUN
from .types import Chunk, Document, content_hash

CHUNKER_VERSION = 9
CountTokens = Callable[[Sequence[str]], list[int]]

_SENTENCE_END = re.compile(r"(?<=[.!?…;])(?:\s?[\"'”»)\]])*\s+(?=[\"'“«(\[]?[A-ZÀ-ÖØ-Þ0-9•\-–])")
_ABBREVIATIONS = frozenset("mr. mrs. ms. dr. prof. st. mme. mlle. m. no. n°. nr. etc. e.g. i.e. cf. vs. art. p. pp. "
                           "vol. fig. approx. env. av. apr. j.-c. inc. ltd. co. dept.".split())
_CODE = re.compile(r"\b[A-Z]{2,5}/\d{2,4}\b")


@dataclass(frozen=True)
class Unit:
    """A sentence-like span ``text[start:end]``; ``para`` marks the first unit of a paragraph."""

    start: int
    end: int
    para: bool
    heading: bool = False


def _is_heading(line: str) -> bool:
    words = line.split()
    return (
        0 < len(words) <= 8
        and not line.rstrip().endswith((".", ",", ";", ":", "?", "!"))
        and sum(c.isdigit() for c in line) < 3
        and line[:1].isupper()
    )


def units(text: str) -> list[Unit]:
    """Sentence units of ``text`` with exact char offsets; lines and sentence ends both split."""
    out: list[Unit] = []
    para = True
    pos = 0
    for line in text.split("\n"):
        start, end = pos, pos + len(line)
        pos = end + 1
        stripped = line.strip()
        if not stripped:
            para = True
            continue
        lead = len(line) - len(line.lstrip())
        s0 = start + lead
        segment = text[s0 : start + len(line.rstrip())]
        cuts = [m.end() for m in _SENTENCE_END.finditer(segment)
                if segment[: m.start() + 1].rsplit(None, 1)[-1].lower() not in _ABBREVIATIONS]
        bounds = [0, *cuts, len(segment)]
        heading = len(cuts) == 0 and _is_heading(stripped)
        for a, b in zip(bounds, bounds[1:], strict=False):
            piece = segment[a:b]
            if piece.strip():
                trail = len(piece) - len(piece.rstrip())
                out.append(Unit(s0 + a, s0 + b - trail, para, heading))
                para = False
    return out


def _split_long(text: str, unit: Unit, n_tokens: int, max_tokens: int) -> list[Unit]:
    """Cut an over-long unit at word boundaries into pieces of about ``max_tokens``."""
    pieces = -(-n_tokens // max_tokens)
    span = text[unit.start : unit.end]
    target = max(1, len(span) // pieces)
    out, a = [], 0
    while a < len(span):
        b = min(len(span), a + target)
        if b < len(span):
            space = span.rfind(" ", a + target // 2, b)
            b = space if space > a else b
        piece = span[a:b]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append(Unit(unit.start + a + lead, unit.start + a + len(piece.rstrip()), unit.para and a == 0))
        a = b
    return out


def document_context(doc: Document) -> str:
    """Title plus project codes and country: prefixed to each passage for embedding and keyword search."""
    codes = sorted(set(_CODE.findall(doc.text)))[:3]
    country = doc.metadata.get("country")
    parts = [doc.title, *codes]
    if country and country.lower() not in doc.title.lower():
        parts.append(str(country))
    return " · ".join(p for p in parts if p)


def chunk_document(doc: Document, count_tokens: CountTokens, *, max_tokens: int = 200,
                   overlap: int = 40) -> list[Chunk]:
    """Pack sentence units into chunks of at most ``max_tokens`` tokens, ``overlap`` tokens carried over."""
    if max_tokens < 16:
        raise ValueError(f"max_tokens must be at least 16, got {max_tokens}")
    if not 0 <= overlap < max_tokens // 2:
        raise ValueError(f"overlap must be in 0..{max_tokens // 2 - 1}, got {overlap}")
    raw = units(doc.text)
    counts = count_tokens([doc.text[u.start : u.end] for u in raw])
    sized: list[tuple[Unit, int]] = []
    for unit, n in zip(raw, counts, strict=False):
        if n > max_tokens:
            parts = _split_long(doc.text, unit, n, max_tokens - 8)
            sized += zip(parts, count_tokens([doc.text[p.start : p.end] for p in parts]), strict=False)
        else:
            sized.append((unit, n))

    headings: list[str] = []
    current = ""
    for unit, _ in sized:
        if unit.heading:
            current = doc.text[unit.start : unit.end]
        headings.append(current)

    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(sized):
        total, j = 0, i
        while j < len(sized) and (j == i or total + sized[j][1] <= max_tokens):
            if j > i and sized[j][0].para and total >= max_tokens * 0.75:
                break
            total += sized[j][1]
            j += 1
        if j < len(sized) and j - 1 > i and sized[j - 1][0].heading and not sized[j][0].heading:
            j -= 1
        rest = sum(n for _, n in sized[j:])
        if j < len(sized) and rest < max_tokens // 4 and total + rest <= max_tokens * 1.25:
            j = len(sized)
        spans.append((i, j))
        if j >= len(sized):
            break
        back, carried = j, 0
        while back - 1 > i and carried + sized[back - 1][1] <= overlap:
            back -= 1
            carried += sized[back][1]
        i = back

    base = document_context(doc)
    chunks = []
    for i, j in spans:
        start, end = sized[i][0].start, sized[j - 1][0].end
        lang = doc.lang
        if len(spans) > 1 and len(doc.text[start:end].split()) >= 20:
            found = detect_language(doc.text[start:end])
            lang = found if found != "und" else doc.lang
        heading = headings[i] if not sized[i][0].heading else ""
        chunks.append(Chunk(
            id=content_hash(f"{doc.id}:{start}:{end}"), doc_id=doc.id, source=doc.source, title=doc.title,
            text=doc.text[start:end], start=start, end=end, lang=lang, page=doc.page_at(start), heading=heading,
            context=" — ".join(p for p in (base, heading) if p),
            page_starts=tuple((p.start - start, p.number) for p in doc.pages if start < p.start < end),
        ))
    return chunks


_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Sentence:
    """An answer candidate inside a passage: display text and its char span in the passage."""

    text: str
    start: int
    end: int


def _label_shaped(text: str, max_words: int = 5) -> bool:
    """Shaped like a label line, whatever its words: short, no digit, no sentence end, no "label: value"."""
    words = text.split()
    return (0 < len(words) <= max_words and not _has_digit(text) and not text.rstrip().endswith((".", "?", "!"))
            and ": " not in text)


def _has_digit(text: str) -> bool:
    return any(c.isdigit() for c in text)


def _line(text: str, unit: Unit) -> str:
    return _SPACES.sub(" ", BULLET_RUN.sub("", text[unit.start : unit.end])).strip()


def passage_sentences(text: str) -> list[Sentence]:
    """Sentences of a passage; a short label line is joined to the value line under it
    ("Total budget: 28,400,000 EUR")."""
    spans = units(text)
    out: list[Sentence] = []
    i = 0
    while i < len(spans):
        u = spans[i]
        label = _line(text, u)
        if _label_shaped(label, 8) and i + 1 < len(spans) and "\n" in text[u.end : spans[i + 1].start]:
            value = _line(text, spans[i + 1])
            after = _line(text, spans[i + 2]) if i + 2 < len(spans) else ""
            value_is_label = bool(after) and (
                (_label_shaped(value) and not _label_shaped(after))
                or (not _has_digit(value) and _has_digit(after) and len(after.split()) <= 5)
            )
            if value and not value_is_label:
                out.append(Sentence(f"{label.rstrip(':')}: {value}", u.start, spans[i + 1].end))
                i += 2
                continue
        words = label.split()
        if any(len(w) >= 3 and w[0].isalpha() for w in words) and (len(words) >= 2 or _has_digit(label)):
            out.append(Sentence(label, u.start, u.end))
        i += 1
    return out
