"""The on-disk index: generations written whole, then switched to by one atomic rename of ``CURRENT``.

A generation folder holds ``manifest.json``, ``vectors.npy`` (fp16), ``index.faiss``, ``chunks.jsonl``,
``documents.jsonl`` and the BM25 files. A crash while writing leaves ``CURRENT`` on the previous generation.
An update that only adds documents links the previous generation's files and writes the new rows beside them as
segments (``vectors.g000007.npy``, ...), which the manifest lists in order; files are never changed once written.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError, IndexWriteError
from .lexical import LexicalIndex, Terms
from .types import Chunk, Document, Page

FORMAT = 1
HNSW_THRESHOLD = 50_000
# candidates an HNSW search visits: at 67,880 passages, recall@10 against exact search 0.833 at 128, 0.958 at 512,
# 0.976 at 768 (300 development and PIAF questions), for about 0.7 ms a query
HNSW_EF_SEARCH = 768
# passages an update may leave outside the HNSW graph (searched exactly beside it) before it links them in: the
# larger of these (about 0.3 ms a query at 2,000 rows)
TAIL_ROWS, TAIL_SHARE = 2048, 0.02
CURRENT = "CURRENT"
_GENERATION = re.compile(r"gen-(\d{6,})")
LOCK = ".lock"
TERMS = "terms.npz"  # in the bm25 folder: the passages' terms, so that an update tokenizes only new passages
# the files that rows are appended to, by kind, as a generation written whole names them
STORED = {"vectors": "vectors.npy", "sentences": "sentences.npy", "chunks": "chunks.jsonl",
          "documents": "documents.jsonl"}
# segments of one kind an update may leave; the next one writes them again as one file
MAX_SEGMENTS = 8
log = logging.getLogger("aidsearch")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes | memoryview) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _nearly_full(folder: Path) -> bool:
    """True when the file system of ``folder`` has (almost) no room left; some writers lose the errno."""
    try:
        return shutil.disk_usage(folder).free < 1024 * 1024
    except OSError:
        return False


def _save_npy(path: Path, array: np.ndarray, previous: Sequence[Path] = ()) -> None:
    """``array`` as a ``.npy`` file; the rows of the ``previous`` files (same dtype and width) come first, copied
    as they are a block at a time."""
    if not previous:
        with open(path, "wb") as fh:
            np.save(fh, array)
        return
    old = [NpyRows(p) for p in previous]
    if any(array.dtype != o.dtype or array.shape[1:] != (o.shape[1],) for o in old):
        raise ValueError(f"cannot append {array.dtype} rows of shape {array.shape} to {old[0].name}")
    header = {"descr": np.lib.format.dtype_to_descr(old[0].dtype), "fortran_order": False,
              "shape": (sum(len(o) for o in old) + len(array), old[0].shape[1])}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for o, p in zip(old, previous):
            with open(p, "rb") as src:
                src.seek(o.offset)
                shutil.copyfileobj(src, fh, 1 << 22)
        fh.write(np.ascontiguousarray(array).tobytes())


def _append_to_copy(path: Path, previous: Sequence[Path], tail: bytes) -> None:
    """The ``previous`` files copied to ``path`` a block at a time (never whole in memory), then ``tail``."""
    with open(path, "wb") as fh:
        for p in previous:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 22)
        fh.write(tail)


def segments(manifest: dict[str, Any], kind: str) -> list[str]:
    """The files that hold ``kind``'s rows (a key of ``STORED``) in a generation, in order."""
    return list(manifest.get("segments", {}).get(kind) or [STORED[kind]])


def _segment_name(kind: str, number: int) -> str:
    stem, suffix = STORED[kind].split(".")
    return f"{stem}.g{number:06d}.{suffix}"


