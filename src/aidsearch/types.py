"""Core value types shared by every stage: documents, chunks, hits and answers."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

# what an answer says in each language besides the quotes
MESSAGES = {
    "en": {"none": "No answer found in the indexed documents.", "sources": "Sources",
           "written_by": "written by {model}, checked against the sources",
           "quoting_instead": "quoting the documents instead"},
    "fr": {"none": "Aucune réponse trouvée dans les documents indexés.", "sources": "Sources",
           "written_by": "rédigé par {model}, vérifié dans les sources",
           "quoting_instead": "réponse citée des documents à la place"},
}


def content_hash(text: str) -> str:
    """Stable id of a text: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Page:
    """A page of a paginated source: 1-based number and its char span in the document text."""

    number: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Document:
    """A cleaned source document. ``id`` is the hash of its text; ``source`` is relative to the corpus root."""

    id: str
    source: str
    title: str
    text: str
    lang: str
    metadata: dict[str, Any] = field(default_factory=dict)
    pages: tuple[Page, ...] = ()

    def page_at(self, offset: int) -> int | None:
        for page in self.pages:
            if page.start <= offset < page.end:
                return page.number
        return self.pages[-1].number if self.pages and offset >= self.pages[-1].start else None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document: ``text == document.text[start:end]``; ``context`` is the title/heading line."""

    id: str
    doc_id: str
    source: str
    title: str
    text: str
    start: int
    end: int
    lang: str
    page: int | None = None
    heading: str = ""
    context: str = ""
    page_starts: tuple[tuple[int, int], ...] = ()

    def page_at(self, offset: int) -> int | None:
        """Page of a char offset inside this passage (pages may change within a passage)."""
        page = self.page
        for start, number in self.page_starts:
            if offset >= start:
                page = number
        return page

    def embed_text(self) -> str:
        """The text given to the embedder and to keyword search: document context, then the passage."""
        return f"{self.context}\n{self.text}" if self.context else self.text

    def sentence_text(self, sentence: str) -> str:
        """A sentence as embedded for answer selection: short ones ("Total budget: 28,400,000 EUR") get the context."""
        return f"{self.context}\n{sentence}" if self.context and len(sentence.split()) <= 12 else sentence


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and 1-based rank."""

    chunk: Chunk
    score: float
    rank: int
    dense: float = 0.0
    lexical: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    row: int = -1

    def to_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "rank": self.rank,
            "doc_id": c.doc_id,
            "source": c.source,
            "title": c.title,
            "lang": c.lang,
            "page": c.page,
            "start": c.start,
            "end": c.end,
            "score": round(float(self.score), 6),
            "similarity": round(float(self.dense), 4),
            "text": c.text,
            "country": self.metadata.get("country"),
        }


def source_label(n: int, title: str, source: str, page: int | None, lang: str) -> str:
    """"[n] title (source, p.N, lang)": the line that lists a source under an answer in plain text."""
    return f"[{n}] {title} ({source}{f', p.{page}' if page else ''}, {lang})"


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer; ``n`` is 1-based; ``sentences`` are char spans within the passage."""

    n: int
    hit: Hit
    sentences: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = self.hit.to_dict()
        d.pop("rank")
        d["page"] = self.page
        return {"n": self.n, **d, "highlights": [list(s) for s in self.sentences]}

    def label(self) -> str:
        """"[n] title (source, p.N, lang)": the line that lists this source under an answer in plain text."""
        c = self.hit.chunk
        return source_label(self.n, c.title, c.source, c.page, c.lang)

    @property
    def page(self) -> int | None:
        """The page of the first quoted sentence (or of the passage start)."""
        return self.hit.chunk.page_at(self.sentences[0][0] if self.sentences else 0)


@dataclass(frozen=True)
class Answer:
    """An answer: ``text`` carries ``[n]`` markers pointing into ``citations``; ``highlights`` are the character
    spans of ``text`` that are the answer itself (a name, an amount, a date), when one stands out; ``generation``
    says what a model wrote and what the check made of it, when one was asked."""

    question: str
    language: str
    found: bool
    text: str | None
    citations: tuple[Citation, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    highlights: tuple[tuple[int, int], ...] = ()
    generation: dict[str, Any] | None = None
    extractive: Answer | None = field(default=None, repr=False, compare=False)  # the quoted answer, when generated

    @property
    def mode(self) -> str:
        """"generative" when a model wrote ``text`` and it passed the check, else "extractive"."""
        return "generative" if self.generation and self.generation.get("status") == "checked" else "extractive"

    def citation(self, n: int) -> Citation:
        """The citation numbered ``n`` (1-based); out of range raises instead of wrapping around."""
        if not 1 <= n <= len(self.citations):
            raise IndexError(f"citation [{n}] out of range 1..{len(self.citations)}")
        return self.citations[n - 1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "language": self.language,
            "found": self.found,
            "answer": self.text,
            "highlights": [{"start": a, "end": b, "text": (self.text or "")[a:b]} for a, b in self.highlights],
            "citations": [c.to_dict() for c in self.citations],
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "filters": self.filters,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "mode": self.mode,
            **({"generation": self.generation} if self.generation is not None else {}),
        }


@dataclass(frozen=True)
class SearchResult:
    query: str
    language: str
    hits: tuple[Hit, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "language": self.language,
            "hits": [h.to_dict() for h in self.hits],
            "filters": self.filters,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


__all__ = ["Answer", "Chunk", "Citation", "Document", "Hit", "Page", "SearchResult", "asdict", "content_hash",
           "source_label"]
