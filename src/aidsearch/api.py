"""The one facade used by the CLI, the web app and the tests: ``open_index(...)`` (``create=True`` to build the
index), then ``search`` / ``ask``, ``update`` and ``add_files``."""
from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Literal, Sequence

from . import bundled, generate, reader
from .answer import AnswerModels, AnswerPolicy, compose, compose_learned
from .config import Mode, Settings, load_settings
from .backends import dense_search, lexical_search
from .embed import Embedder, load_embedder
from .errors import AidsearchError, ConfigError, IndexCorruptError, IndexMismatchError, IndexMissingError, QueryError
from .incoming import UPLOAD_FOLDER, UploadRejected, check_upload, save_upload
from .indexer import IndexReport, Progress, build_index, chunking_settings
from .lang import detect_en_fr
from .query import Filters, check_question, parse_filters
from .retrieve import Retrieval, Retriever
from .store import CURRENT, Generation, IndexStore
from .types import Answer, Citation, Document, SearchResult

AnswerMode = Literal["extractive", "generative"]
CHECK_FILE = Path(__file__).parent / "params" / "check.json"


@dataclass(frozen=True)
class AddedFile:
    """A file saved into the corpus folder: its ``name`` as given, its ``source`` in the corpus folder, and whether
    it is ``fresh`` (newly indexed) rather than the same file already in the index."""

    name: str
    source: str
    fresh: bool


@dataclass(frozen=True)
class RejectedFile:
    """A file not kept: its ``name`` as given, the one-line ``reason`` and the ``error`` it comes from, if any."""

    name: str
    reason: str
    error: Exception | None = None


@dataclass(frozen=True)
class FilesReport:
    """What ``Aidsearch.add_files`` did: the files kept, those rejected, and the index update (None without one)."""

    added: tuple[AddedFile, ...]
    rejected: tuple[RejectedFile, ...]
    index: IndexReport | None


