"""Build or update the index from a corpus folder: only new or changed documents are chunked and embedded."""
from __future__ import annotations

import logging
import os
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from . import __version__
from .chunk import CHUNKER_VERSION, chunk_document, passage_sentences
from .config import Settings
from .backends import MilvusTarget
from .embed import Embedder, SpanEmbedder
from .errors import IndexCorruptError, IndexMismatchError, IngestError
from .ingest import Skipped, corpus_files, printable, read_documents, reading_version
from .lexical import Terms
from .store import Generation, IndexStore
from .types import Chunk, Document

log = logging.getLogger("aidsearch")


class Progress(Protocol):
    """Receives indexing progress: ``stage`` "read" counts documents, "embed" passages (with their sentences); each
    stage starts with ``done`` 0 and ends with ``done == total``."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...


class Pace:
    """Rate and time left of each stage from its progress calls: ``pace(stage, done, total)`` gives
    (units per second, seconds left), None until the stage has done something."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> tuple[float | None, float | None]:
        now = self.clock()
        elapsed = now - self.started.setdefault(stage, now)
        if done <= 0 or elapsed <= 0:
            return None, None
        rate = done / elapsed
        return rate, max(0, total - done) / rate


@dataclass(frozen=True)
class IndexReport:
    documents: int
    chunks: int
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0
    embedded_chunks: int = 0
    embedded_texts: int = 0
    skipped: tuple[Skipped, ...] = ()
    seconds: float = 0.0
    written: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    generation: Generation | None = field(default=None, repr=False, compare=False)  # the one written, if any

    def to_dict(self) -> dict[str, object]:
        return {
            "documents": self.documents, "chunks": self.chunks, "added": list(self.added),
            "updated": list(self.updated), "removed": list(self.removed), "unchanged": self.unchanged,
            "embedded_chunks": self.embedded_chunks, "embedded_texts": self.embedded_texts, "written": self.written,
            "seconds": round(self.seconds, 2),
            "texts_per_second": round(self.embedded_texts / self.timings["embed"], 1)
            if self.timings.get("embed") else None,
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
        }


def chunking_settings(settings: Settings) -> dict[str, int]:
    return {"max_tokens": settings.chunk_tokens, "overlap": settings.chunk_overlap, "version": CHUNKER_VERSION}