def _link_or_copy(source: Path, target: Path) -> None:
    """``source`` at ``target`` too: a hard link (files of a generation are never changed), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _runs(rows: Sequence[int] | np.ndarray) -> Iterator[tuple[int, int]]:
    """The first and last value of each run of consecutive values in ``rows``, in order."""
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[j] + 1:
            j += 1
        yield int(rows[i]), int(rows[j])
        i = j + 1


class NpyRows:
    """Rows of a 2-D ``.npy`` file, read on demand with ``pread``: memory holds only the rows asked for
    (a memory map would count whole 2 MB pages of the file per row touched). Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if len(shape) != 2 or fortran:
            raise ValueError(f"{path.name}: expected a 2-D C-ordered array, found shape {shape}")
        self.name, self.shape, self.dtype = path.name, shape, np.dtype(dtype)
        self.row_bytes = shape[1] * self.dtype.itemsize
        if path.stat().st_size < self.offset + shape[0] * self.row_bytes:
            raise ValueError(f"{path.name} is truncated")
        self._fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, start: int, end: int) -> np.ndarray:
        count = max(0, end - start)
        data = os.pread(self._fd, count * self.row_bytes, self.offset + start * self.row_bytes)
        if len(data) != count * self.row_bytes:
            raise IndexCorruptError(f"index file {self.name} ended early: rebuild it with `aidsearch index --rebuild`")
        return np.frombuffer(data, dtype=self.dtype).reshape(count, self.shape[1])

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows ``rows``, in that order."""
        if not len(rows):
            return np.zeros((0, self.shape[1]), dtype=self.dtype)
        return np.concatenate([self.rows(first, last + 1) for first, last in _runs(rows)])

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


class SegmentRows(NpyRows):
    """The rows of several 2-D ``.npy`` files of one dtype and width, in order, read as one array."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.parts = [NpyRows(p) for p in paths]
        first = self.parts[0]
        for part in self.parts[1:]:
            if part.dtype != first.dtype or part.shape[1] != first.shape[1]:
                raise ValueError(f"{part.name}: {part.dtype} rows of width {part.shape[1]}, "
                                 f"{first.name} has {first.dtype} rows of width {first.shape[1]}")
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.name, self.dtype, self.row_bytes = first.name, first.dtype, first.row_bytes
        self.shape = (int(self.starts[-1]), first.shape[1])

    def rows(self, start: int, end: int) -> np.ndarray:
        pieces = []
        for part, base in zip(self.parts, self.starts.tolist()):
            first, last = max(start, base), min(end, base + len(part))
            if first < last:
                pieces.append(part.rows(first - base, last - base))
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.zeros((0, self.shape[1]), dtype=self.dtype)

    def __del__(self) -> None:  # each part closes its own file
        pass


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


_SHARED = ("doc_id", "source", "title", "context", "lang", "heading")


def _chunk_from(row: dict[str, Any], shared: dict[str, str]) -> Chunk:
    """A chunk from its stored row; the fields its document's chunks repeat share one string object."""
    for key in _SHARED:
        value = row.get(key)
        if isinstance(value, str):
            row[key] = shared.setdefault(value, value)
    row["page_starts"] = tuple(map(tuple, row.get("page_starts", ())))
    return Chunk(**row)


def build_faiss(vectors: np.ndarray, hnsw_threshold: int | None = None):
    """Exact inner product for small collections; from ``hnsw_threshold`` vectors (default ``HNSW_THRESHOLD``),
    HNSW over fp16 copies (the precision the vectors are stored in anyway)."""
    import faiss

    dim = vectors.shape[1]
    index: Any
    if len(vectors) >= (HNSW_THRESHOLD if hnsw_threshold is None else hnsw_threshold):
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, 32, faiss.METRIC_INNER_PRODUCT)  # type: ignore[arg-type]
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if not index.is_trained:
            index.train(data)
        index.add(data)
    return index