Accept = Callable[[Path, int], None]  # called with each valid file and its size; raises UploadRejected to refuse it


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
                 models: AnswerModels | None = None, created: IndexReport | None = None) -> None:
        self.settings = settings
        self.created = created  # the report of the build ``open_index(create=True)`` made, None without one
        self.embedder = embedder
        self.policy = policy or AnswerPolicy()
        self.models = models or AnswerModels.shipped()
        self.store = IndexStore(settings.index_dir)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
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

    def _retriever_of(self, gen: Generation) -> Retriever:
        """The retriever of ``gen`` on the configured backend (a Milvus collection is brought up to date first)."""
        dense = dense_search(self.settings, gen, self._retriever.dense if self._retriever is not None else None)
        return Retriever(gen, self.embedder, dense=dense, lexical=lexical_search(gen, dense))

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
                self._retriever = self._retriever_of(gen)
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
            mode: Mode | None = None, answer_mode: AnswerMode | None = None) -> Answer:
        """The answer to ``question`` in its language, citing the passages it comes from, or "no answer" when the
        documents are unlikely to hold one. ``k``, ``filters`` and ``mode`` choose the passages as in ``search``.
        ``answer_mode`` "extractive" quotes the documents (the ``answerer`` setting chooses how); "generative" (the
        default when ``llm_url`` is set) has the configured model write the answer, checks it against the passages
        and falls back to the quotes with a one-line notice when it fails. Raises QueryError on bad input."""
        answer: Answer | None = None
        for item in self.ask_stream(question, k=k, filters=filters, mode=mode, answer_mode=answer_mode):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def ask_stream(self, question: str, *, k: int | None = None, filters: Filters | Sequence[str] | None = None,
                   mode: Mode | None = None, answer_mode: AnswerMode | None = None) -> Iterator[str | Answer]:
        """``ask`` as it happens: the generated text so far (a growing string, before the check) while the model
        writes, then the checked ``Answer`` last. An extractive answer comes alone."""
        generative = (answer_mode or ("generative" if self.settings.llm_url else "extractive")) == "generative"
        server = self.chat_server() if generative else None
        r = self._retrieve(question, k, filters, None, mode)
        t2 = time.perf_counter()
        lang = detect_en_fr(r.text)
        if self.settings.answerer == "rules":
            answer = compose(r.text, lang, r.retrieval.hits, r.qv, r.retriever.sentence_vectors, self.policy)
        else:
            answer = compose_learned(r.text, lang, r.retrieval, r.qv, r.retriever.sentence_vectors,
                                     self.answer_models(), r.retriever.gen.documents.get)
        t3 = time.perf_counter()
        r.timings.update(answer=(t3 - t2) * 1000)
        answer = replace(answer, filters=r.filters)
        if server is not None:
            answer = yield from self._generate(server, r, lang, answer)
        r.timings["total"] = (time.perf_counter() - r.started) * 1000
        yield replace(answer, timings_ms=r.timings)

    def generation_status(self) -> dict[str, Any]:
        """Whether generative answers are configured and the model server reachable (never the key)."""
        return generate.status(self.chat_server() if self.settings.llm_url else None)

    def chat_server(self) -> generate.ChatServer:
        """The configured chat server, or a QueryError (the request asks for what is not set up) naming the
        missing setting."""
        s = self.settings
        if not s.llm_url:
            raise QueryError("generative answers need a model server: set llm_url (and llm_model)",
                              hint="set AIDSEARCH_LLM_URL, e.g. http://localhost:11434/v1 for Ollama")
        return generate.ChatServer(s.llm_url, s.llm_model, s.llm_api_key, s.llm_timeout)

    def _generate(self, server: generate.ChatServer, r: _Retrieved, lang: str,
                  extractive: Answer) -> Generator[str, None, Answer]:
        """Have ``server`` write the answer from the retrieved passages, streaming the visible text, and return the
        checked answer, or ``extractive`` with the one-line reason it is shown instead."""
        info: dict[str, Any] = {"model": server.model or "default", "status": "fallback",
                                **generate.explain(None, lang), "sentences": [], "extractive": extractive.to_dict()}
        hits = r.retrieval.hits
        if not extractive.found or not hits:
            info.update(status="skipped", **generate.explain(generate.Notice.of("no_answer"), lang))
            return replace(extractive, generation=info)
        t0 = time.perf_counter()
        passages = [h.chunk.text for h in hits]
        fmt = self.settings.llm_format
        raw, structured = "", fmt != "text"
        try:
            try:
                raw = yield from self._stream(server, r.text, lang, passages, structured=structured,
                                             timings=r.timings, started=r.started)
            except generate.GenerationFailed as exc:
                if fmt != "auto" or exc.notice not in (generate.Notice.of("http", status=400),
                                                       generate.Notice.of("http", status=422)):
                    raise
                structured = False  # the server does not take a JSON schema: ask for plain text
                raw = yield from self._stream(server, r.text, lang, passages, structured=False,
                                             timings=r.timings, started=r.started)
            info.update(format="json" if structured else "text", raw=raw)
            drafts = generate.parse_json(raw) if structured else generate.parse_text(raw)
            if not drafts:
                raise generate.GenerationFailed("empty")
        except generate.GenerationFailed as exc:
            r.timings["generate"] = (time.perf_counter() - t0) * 1000
            info.update(generate.explain(exc.notice, lang))
            return replace(extractive, generation=info)
        t1 = time.perf_counter()
        checked = generate.check(drafts, passages, self._similarity, check_threshold())
        verdict = generate.judge(checked, lang)
        r.timings.update(generate=(t1 - t0) * 1000, check=(time.perf_counter() - t1) * 1000)
        info.update(sentences=[c.to_dict() for c in checked], **generate.explain(verdict.notice, lang))
        if not verdict.ok:
            return replace(extractive, generation=info)
        info["status"] = "checked"
        return self._generated_answer(extractive, hits, verdict.sentences, info)

    def _stream(self, server: generate.ChatServer, question: str, lang: str, passages: list[str], *,
                structured: bool, timings: dict[str, float], started: float) -> Generator[str, None, str]:
        """Stream one reply, yielding the visible text as it grows; returns the whole raw reply."""
        messages = generate.build_messages(question, lang, passages, structured=structured)
        schema = generate.answer_schema(len(passages)) if structured else None
        raw, shown = "", ""
        for piece in server.stream(messages, schema):
            timings.setdefault("first_token", (time.perf_counter() - started) * 1000)
            raw += piece
            visible = generate.visible_json(raw) if structured else raw
            if visible != shown:
                shown = visible
                yield visible
        return raw

    def _similarity(self, a: Sequence[str], b: Sequence[str]) -> Any:
        return self.embedder.encode_passages(list(a)) @ self.embedder.encode_passages(list(b)).T

    @staticmethod
    def _generated_answer(extractive: Answer, hits: Sequence[Any], checked: Sequence[generate.Checked],
                          info: dict[str, Any]) -> Answer:
        """The answer of the checked sentences, their passages renumbered in order of first citation, each citation
        highlighting the sentences that support the answer."""
        order: dict[int, int] = {}
        spans: dict[int, list[tuple[int, int]]] = {}
        parts = []
        for c in checked:
            if c.status == "dropped":
                continue
            for n in c.cites:
                order.setdefault(n, len(order) + 1)
            if c.support is not None:
                spans.setdefault(c.support[0], []).append(c.support[1:])
            parts.append(c.text + "".join(f" [{order[n]}]" for n in c.cites))
        citations = tuple(Citation(new, hits[n - 1], tuple(sorted(set(spans.get(n, []))))) for n, new in order.items())
        return replace(extractive, text=" ".join(parts), citations=citations, highlights=(), generation=info,
                       extractive=extractive)

    def answer_models(self) -> AnswerModels:
        """The learned stages, with the answer reader when the ``answerer`` setting asks for it (loaded on first
        use)."""
        if self.settings.answerer != "reader":
            return replace(self.models, reader=None, reader_abstain=None) if self.models.reader is not None \
                else self.models
        if self.models.reader is None:
            loaded = reader.shared_reader(bundled.ensure_bundled(self.settings.cache_dir / "models"),
                                          self.settings.micro_batch, self.settings.reader_quantize,
                                          self.settings.cache_dir / "onnx"
                                          if self.settings.query_runtime == "onnx" else None)
            if loaded is None:
                raise ConfigError(f"answerer 'reader' needs the reader's weights ({reader.READER_FILE.name}): "
                                  "run make train-reader")
            abstain = reader.shipped_abstain()
            self.models = replace(self.models, reader=loaded, reader_weight=reader.shipped_weight(),
                                  passage_weight=reader.shipped_passage_weight(),
                                  margin_bound=reader.shipped_margin_bound(),
                                  reader_abstain=abstain,
                                  min_reader_probability=float((abstain.info or {}).get("threshold", 0.5))
                                  if abstain is not None else 0.5)
        return self.models

    def document(self, doc_id: str) -> Document | None:
        """The indexed document with id ``doc_id``, or None."""
        return self._refresh().gen.documents.get(doc_id)

    def documents(self) -> list[Document]:
        """Every indexed document."""
        return list(self._refresh().gen.documents.values())

    def stats(self) -> dict[str, Any]:
        """Size, languages, model, chunking and generation of the index."""
        retriever = self._refresh()
        gen, m = retriever.gen, retriever.gen.manifest
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
            "backend": m.get("backend", {"name": "faiss"}),
            "keyword_search": retriever.lexical.name,
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

    def update(self, *, rebuild: bool = False, progress: Progress | None = None,
               lock_timeout: float = 60.0) -> IndexReport:
        """Re-index the corpus folder (incrementally, everything with ``rebuild``) and start answering from the new
        generation; ``progress`` is called per stage, ``lock_timeout`` bounds the wait for another writer."""
        with self._write_lock:
            held = self._retriever.gen if self._retriever is not None else None
            report = build_index(self.settings, self.embedder, rebuild=rebuild, progress=progress,
                                 lock_timeout=lock_timeout, loaded=held)
            if report.generation is not None:
                self._adopt(report.generation)
        self._refresh()
        return replace(report, generation=None)  # a kept report must not keep the generation alive

    def _adopt(self, gen: Generation) -> None:
        """Answer from ``gen``, just written by this engine, without reading it again (unless another writer
        has already replaced it)."""
        with self._lock:
            key = self._generation_key(gen.folder)
            if key is not None and self.store.current() == gen.folder:
                self._retriever = self._retriever_of(gen)
                self._generation = key

    def add_files(self, paths: Sequence[str | Path], *, folder: str = UPLOAD_FOLDER, accept: Accept | None = None,
                  progress: Progress | None = None, lock_timeout: float = 60.0) -> FilesReport:
        """Check each file of ``paths`` (type on the content, at most the ``max_upload_mb`` setting), save it into
        ``folder`` of the corpus folder without overwriting another file, then ``update`` the index. A bad file
        stops nothing; a file the index cannot read, or every saved file when the update fails, is removed again.
        ``accept(path, size)`` may refuse a valid file by raising UploadRejected (e.g. a quota); ``progress`` and
        ``lock_timeout`` are passed to ``update``."""
        corpus = Path(self.settings.corpus_dir)
        saved: list[tuple[str, Path, bool]] = []  # (name as given, saved path, newly written)
        rejected: list[RejectedFile] = []
        for item in map(Path, paths):
            try:
                saved.append((item.name, *self._save_file(item, corpus / folder, accept)))
            except UploadRejected as exc:
                rejected.append(RejectedFile(item.name, str(exc), exc))
            except OSError as exc:
                rejected.append(RejectedFile(item.name, exc.strerror or str(exc), exc))
        if not saved:
            return FilesReport((), tuple(rejected), None)
        try:
            report = self.update(progress=progress, lock_timeout=lock_timeout)
        except AidsearchError as exc:  # e.g. disk full or index locked: the files are not kept
            _remove_new(saved)
            return FilesReport((), tuple(rejected) + tuple(RejectedFile(n, str(exc), exc) for n, _, _ in saved), None)
        skipped = {s.source: s.reason for s in report.skipped}
        fresh = set(report.added) | set(report.updated)
        added: list[AddedFile] = []
        for name, path, new in saved:
            source = path.relative_to(corpus).as_posix()
            if source in skipped:  # unreadable after all (e.g. a PDF without text): not kept
                _remove_new([(name, path, new)])
                rejected.append(RejectedFile(name, skipped[source]))
            else:
                added.append(AddedFile(name, source, source in fresh))
        return FilesReport(tuple(added), tuple(rejected), report)

    def _save_file(self, path: Path, folder: Path, accept: Accept | None) -> tuple[Path, bool]:
        """Check ``path`` and save a copy into ``folder``: (saved path, newly written), or UploadRejected."""
        limit = int(self.settings.max_upload_mb)
        size = path.stat().st_size
        if size > limit * 1024 * 1024:
            raise UploadRejected("too_big", mb=size / 1024 / 1024, limit=limit)
        data = path.read_bytes()
        name = check_upload(path.name, data, limit * 1024 * 1024)
        if accept is not None:
            accept(path, size)
        return save_upload(folder, name, data)


