"""The one facade used by the CLI, the web app and the tests: ``open_index(...)`` then ``search`` / ``ask``."""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from . import bundled, reader
from .answer import AnswerModels, AnswerPolicy, compose, compose_learned
from .config import Mode, Settings, load_settings
from .embed import Embedder, load_embedder
from .errors import ConfigError, QueryError
from .indexer import IndexReport, Progress, build_index, chunking_settings
from .lang import detect_en_fr
from .retrieve import Filters, Retrieval, Retriever, parse_filters
from .store import CURRENT, IndexStore
from .types import Answer, Document, SearchResult

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


@dataclass
class _Retrieved:
    text: str
    filters: dict[str, list[str]]
    retriever: Retriever
    qv: Any
    retrieval: Retrieval
    timings: dict[str, float]
    started: float


class Aidsearch:
    """An opened index with its model; reloads by itself when another process writes a new generation."""

    def __init__(self, settings: Settings, embedder: Embedder, policy: AnswerPolicy | None = None,
                 models: AnswerModels | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.policy = policy or AnswerPolicy()
        self.models = models or AnswerModels.shipped()
        self.store = IndexStore(settings.index_dir)
        self._lock = threading.Lock()
        self._retriever: Retriever | None = None
        self._generation: tuple[Any, ...] | None = None
        self._refresh()

    def _generation_key(self, folder: Path | None) -> tuple[Any, ...] | None:
        """Which generation ``CURRENT`` names: its folder and the identity of the ``CURRENT`` file, which is
        replaced on every write (a deleted and rebuilt index reuses the folder name ``gen-000001``)."""
        if folder is None:
            return None
        try:
            st = (self.store.root / CURRENT).stat()
        except OSError:
            return None
        return (folder, st.st_ino, st.st_mtime_ns)

    def _refresh(self) -> Retriever:
        key = self._generation_key(self.store.current())
        if self._retriever is not None and (key is None or key == self._generation):
            return self._retriever
        with self._lock:
            key = self._generation_key(self.store.current())
            if self._retriever is None or (key is not None and key != self._generation):
                gen = self.store.load()
                self.store.check_compatible(gen.manifest, fingerprint=self.embedder.info.fingerprint,
                                            chunking=chunking_settings(self.settings))
                self._retriever = Retriever(gen, self.embedder)
                self._generation = key
            return self._retriever

    def retriever(self) -> Retriever:
        """The retriever of the current index generation (reloaded when another process wrote a new one)."""
        return self._refresh()

    def _retrieve(self, text: str, k: int | None, filters: Filters | Sequence[str] | None,
                  max_per_doc: int | None, mode: str | None) -> _Retrieved:
        """Shared first steps of ``search`` and ``ask``: check, embed the question, retrieve."""
        text = check_question(text)
        parsed = parse_filters(filters)
        t0 = time.perf_counter()
        retriever = self._refresh()
        qv = self.embedder.encode_queries([text])[0]
        t1 = time.perf_counter()
        retrieval = retriever.retrieve(text, k=k or self.settings.k, filters=parsed, query_vector=qv,
                                       max_per_doc=max_per_doc or self.settings.max_per_doc,
                                       mode=mode or self.settings.retrieval)
        t2 = time.perf_counter()
        timings = {"embed": (t1 - t0) * 1000, "retrieve": (t2 - t1) * 1000}
        return _Retrieved(text, {key: list(v) for key, v in parsed.items()}, retriever, qv, retrieval, timings, t0)

    def search(self, query: str, *, k: int | None = None, filters: Filters | Sequence[str] | None = None,
               max_per_doc: int | None = None, mode: Mode | None = None) -> SearchResult:
        """The passages closest to ``query`` (English or French): at most ``k`` (default: the ``k`` setting), at
        most ``max_per_doc`` from one document, restricted by ``filters`` (``{"country": ["Laos"]}`` or
        ``["country=Laos"]``; values of one key are alternatives), ranked by ``mode`` (default: the ``retrieval``
        setting). Raises QueryError on an empty or too long query or a bad filter."""
        r = self._retrieve(query, k, filters, max_per_doc, mode)
        r.timings["total"] = (time.perf_counter() - r.started) * 1000
        return SearchResult(r.text, detect_en_fr(r.text), tuple(r.retrieval.hits), r.timings, r.filters)

    def ask(self, question: str, *, k: int | None = None, filters: Filters | Sequence[str] | None = None,
            mode: Mode | None = None) -> Answer:
        """The answer to ``question`` in its language, quoting and citing the passages it comes from, or "no
        answer" when the documents are unlikely to hold one. ``k``, ``filters`` and ``mode`` choose the passages as
        in ``search``; the ``answerer`` setting chooses the answer stage. Raises QueryError on bad input."""
        r = self._retrieve(question, k, filters, None, mode)
        t2 = time.perf_counter()
        lang = detect_en_fr(r.text)
        if self.settings.answerer == "rules":
            answer = compose(r.text, lang, r.retrieval.hits, r.qv, r.retriever.sentence_vectors, self.policy)
        else:
            answer = compose_learned(r.text, lang, r.retrieval, r.qv, r.retriever.sentence_vectors,
                                     self._answer_models(), r.retriever.gen.documents.get)
        t3 = time.perf_counter()
        r.timings.update(answer=(t3 - t2) * 1000, total=(t3 - r.started) * 1000)
        return replace(answer, timings_ms=r.timings, filters=r.filters)

    def _answer_models(self) -> AnswerModels:
        """The learned stages, with the answer reader when the ``answerer`` setting asks for it (loaded on first
        use)."""
        if self.settings.answerer != "reader":
            return replace(self.models, reader=None) if self.models.reader is not None else self.models
        if self.models.reader is None:
            loaded = reader.shared_reader(bundled.ensure_bundled(self.settings.cache_dir / "models"))
            if loaded is None:
                raise ConfigError(f"answerer 'reader' needs the reader's weights ({reader.READER_FILE.name}): "
                                  "run make train-reader")
            self.models = replace(self.models, reader=loaded)
        return self.models

    def document(self, doc_id: str) -> Document | None:
        """The indexed document with id ``doc_id``, or None."""
        return self._refresh().gen.documents.get(doc_id)

    def documents(self) -> list[Document]:
        """Every indexed document."""
        return list(self._refresh().gen.documents.values())

    def stats(self) -> dict[str, Any]:
        """Size, languages, model, chunking and generation of the index."""
        gen = self._refresh().gen
        m = gen.manifest
        return {
            "index_dir": str(self.settings.index_dir),
            "documents": len(gen.documents),
            "passages": len(gen.chunks),
            "languages": m.get("languages", {}),
            "created": m.get("created"),
            "updated": m.get("updated"),
            "model": {k: m["model"].get(k) for k in ("name", "fingerprint", "dimension")},
            "chunking": m.get("chunking"),
            "faiss": m.get("faiss"),
            "generation": m.get("generation"),
        }

    def facets(self) -> dict[str, list[Any]]:
        """Values present in the index, for building filter menus."""
        docs = self.documents()
        countries = sorted({d.metadata["country"] for d in docs if d.metadata.get("country")})
        funders = sorted({f["name"] for d in docs for f in d.metadata.get("funders") or [] if f.get("name")})
        years = sorted({y for d in docs for y in d.metadata.get("years") or []})
        langs = sorted({d.lang for d in docs})
        return {"country": countries, "funder": funders, "year": years, "lang": langs}

    def update(self, *, rebuild: bool = False, progress: Progress | None = None, lock_timeout: float = 60.0) -> IndexReport:
        """Re-index the corpus folder (incrementally, everything with ``rebuild``) and start answering from the new
        generation; ``progress`` is called per stage, ``lock_timeout`` bounds the wait for another writer."""
        report = build_index(self.settings, self.embedder, rebuild=rebuild, progress=progress, lock_timeout=lock_timeout)
        self._refresh()
        return report


def open_index(index_dir: str | Path | None = None, *, settings: Settings | None = None,
               embedder: Embedder | None = None, **overrides: Any) -> Aidsearch:
    """Open the index in ``index_dir`` (default from settings) with the configured model."""
    settings = settings or load_settings(**overrides)
    if index_dir is not None:
        settings = settings.with_overrides(index_dir=index_dir)
    return Aidsearch(settings, embedder or load_embedder(settings))