def extend_faiss(base: Any, vectors: np.ndarray) -> Any:
    """A copy of ``base`` with ``vectors`` added after its rows: an update that only adds passages links them into
    the HNSW graph (or appends them to the flat index) instead of building it again."""
    import faiss

    index: Any = faiss.clone_index(base)
    if hasattr(base, "hnsw"):
        index.hnsw.efSearch = base.hnsw.efSearch
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def masked_search(index: Any, query: np.ndarray, mask: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` rows allowed by the boolean ``mask`` that are most similar to ``query`` (ids, scores), exactly:
    FAISS scans the flat vectors (the HNSW graph's own fp16 storage) and skips the rows the mask excludes, without
    copying them."""
    import faiss

    if not mask.any():
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    flat = faiss.downcast_index(index.storage) if hasattr(index, "hnsw") else index
    bits = np.packbits(mask, bitorder="little")  # bit i of byte i // 8: FAISS's bitmap layout
    selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))  # bits and selector live through the search
    params = faiss.SearchParameters()
    params.sel = selector
    scores, ids = flat.search(query.reshape(1, -1).astype(np.float32), min(n, int(mask.sum())), params=params)
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


@dataclass
class Generation:
    """One complete, loaded index generation."""

    folder: Path
    manifest: dict[str, Any]
    chunks: list[Chunk]
    documents: dict[str, Document]
    faiss_index: Any
    lexical: LexicalIndex
    sentence_vectors: NpyRows
    sentence_offsets: np.ndarray

    def files(self, kind: str) -> list[Path]:
        """The files that hold ``kind``'s rows (a key of ``STORED``), in order."""
        return [self.folder / name for name in segments(self.manifest, kind)]

    def vectors(self) -> np.ndarray:
        parts = [np.load(p) for p in self.files("vectors")]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @cached_property
    def vector_rows(self) -> NpyRows:
        """The passage vectors as stored, read on demand."""
        return SegmentRows(self.files("vectors"))

    def terms(self) -> Terms:
        """The terms BM25 was built from (tokenized again for a generation written without them)."""
        path = self.folder / "bm25" / TERMS
        return Terms.load(path) if path.is_file() else Terms.of([c.embed_text() for c in self.chunks])

    def chunk_sentence_vectors(self, row: int) -> np.ndarray:
        """The sentence vectors of passage ``row`` (float32), in ``passage_sentences`` order."""
        a, b = int(self.sentence_offsets[row]), int(self.sentence_offsets[row + 1])
        return self.sentence_vectors.rows(a, b).astype(np.float32)

    def sentence_rows(self, rows: Sequence[int]) -> np.ndarray:
        """The sentence vectors of passages ``rows``, in that order and as stored, read one run of consecutive
        passages at a time."""
        offsets = self.sentence_offsets
        parts = [self.sentence_vectors.rows(int(offsets[first]), int(offsets[last + 1])) for first, last in _runs(rows)]
        store = self.sentence_vectors
        return np.concatenate(parts) if parts else np.zeros((0, store.shape[1]), dtype=store.dtype)


_CHUNK_FIELDS = tuple(f.name for f in fields(Chunk))
_DOC_FIELDS = tuple(f.name for f in fields(Document))


def _chunk_row(c: Chunk) -> dict[str, Any]:
    return {name: getattr(c, name) for name in _CHUNK_FIELDS}  # a shallow row: written as JSON at once


def _doc_row(d: Document) -> dict[str, Any]:
    row = {name: getattr(d, name) for name in _DOC_FIELDS}
    row["pages"] = [[p.number, p.start, p.end] for p in d.pages]
    return row


def _one_copy(value: Any, shared: dict[str, str]) -> Any:
    """``value`` (parsed JSON) with its keys and short strings replaced by the equal ones in ``shared``, added when
    new: 100,000 documents' metadata repeat a few keys, countries and funders."""
    if isinstance(value, str):
        return shared.setdefault(value, value) if len(value) <= 80 else value
    if isinstance(value, dict):
        return {shared.setdefault(k, k): _one_copy(v, shared) for k, v in value.items()}
    if isinstance(value, list):
        return [_one_copy(v, shared) for v in value]
    return value


def _doc_from(row: dict[str, Any], shared: dict[str, str] | None = None) -> Document:
    row = dict(row)
    row["pages"] = tuple(Page(*p) for p in row.get("pages", ()))
    if shared is not None:
        for key in ("id", "source", "title", "lang"):  # the passages' own strings when they were read first
            row[key] = shared.setdefault(row[key], row[key])
        row["metadata"] = _one_copy(row.get("metadata", {}), shared)
    return Document(**row)


class IndexStore:
    """Reads and writes the index under ``root``; readers never see a half-written generation."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def current(self) -> Path | None:
        try:
            name = (self.root / CURRENT).read_text().strip()
        except (OSError, UnicodeDecodeError):  # missing, unreadable or garbage: no usable index
            return None
        folder = self.root / name
        return folder if _GENERATION.fullmatch(name) and folder.is_dir() else None

    def exists(self) -> bool:
        return self.current() is not None

    def read_manifest(self) -> dict[str, Any]:
        folder = self.current()
        if folder is None:
            raise IndexMissingError(f"no index in {self.root}: build one with `aidsearch index`")
        try:
            return json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"index in {self.root} is damaged ({exc.__class__.__name__}): "
                                    "rebuild it with `aidsearch index --rebuild`") from None

    def check_compatible(self, manifest: dict[str, Any], *, fingerprint: str, chunking: dict[str, Any]) -> None:
        """Raise if the index was made by another format, model or chunker than the one in use."""
        how = "rebuild it with `aidsearch index --rebuild`"
        if manifest.get("format") != FORMAT:
            raise IndexMismatchError(f"index in {self.root} has format {manifest.get('format')}, "
                                     f"this aidsearch reads format {FORMAT}: {how}")
        model = manifest.get("model", {})
        if model.get("fingerprint") != fingerprint:
            raise IndexMismatchError(f"index in {self.root} was built with model {model.get('name')} "
                                     f"(fingerprint {model.get('fingerprint')}), not the configured one "
                                     f"(fingerprint {fingerprint}): {how}")
        if manifest.get("chunking") != chunking:
            raise IndexMismatchError(f"index in {self.root} was built with chunking {manifest.get('chunking')}, "
                                     f"settings say {chunking}: {how}")

    def load(self) -> Generation:
        manifest = self.read_manifest()
        folder = self.current()
        assert folder is not None
        try:
            import faiss

            shared: dict[str, str] = {}
            files = {kind: [folder / name for name in segments(manifest, kind)] for kind in STORED}
            chunks = [_chunk_from(r, shared) for path in files["chunks"] for r in _read_jsonl(path)]
            docs = {d.id: d for path in files["documents"] for d in (_doc_from(r, shared) for r in _read_jsonl(path))}
            entries = manifest.get("documents")
            if isinstance(entries, dict):  # the file names and ids of the passages and documents, not copies
                for entry in entries.values():
                    if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                        entry["id"] = shared.setdefault(entry["id"], entry["id"])
                manifest["documents"] = {shared.setdefault(k, k): v for k, v in entries.items()}
            index: Any = faiss.read_index(str(folder / "index.faiss")) if manifest.get("faiss") != "none" else None
            if hasattr(index, "hnsw"):  # not a property of the graph: an index written earlier searches as wide
                index.hnsw.efSearch = HNSW_EF_SEARCH
            lexical = LexicalIndex.load(folder / "bm25", len(chunks))
            sentence_vectors = SegmentRows(files["sentences"])
            vector_count = len(SegmentRows(files["vectors"]))
            sentence_offsets = np.load(folder / "sentence_offsets.npy")
        except Exception as exc:  # any damaged file: one clear message
            raise IndexCorruptError(f"index in {self.root} is damaged ({exc.__class__.__name__}): "
                                    "rebuild it with `aidsearch index --rebuild`") from None
        if ((index is not None and index.ntotal != manifest.get("faiss_rows", len(chunks)))
                or manifest.get("chunks") != len(chunks) or vector_count != len(chunks)
                or len(sentence_offsets) != len(chunks) + 1 or sentence_offsets[-1] != len(sentence_vectors)):
            raise IndexCorruptError(f"index in {self.root} is inconsistent ({vector_count} "
                                    f"vectors, {len(chunks)} passages): rebuild it with `aidsearch index --rebuild`")
        return Generation(folder, manifest, chunks, docs, index, lexical, sentence_vectors, sentence_offsets)

    @contextmanager
    def lock(self, timeout: float = 0.0) -> Iterator[None]:
        """Exclusive writer lock; waits up to ``timeout`` seconds, then refuses."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / LOCK, "a+")
        except OSError as exc:
            raise IndexWriteError(f"cannot write the index in {self.root}: {exc.strerror or exc}") from None
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        fh.seek(0)
                        holder = fh.read().strip() or "?"
                        raise IndexLockedError(f"another process (pid {holder}) is writing the index in "
                                               f"{self.root}; try again when it has finished") from None
                    time.sleep(0.2)
            try:  # the holder's pid, shown to the next writer; informational only
                fh.seek(0)
                fh.truncate()
                fh.write(str(os.getpid()))
                fh.flush()
            except OSError:
                pass
            yield
        finally:
            try:
                fh.close()
            except OSError:  # the pid could not be flushed (disk full): nothing to keep
                pass

    def write(self, manifest: dict[str, Any], chunks: Sequence[Chunk], documents: Sequence[Document],
              vectors: np.ndarray, sentence_vectors: np.ndarray, sentence_offsets: np.ndarray, *,
              hnsw_threshold: int | None = None, extends: Generation | None = None,
              terms: Terms | None = None, faiss: bool = True) -> Generation:
        """Write a new generation and switch ``CURRENT`` to it; older generations are then removed. ``extends`` is
        the previous generation when its passages are the first ones of ``chunks``, unchanged, and ``documents``
        hold all of its documents: ``vectors``, ``sentence_vectors`` and ``sentence_offsets`` then cover only the
        passages after those, its files are copied with the new rows appended, and its FAISS index is extended
        rather than built again. ``terms`` are the passages' terms when known (else they are tokenized here).
        Without ``faiss`` no FAISS index is written (dense search runs elsewhere: ``aidsearch.backends``).
        Returns the generation written, as ``load`` would read it.

        If writing fails (disk full, I/O error) everything written is removed and ``IndexWriteError`` raised;
        ``CURRENT`` still names the previous generation."""
        if len(chunks) - (len(extends.chunks) if extends else 0) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        self.root.mkdir(parents=True, exist_ok=True)
        previous = self.current()
        number = int(previous.name[4:]) + 1 if previous else 1
        name = f"gen-{number:06d}"
        work = self.root / f".{name}.tmp-{os.getpid()}"
        pointer = self.root / f".{CURRENT}.tmp-{os.getpid()}"
        final = self.root / name
        try:
            written = self._write_generation(work, final, pointer, name, number, manifest, chunks, documents,
                                             vectors, sentence_vectors, sentence_offsets, hnsw_threshold, extends,
                                             terms, faiss)
        except (OSError, RuntimeError) as exc:  # disk full, quota, I/O error (faiss raises RuntimeError)
            full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or _nearly_full(self.root)
            if self.current() == final:  # only the last directory sync failed: the new generation is in use
                log.warning("index written, but syncing %s failed: %s", self.root, exc)
                self.cleanup(keep=name)
                return self.load()
            shutil.rmtree(final, ignore_errors=True)  # the switch did not happen: drop everything written
            shutil.rmtree(work, ignore_errors=True)
            pointer.unlink(missing_ok=True)
            reason = os.strerror(errno.ENOSPC) if full else (getattr(exc, "strerror", None) or str(exc))
            reason = " ".join(str(reason).split())[:200]
            raise IndexWriteError(f"cannot write the index in {self.root}: {reason}; "
                                  "the previous index is unchanged") from exc
        self.cleanup(keep=name)
        return written

    def _write_generation(self, work: Path, final: Path, pointer: Path, name: str, number: int,
                          manifest: dict[str, Any], chunks: Sequence[Chunk], documents: Sequence[Document],
                          vectors: np.ndarray, sentence_vectors: np.ndarray, sentence_offsets: np.ndarray,
                          hnsw_threshold: int | None, extends: Generation | None,
                          terms: Terms | None, with_faiss: bool) -> Generation:
        import faiss

        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        sentence_offsets = np.asarray(sentence_offsets, dtype=np.int64)
        if extends is not None:
            before = extends.sentence_offsets
            sentence_offsets = np.concatenate([before, sentence_offsets[1:] + before[-1]])
        new_rows: dict[str, Any] = {"vectors": vectors.astype(np.float16),
                                    "sentences": np.asarray(sentence_vectors, dtype=np.float16)}
        if extends is None:
            new_rows.update(chunks=[_chunk_row(c) for c in chunks], documents=[_doc_row(d) for d in documents])
        else:
            added = [d for d in documents if d.id not in extends.documents]
            new_rows.update(chunks=[_chunk_row(c) for c in chunks[len(extends.chunks):]],
                            documents=[_doc_row(d) for d in added])
            documents = [*extends.documents.values(), *added]
        files = self._write_rows(work, number, new_rows, extends)
        _save_npy(work / "sentence_offsets.npy", sentence_offsets)
        threshold = HNSW_THRESHOLD if hnsw_threshold is None else hnsw_threshold
        total = len(chunks)
        base = extends.faiss_index if extends is not None else None
        index: Any = None
        if with_faiss and extends is not None and base is not None and hasattr(base, "hnsw") and (
                total - base.ntotal <= max(TAIL_ROWS, int(total * TAIL_SHARE))):
            index = base  # the new passages join the tail, searched exactly: the graph and its file stay as they are
            _link_or_copy(extends.folder / "index.faiss", work / "index.faiss")
        elif with_faiss and extends is not None and base is not None and (hasattr(base, "hnsw") or total < threshold):
            tail = extends.vector_rows.rows(base.ntotal, len(extends.chunks)).astype(np.float32)
            index = extend_faiss(base, np.concatenate([tail, vectors]))
        elif with_faiss:
            every = vectors if extends is None else np.concatenate([extends.vectors().astype(np.float32), vectors])
            index = build_faiss(every, threshold)
        if index is not None and index is not base:  # written piece by piece: no copy; a full disk is an OSError
            with open(work / "index.faiss", "wb") as fh:
                faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write))  # type: ignore[attr-defined]
        (work / "bm25").mkdir()
        terms = Terms.of([c.embed_text() for c in chunks]) if terms is None else terms
        if len(terms) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but terms of {len(terms)}")
        lexical = LexicalIndex(terms)
        lexical.save(work / "bm25")
        terms.save(work / "bm25" / TERMS)
        manifest = {**manifest, "format": FORMAT, "chunks": len(chunks), "generation": number,
                    "faiss": "none" if index is None else "hnsw" if hasattr(index, "hnsw") else "flat",
                    "faiss_rows": 0 if index is None else int(index.ntotal)}
        if any(names != [STORED[kind]] for kind, names in files.items()):
            manifest["segments"] = files
        else:
            manifest.pop("segments", None)
        text = json.dumps(manifest, ensure_ascii=False)  # one line: 3x faster to write at 60,000 documents
        _write(work / "manifest.json", text.encode())
        for path in work.rglob("*"):
            if path.is_file():
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(work)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(work, final)
        _write(pointer, name.encode())
        os.replace(pointer, self.root / CURRENT)
        _fsync_dir(self.root)
        return Generation(final, manifest, list(chunks), {d.id: d for d in documents}, index, lexical,
                          SegmentRows([final / name for name in files["sentences"]]), sentence_offsets)

    @staticmethod
    def _write_rows(work: Path, number: int, rows: dict[str, Any], extends: Generation | None) -> dict[str, list[str]]:
        """Write the rows of each kind of ``STORED`` into ``work`` and return the files that hold them, in order.
        Over ``extends``, its files are linked and the new rows written as one more segment; past
        ``MAX_SEGMENTS`` they are all copied into one file again, the new rows last."""
        files: dict[str, list[str]] = {}
        for kind, new in rows.items():
            npy = kind in ("vectors", "sentences")
            previous = segments(extends.manifest, kind) if extends is not None else []
            if previous and len(previous) < MAX_SEGMENTS:
                for name in previous:
                    _link_or_copy(extends.folder / name, work / name)  # type: ignore[union-attr]
                files[kind] = previous
                if not len(new):
                    continue
                files[kind] = [*previous, _segment_name(kind, number)]
                old: list[Path] = []
            else:
                files[kind] = [STORED[kind]]
                old = [extends.folder / name for name in previous]  # type: ignore[union-attr]
            if npy:
                _save_npy(work / files[kind][-1], new, old)
            else:
                _append_to_copy(work / files[kind][-1], old, _jsonl(new))
        return files

    def cleanup(self, keep: str | None = None) -> None:
        """Remove generations and temporary folders other than the current one (call while holding the lock)."""
        current = self.current()
        keep = keep or (current.name if current else None)
        for path in self.root.iterdir():
            if path.name in (keep, CURRENT, LOCK, ".gitkeep") or path.name.startswith(("feedback", "uploads")):
                continue
            if path.name.startswith(("gen-", ".gen-", f".{CURRENT}.tmp")):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