@functools.lru_cache(maxsize=1)
def check_threshold() -> float:
    """The similarity a generated sentence needs to its cited passage, calibrated on examples (params/check.json,
    written by benchmarks/calibrate_check.py); read once."""
    import json

    try:
        return float(json.loads(CHECK_FILE.read_text(encoding="utf-8"))["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AidsearchError(f"{CHECK_FILE} is missing or unreadable ({type(err).__name__}): reinstall aidsearch") \
            from None


def _remove_new(saved: Sequence[tuple[str, Path, bool]]) -> None:
    """Delete the files of ``saved`` that ``add_files`` wrote (a file that was already there is left)."""
    for _, path, new in saved:
        if new:
            path.unlink(missing_ok=True)


def open_index(index_dir: str | Path | None = None, *, settings: Settings | None = None,
               embedder: Embedder | None = None, create: bool = False, corpus: str | Path | None = None,
               progress: Progress | None = None, lock_timeout: float = 60.0, **overrides: Any) -> Aidsearch:
    """Open the index in ``index_dir`` (default from settings) with the configured model (or ``embedder``).

    With ``create``, an index that is missing, damaged or built with another model or chunking is first built
    from ``corpus`` (default: the ``corpus_dir`` setting), ``progress`` called per stage and ``lock_timeout``
    bounding the wait for another writer; its report is then ``Aidsearch.created``. Without it, such an index
    raises IndexMissingError, IndexCorruptError or IndexMismatchError."""
    settings = settings or load_settings(**overrides)
    settings = settings.with_overrides(index_dir=index_dir, corpus_dir=corpus)
    embedder = embedder or load_embedder(settings)
    try:
        return Aidsearch(settings, embedder)
    except (IndexMissingError, IndexCorruptError, IndexMismatchError):
        if not create:
            raise
    report = build_index(settings, embedder, progress=progress, lock_timeout=lock_timeout)
    return Aidsearch(settings, embedder, created=replace(report, generation=None))