def backend_record(settings: Settings) -> dict[str, str]:
    """Where dense search runs, as the manifest records it (never the Milvus token)."""
    if settings.index_backend == "milvus":
        return {"name": "milvus", **MilvusTarget.of(settings).describe()}
    return {"name": "faiss"}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"aidsearch": __version__}
    for pkg in ("sentence-transformers", "transformers", "torch", "faiss-cpu", "bm25s", "pymilvus", "milvus-lite"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _previous(store: IndexStore, embedder: Embedder, settings: Settings, rebuild: bool,
              loaded: Generation | None) -> Generation | None:
    if rebuild or not store.exists():
        return None
    try:
        gen = loaded if loaded is not None and loaded.folder == store.current() else store.load()
        store.check_compatible(gen.manifest, fingerprint=embedder.info.fingerprint,
                               chunking=chunking_settings(settings))
        return gen
    except (IndexMismatchError, IndexCorruptError) as exc:
        log.warning("%s; rebuilding from scratch", str(exc).rsplit(": rebuild it", 1)[0])
        return None


@dataclass(frozen=True)
class _Listed:
    """A corpus file as listed: its stamp, its entry in the previous manifest, its document when unchanged since,
    and what the previous run recorded when it was skipped."""
    source: str
    path: str
    stamp: dict
    prev: dict | None
    same_file: bool
    unchanged: Document | None
    known: dict | None


def _remember(skips: dict[str, dict], source: str, entry: dict) -> None:
    """Record a file that is not indexed, unless its name or reason cannot be written as UTF-8 (a file name of
    undecodable bytes): that one is read again at each update."""
    try:
        (source + entry["reason"]).encode("utf-8")
    except UnicodeEncodeError:
        return
    skips[source] = entry


def build_index(settings: Settings, embedder: Embedder, *, rebuild: bool = False, progress: Progress | None = None,
                lock_timeout: float = 0.0, loaded: Generation | None = None) -> IndexReport:
    """Bring the index in ``settings.index_dir`` up to date with the corpus folder (called through
    ``aidsearch.api``: ``open_index(create=True)`` and ``Aidsearch.update``); ``loaded``, a generation the caller
    holds, is used instead of reading it again when it is still the current one."""
    started = time.perf_counter()
    root = Path(settings.corpus_dir)
    if not root.is_dir():
        raise IngestError(f"corpus folder not found: {root}")
    store = IndexStore(settings.index_dir)
    with store.lock(timeout=lock_timeout):
        old = _previous(store, embedder, settings, rebuild, loaded)
        old_entries: dict[str, dict] = old.manifest.get("documents", {}) if old else {}
        old_docs = old.documents if old else {}
        same_code = old is not None and old.manifest.get("versions") == _versions()
        old_skips: dict[str, dict] = old.manifest.get("skipped", {}) if old and same_code else {}
        skips: dict[str, dict] = {}  # files not indexed, remembered so that an unchanged one is not read again
        skipped: list[Skipped] = []
        files = corpus_files(root, skipped=skipped)
        docs: list[Document] = []
        entries: dict[str, dict] = {}
        fresh: list[Document] = []
        added: list[str] = []
        updated: list[str] = []
        seen_ids: dict[str, str] = {}
        if progress:
            progress("read", 0, len(files))
        listed: list[_Listed] = []
        ahead: list[str] = []  # files surely read, read ahead (in parallel when many)
        ahead_bytes = 0
        for source, path in files:
            stat = os.stat(path)
            prev = old_entries.get(source)
            version = reading_version(path)  # a file read by an earlier version of its reader is read again
            same_file = prev is not None and (prev["size"], prev["mtime_ns"], prev.get("read", 1)) == (
                stat.st_size, stat.st_mtime_ns, version)
            stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
                     **({"read": version} if version != 1 else {})}
            known = old_skips.get(source)
            if known is not None and {k: known.get(k) for k in stamp} != stamp:
                known = None
            unchanged = old_docs.get(prev["id"]) if prev is not None and same_file else None
            listed.append(_Listed(source, path, stamp, prev, same_file, unchanged, known))
            if unchanged is None and known is None:
                ahead.append(path)
                ahead_bytes += stat.st_size

        def chunked(doc: Document) -> list[Chunk]:
            return chunk_document(doc, embedder.count_tokens, max_tokens=settings.chunk_tokens,
                                  overlap=settings.chunk_overlap)

        prepared: dict[str, list[Chunk]] = {}  # the passages of documents read, where the reading chunked them
        reading = read_documents(ahead, root, settings.read_workers, prepare=chunked, size=ahead_bytes)
        with closing(reading) as reads:
            for n, f in enumerate(listed, 1):
                source, stamp, prev, known = f.source, f.stamp, f.prev, f.known
                chunks = None
                if f.unchanged is not None:
                    doc = f.unchanged
                elif known is not None and ("id" not in known or known["id"] in seen_ids):
                    # unreadable, or the same text as a file indexed before it, when last read; unchanged since
                    reason = (known["reason"] if "id" not in known
                              else f"same text as {printable(seen_ids[known['id']])}")
                    skipped.append(Skipped(printable(source), reason))
                    _remember(skips, source, {**known, "reason": reason})
                    continue
                else:
                    read, chunks = next(reads) if known is None else next(read_documents([f.path], root))
                    if isinstance(read, IngestError):
                        log.warning("skipped %s: %s", printable(source), read)
                        skipped.append(Skipped(printable(source), str(read)))
                        _remember(skips, source, {**stamp, "reason": str(read)})
                        continue
                    doc = read
                if doc.id in seen_ids:
                    reason = f"same text as {printable(seen_ids[doc.id])}"
                    skipped.append(Skipped(printable(source), reason))
                    _remember(skips, source, {**stamp, "reason": reason, "id": doc.id})
                    continue
                seen_ids[doc.id] = source
                docs.append(doc)
                if chunks is not None:
                    prepared[doc.id] = chunks
                if prev is not None and f.same_file and prev["id"] == doc.id:
                    entries[source] = prev  # shared with the previous manifest, never changed in place
                else:
                    entries[source] = {"id": doc.id, "size": stamp["size"], "mtime_ns": stamp["mtime_ns"],
                                       **({"read": stamp["read"]} if "read" in stamp else {})}
                if doc.id not in old_docs:
                    fresh.append(doc)
                    (updated if source in old_entries else added).append(source)
                if progress:
                    progress("read", n, len(files))
        removed = tuple(sorted(s for s in old_entries if s not in entries))

        t_chunk = time.perf_counter()
        new_chunks: list[Chunk] = []
        for doc in fresh:
            new_chunks += prepared[doc.id] if doc.id in prepared else chunked(doc)
        sentences = [passage_sentences(c.text) for c in new_chunks]
        spanner = embedder if settings.sentence_vectors == "pooled" and isinstance(embedder, SpanEmbedder) else None
        if settings.sentence_vectors == "pooled" and spanner is None and new_chunks:
            log.warning("this embedder has no pass per passage to pool from: sentences are embedded on their own")
        new_counts = [len(s) for s in sentences]
        t_embed = time.perf_counter()
        done, total = 0, len(new_chunks) + sum(new_counts)
        if progress and new_chunks:
            progress("embed", 0, len(new_chunks))

        def tick(n: int) -> None:
            nonlocal done
            before, done = done, done + n
            passages = len(new_chunks) * done // total
            if progress and passages > len(new_chunks) * before // total:
                progress("embed", passages, len(new_chunks))

        if spanner is not None:
            texts = [c.embed_text() for c in new_chunks]  # the passage text ends each: its sentences are there
            spans = [[(len(t) - len(c.text) + s.start, len(t) - len(c.text) + s.end) for s in sents]
                     for t, c, sents in zip(texts, new_chunks, sentences)]
            new_vectors, new_sentences = spanner.encode_with_spans(texts, spans, progress=tick)
        else:
            embedded = embedder.encode_passages([c.embed_text() for c in new_chunks] + [
                c.sentence_text(s.text) for c, sents in zip(new_chunks, sentences) for s in sents], progress=tick)
            new_vectors, new_sentences = embedded[:len(new_chunks)], embedded[len(new_chunks):]
        t_write = time.perf_counter()

        keep_ids = {d.id for d in docs} - {d.id for d in fresh}
        kept_rows = [i for i, c in enumerate(old.chunks) if c.doc_id in keep_ids] if old else []
        chunks = [old.chunks[i] for i in kept_rows] + new_chunks if old else new_chunks
        by_id = {d.id: d for d in docs}
        only_added = (old is not None and kept_rows == list(range(len(old.chunks)))
                      and all(by_id.get(i) is d or by_id.get(i) == d for i, d in old.documents.items()))
        vectors, sentence_vectors, counts = new_vectors, new_sentences, list(new_counts)
        if old is not None and kept_rows and not only_added:  # written again: the kept rows, then the new ones
            vectors = np.concatenate([old.vectors()[kept_rows].astype(np.float32), new_vectors])
            kept = old.sentence_rows(kept_rows)
            sentence_vectors = np.concatenate([kept, new_sentences.astype(kept.dtype)])
            counts = np.diff(old.sentence_offsets)[kept_rows].tolist() + counts
        sentence_offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        per_doc: dict[str, int] = {}
        for c in chunks:
            per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
        for source, entry in entries.items():  # an unchanged file keeps the previous manifest's entry
            if entry.get("chunks") != per_doc.get(entry["id"], 0):
                entries[source] = {**entry, "chunks": per_doc.get(entry["id"], 0)}

        backend = backend_record(settings)
        changed = bool(fresh or removed or old is None)
        written: Generation | None = None
        if not changed and old is not None:
            changed = (old_entries != entries or old.manifest.get("skipped", {}) != skips
                       or old.manifest.get("backend", {"name": "faiss"}) != backend)
        if changed:
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            langs: dict[str, int] = {}
            for d in docs:
                langs[d.lang] = langs.get(d.lang, 0) + 1
            manifest = {
                "created": old.manifest.get("created", now) if old else now,
                "updated": now,
                "model": embedder.info.to_dict(),
                "chunking": chunking_settings(settings),
                "sentence_vectors": "separate" if spanner is None else "pooled",  # how the passages added last were
                "versions": _versions(),
                "corpus": str(root),
                "documents": entries,
                "skipped": skips,
                "languages": langs,
                "backend": backend,
            }
            terms = Terms.of([c.embed_text() for c in new_chunks])
            if old is not None:
                terms = old.terms().take(kept_rows) + terms
            written = store.write(manifest, chunks, docs, vectors, sentence_vectors, sentence_offsets, terms=terms,
                                  extends=old if only_added else None, faiss=backend["name"] == "faiss")
        timings = {"chunk": t_embed - t_chunk, "embed": t_write - t_embed, "write": time.perf_counter() - t_write}
        return IndexReport(
            documents=len(docs), chunks=len(chunks), added=tuple(added), updated=tuple(updated), removed=removed,
            unchanged=len(docs) - len(fresh), embedded_chunks=len(new_chunks), embedded_texts=total,
            skipped=tuple(skipped),
            seconds=time.perf_counter() - started, written=changed, timings=timings, generation=written,
        )
