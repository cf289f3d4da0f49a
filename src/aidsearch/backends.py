"""Where passages are searched: FAISS and BM25 inside the index folder (the default backend) or a Milvus collection
(a Milvus Lite folder, or a Milvus server or cluster) kept in step with the current index generation.

The index generation stays the reference: its passages and sentence vectors are read by every backend, and a Milvus
collection is brought back to it (passages added or deleted by id) whenever it differs, after an update, a crash or
a switch of backend. On a Milvus server that has full-text search (2.5 or later; on Milvus Lite only when asked)
keyword search runs there too: the collection holds each passage's terms as aidsearch's own analyzer makes them
(accent-folded, codes and numbers whole) and Milvus scores them with BM25; elsewhere the index folder's BM25
answers. Filters become Milvus scalar expressions; what Milvus returns is checked against the same filter mask, so
both backends find the same passages.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from .errors import ConfigError, IndexWriteError
from .lexical import IndexBM25, LexicalSearch, Terms, tokenize
from .lexicon import fold
from .query import YEAR_RANGE
from .store import HNSW_EF_SEARCH, Generation, build_faiss, masked_search
from .types import Chunk, Document

MILVUS_LITE_FOLDER = "milvus.db"  # in the index folder, when ``milvus_uri`` is empty
INSERT_BATCH = 1024
MAX_YEARS = 256
MAX_FUNDERS = 64
SCHEMA = "3"  # the collection's fields; a collection of another schema is filled again
MAX_TERMS_BYTES = 65535
FULL_TEXT_SINCE = (2, 5)  # the first Milvus version with BM25 full-text search
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}  # those of the index folder's BM25
_STATE = ("aidsearch.generation", "aidsearch.fingerprint", "aidsearch.chunking", "aidsearch.passages",
          "aidsearch.schema")
log = logging.getLogger("aidsearch")


class DenseSearch(Protocol):
    """The passages most similar to a query vector, as rows of the generation it serves."""

    def search(self, query: np.ndarray, n: int, mask: np.ndarray | None,
               filters: dict[str, tuple[str, ...]], exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and inner products of the ``n`` best passages among those ``mask`` allows (None: all), best first.
        ``filters`` and ``exclude`` (rows to leave out) are what ``mask`` was computed from."""
        ...


class FaissSearch:
    """Search with the generation's own FAISS index (built in memory when the generation was written without); the
    passages an update left outside its HNSW graph (the tail) are scored exactly beside it."""

    def __init__(self, gen: Generation) -> None:
        index = gen.faiss_index
        if index is None and gen.chunks:
            log.warning("index in %s has no FAISS index (built for Milvus): building one in memory",
                        gen.folder.parent)
            index = build_faiss(gen.vectors())
        self.index, self.count = index, len(gen.chunks)
        self.graph = int(index.ntotal) if index is not None else 0
        self.tail = gen.vector_rows.rows(self.graph, self.count).astype(np.float32) if self.graph < self.count else None

    def search(self, query: np.ndarray, n: int, mask: np.ndarray | None,
               filters: dict[str, tuple[str, ...]], exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if mask is not None:
            ids, scores = masked_search(self.index, query, mask[:self.graph], n)
        else:
            best, found = self.index.search(query.reshape(1, -1).astype(np.float32), min(n, self.graph))
            keep = found[0] >= 0
            ids, scores = found[0][keep], best[0][keep]
        if self.tail is None:
            return ids, scores
        rows = np.arange(len(self.tail)) if mask is None else np.flatnonzero(mask[self.graph:])
        tail_scores = self.tail[rows] @ np.asarray(query, dtype=np.float32).reshape(-1)
        ids = np.concatenate([ids.astype(np.int64), rows + self.graph])
        scores = np.concatenate([scores.astype(np.float32), tail_scores.astype(np.float32)])
        order = np.argsort(-scores, kind="stable")[:n]
        return ids[order], scores[order]


def _escaped(value: str, like: bool = False) -> str:
    """``value`` inside a Milvus string literal; with ``like``, its ``%`` and ``_`` match only themselves."""
    text = "".join(ch if ch.isprintable() else " " for ch in value).replace("\\", "\\\\")
    if like:
        text = text.replace("%", "\\\\%").replace("_", "\\\\_")
    return text.replace('"', '\\"')


def _literal(value: str) -> str:
    return f'"{_escaped(value)}"'


def _years(values: Sequence[str]) -> list[int]:
    years: set[int] = set()
    for v in values:
        m = YEAR_RANGE.match(v)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            years.update(range(lo, hi + 1))
    return sorted(years)


def milvus_filter(filters: dict[str, tuple[str, ...]], exclude_ids: Sequence[str] = (),
                  funders: Sequence[str] = ()) -> str:
    """The Milvus scalar expression of aidsearch ``filters`` (values of one key: any; keys: all) and of passage ids
    to leave out; "" when there is nothing to filter. A funder filter matches part of a name: it becomes the list of
    the index's (folded) ``funders`` names that contain one of its values (Milvus before 2.4 matches only
    prefixes)."""
    parts = []
    for key, values in sorted(filters.items()):
        if key == "country":
            parts.append(f"country in [{', '.join(_literal(fold(v)) for v in values)}]")
        elif key == "funder":
            names = [n for n in funders if any(fold(v) in n for v in values)] or [""]
            parts.append(f"ARRAY_CONTAINS_ANY(funders, [{', '.join(_literal(n) for n in names)}])")
        elif key == "source":
            parts.append("(" + " or ".join(f'source like "{_escaped(v.lstrip("./"), like=True)}%"' for v in values)
                         + ")")
        elif key == "year":
            parts.append(f"ARRAY_CONTAINS_ANY(years, {_years(values)})")
        elif key == "lang":
            parts.append(f"lang in [{', '.join(_literal(v.lower()[:2]) for v in values)}]")
    if exclude_ids:
        parts.append(f"id not in [{', '.join(_literal(i) for i in exclude_ids)}]")
    return " and ".join(parts)


def _funders(doc: Document) -> list[str]:
    return list(dict.fromkeys(fold(f.get("name") or "") for f in doc.metadata.get("funders") or []))[:MAX_FUNDERS]


def _passage_row(chunk: Chunk, doc: Document, vector: np.ndarray) -> dict[str, Any]:
    meta = doc.metadata
    return {"id": chunk.id, "doc_id": chunk.doc_id, "source": chunk.source, "lang": chunk.lang,
            "country": fold(str(meta.get("country") or "")),
            "funders": _funders(doc),
            "years": [int(y) for y in meta.get("years") or []][:MAX_YEARS],
            "vector": vector.astype(np.float32).tolist()}


def _term_text(terms: Sequence[str]) -> str:
    """Terms as one string that Milvus's standard analyzer splits back into the same terms ("lao/027" is kept whole
    as "lao_027"; the empty passage's marker term is dropped)."""
    text = " ".join(t.replace("/", "_") for t in terms if t.isprintable())
    return text.encode()[:MAX_TERMS_BYTES].decode(errors="ignore")


def _passage_terms(terms: Terms, rows: Sequence[int]) -> list[str]:
    return [_term_text([terms.vocab[i] for i in terms.ids[terms.offsets[r]:terms.offsets[r + 1]]]) for r in rows]


def _version(text: str) -> tuple[int, ...]:
    """(2, 5, 1) for "v2.5.1", "v2.5.1-beta" or "milvus_lite-2.5.1"; () when there is no version number."""
    found = re.search(r"\d+(?:\.\d+)+", text)
    return tuple(int(p) for p in found.group().split(".")) if found else ()


@dataclass(frozen=True)
class MilvusTarget:
    """Where the passages are kept: ``uri`` (a Milvus Lite folder or ``http://host:19530``), the collection name
    and the token (None for none)."""

    uri: str
    collection: str
    token: str | None = None

    @classmethod
    def of(cls, settings: Any) -> MilvusTarget:
        uri = settings.milvus_uri or str(Path(settings.index_dir) / MILVUS_LITE_FOLDER)
        return cls(uri, settings.milvus_collection, settings.milvus_token or None)

    def describe(self) -> dict[str, str]:
        return {"uri": self.uri, "collection": self.collection}


_CLIENTS: dict[tuple[str, str | None], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(target: MilvusTarget) -> Any:
    """One client per URI and token in this process (a Milvus Lite folder admits one process at a time)."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # keep-alive notices of gRPC's core; failures raise anyway
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ConfigError("index_backend milvus needs pymilvus and milvus-lite: "
                          "pip install 'aidsearch[milvus]'") from None
    key = (target.uri, target.token)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            if "://" not in target.uri:
                Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
                # Milvus Lite keeps no server timestamps: listing ids warns of it on every sync
                logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
            if "://" not in target.uri and _locked(Path(target.uri) / "LOCK"):
                raise ConfigError(f"cannot open Milvus Lite folder {target.uri}: another process has it open "
                                  "(one process at a time; for several, run `milvus-lite server --data-dir "
                                  "FOLDER` and set milvus_uri to http://host:19530)")
            quiet = logging.getLogger("milvus_lite.server_manager")  # it logs a traceback before pymilvus raises
            level, quiet.level = quiet.level, logging.CRITICAL
            try:
                _CLIENTS[key] = MilvusClient(target.uri, token=target.token or "")
            except Exception as exc:
                reason = " ".join(str(exc).split())[:200]
                raise ConfigError(f"cannot open Milvus at {target.uri}: {reason}") from None
            finally:
                quiet.setLevel(level)
        return _CLIENTS[key]


def _locked(path: Path) -> bool:
    """Whether another process holds the advisory lock Milvus Lite takes on its folder."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class MilvusSearch:
    """Search in a Milvus collection that holds the generation's passage vectors and filter fields; ``sync`` (run
    when opened) brings the collection to the generation first."""

    def __init__(self, gen: Generation, target: MilvusTarget, previous: MilvusSearch | None = None,
                 full_text: str = "auto") -> None:
        self.gen, self.target = gen, target
        self.client = _client(target)
        self.full_text = self._full_text(full_text)
        self.rows = {c.id: i for i, c in enumerate(gen.chunks)}
        self.funders = sorted({n for d in gen.documents.values() for n in _funders(d)})
        self._lock = threading.Lock()
        self.sync(previous if previous is not None and previous.target == target else None)

    def _full_text(self, setting: str) -> bool:
        """Whether keyword search runs in Milvus: ``setting`` "on", "off", or "auto" (on a Milvus server that has
        full-text search, not on Milvus Lite)."""
        if setting == "off":
            return False
        try:
            version = str(self.client.get_server_version())
        except Exception as exc:
            reason = " ".join(str(exc).split())[:200]
            raise ConfigError(f"cannot reach Milvus at {self.target.uri}: {reason}") from None
        supported = _version(version) >= FULL_TEXT_SINCE
        if setting == "on" and not supported:
            raise ConfigError(f"milvus_full_text is on but the Milvus at {self.target.uri} ({version}) has no "
                              "full-text search (Milvus 2.5 or later): set milvus_full_text to auto or off")
        # Milvus Lite scores BM25 with each segment's own statistics: at 68,000 passages its rankings part from the
        # index's and it is slower (docs/BENCHMARKS.md, Backends), so "auto" keeps the index's BM25 there
        return supported and (setting == "on" or not version.startswith("milvus_lite"))

    def _state(self) -> dict[str, str]:
        return {"aidsearch.generation": self.gen.folder.name,
                "aidsearch.fingerprint": str(self.gen.manifest.get("model", {}).get("fingerprint")),
                "aidsearch.chunking": json.dumps(self.gen.manifest.get("chunking"), sort_keys=True),
                "aidsearch.passages": str(len(self.gen.chunks)),
                "aidsearch.schema": SCHEMA + ("+bm25" if self.full_text else "")}

    def _stored_state(self) -> dict[str, str] | None:
        name = self.target.collection
        if not self.client.has_collection(name):
            return None
        props = self.client.describe_collection(name).get("properties") or {}
        return {k: str(props.get(k, "")) for k in _STATE}

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
        schema.add_field("source", DataType.VARCHAR, max_length=8192)
        schema.add_field("funders", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_FUNDERS,
                         max_length=1024)
        schema.add_field("lang", DataType.VARCHAR, max_length=16)
        schema.add_field("country", DataType.VARCHAR, max_length=512)
        schema.add_field("years", DataType.ARRAY, element_type=DataType.INT64, max_capacity=MAX_YEARS)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        params = self.client.prepare_index_params()
        params.add_index("vector", index_type="HNSW", metric_type="IP", params={"M": 32, "efConstruction": 80})
        if self.full_text:
            from pymilvus import Function, FunctionType

            schema.add_field("terms", DataType.VARCHAR, max_length=MAX_TERMS_BYTES, enable_analyzer=True,
                             analyzer_params={"tokenizer": "standard", "filter": ["lowercase"]})
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                         output_field_names=["sparse"]))
            params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
        self.client.create_collection(self.target.collection, schema=schema, index_params=params)

    def _load(self) -> None:
        """Load the collection for search (a collection another process wrote starts released)."""
        from pymilvus.client.types import LoadState

        if self.client.get_load_state(self.target.collection).get("state") != LoadState.Loaded:
            self.client.load_collection(self.target.collection)

    def _stored_ids(self) -> set[str]:
        it = self.client.query_iterator(self.target.collection, batch_size=4096, filter="", output_fields=["id"])
        ids: set[str] = set()
        try:
            while batch := it.next():
                ids.update(r["id"] for r in batch)
        finally:
            it.close()
        return ids

    def sync(self, previous: MilvusSearch | None = None) -> dict[str, int]:
        """Bring the collection to the generation: passages it lacks are inserted, passages the generation no longer
        holds are deleted (all of them again when the model or chunking changed). Returns the counts. ``previous``:
        the search of the generation before, whose passages the collection holds if it is still marked with it
        (then they are not listed again)."""
        want = self._state()
        name = self.target.collection
        try:
            stored = self._stored_state()
            if stored == want:
                self._load()
                return {"inserted": 0, "deleted": 0}
            dim = self.gen.vector_rows.shape[1] if self.gen.chunks else 0
            if stored is not None and any(stored[k] != want[k] for k in ("aidsearch.fingerprint",
                                                                         "aidsearch.chunking", "aidsearch.schema")):
                self.client.drop_collection(name)
                stored = None
            if stored is None:
                if not dim:
                    return {"inserted": 0, "deleted": 0}
                self._create(dim)
            present = set(previous.rows) if previous is not None and stored == previous._state() else \
                self._stored_ids()
            gone = sorted(present - self.rows.keys())
            for i in range(0, len(gone), INSERT_BATCH):
                self.client.delete(name, filter=f"id in [{', '.join(_literal(x) for x in gone[i:i + INSERT_BATCH])}]")
            missing = [row for cid, row in self.rows.items() if cid not in present]
            terms = self.gen.terms() if self.full_text and missing else None
            for i in range(0, len(missing), INSERT_BATCH):
                block = missing[i:i + INSERT_BATCH]
                vectors = self.gen.vector_rows.take(block)
                rows = [_passage_row(self.gen.chunks[r], self.gen.documents[self.gen.chunks[r].doc_id], v)
                        for r, v in zip(block, vectors)]
                if terms is not None:
                    for row, text in zip(rows, _passage_terms(terms, block)):
                        row["terms"] = text
                self.client.insert(name, rows)
            self.client.flush(name)
            self.client.alter_collection_properties(name, properties=want)  # last: marks the collection complete
            self._load()
        except Exception as exc:
            reason = " ".join(str(exc).split())[:200]
            raise IndexWriteError(f"cannot bring Milvus collection {name} at {self.target.uri} up to date: "
                                  f"{reason}") from None
        if gone or missing:
            log.info("Milvus collection %s: %d passages inserted, %d deleted", name, len(missing), len(gone))
        return {"inserted": len(missing), "deleted": len(gone)}

    def search(self, query: np.ndarray, n: int, mask: np.ndarray | None,
               filters: dict[str, tuple[str, ...]], exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return self._search([query.astype(np.float32).tolist()], "vector", n, mask, filters, exclude,
                            {"metric_type": "IP", "params": {"ef": HNSW_EF_SEARCH}})

    def _search(self, data: list[Any], field: str, n: int, mask: np.ndarray | None,
                filters: dict[str, tuple[str, ...]], exclude: np.ndarray | None,
                params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if not self.rows or n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        excluded = [self.gen.chunks[int(r)].id for r in np.flatnonzero(exclude)] if exclude is not None else []
        with self._lock:
            found = self.client.search(self.target.collection, data, anns_field=field, limit=min(n, len(self.rows)),
                                       filter=milvus_filter(filters, excluded, self.funders), output_fields=["id"],
                                       search_params=params)
        rows, scores = [], []
        for hit in found[0]:
            row = self.rows.get(hit["id"])
            if row is not None and (mask is None or mask[row]):
                rows.append(row)
                scores.append(abs(hit["distance"]))  # Milvus Lite gives BM25 scores negated
        return np.array(rows, dtype=np.int64), np.array(scores, dtype=np.float32)

    def text_search(self, query: str, n: int, mask: np.ndarray | None,
                    filters: dict[str, tuple[str, ...]], exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """BM25 full-text search over the collection's terms (the collection must hold them)."""
        text = _term_text(tokenize(query))
        if not text:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows, scores = self._search([text], "sparse", n, mask, filters, exclude, {"metric_type": "BM25"})
        return rows, scores / (BM25_PARAMS["bm25_k1"] + 1)  # Milvus keeps BM25's (k1 + 1) factor; the index drops it


class MilvusFullText:
    """Keyword search by Milvus's BM25 over the terms a ``MilvusSearch`` collection holds."""

    name = "milvus"

    def __init__(self, milvus: MilvusSearch) -> None:
        self.milvus = milvus

    def search(self, query: str, n: int, mask: np.ndarray | None,
               filters: dict[str, tuple[str, ...]], exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return self.milvus.text_search(query, n, mask, filters, exclude)


def dense_search(settings: Any, gen: Generation, previous: DenseSearch | None = None) -> DenseSearch:
    """The dense search of ``settings.index_backend`` over ``gen``; ``previous``, the one of the generation before
    in this process, spares a Milvus collection the listing of what it holds."""
    if settings.index_backend == "milvus":
        return MilvusSearch(gen, MilvusTarget.of(settings), previous if isinstance(previous, MilvusSearch) else None,
                            settings.milvus_full_text)
    return FaissSearch(gen)


def lexical_search(gen: Generation, dense: DenseSearch) -> LexicalSearch:
    """Milvus full-text search when ``dense`` is a Milvus collection that holds the passages' terms, else the index
    folder's BM25."""
    if isinstance(dense, MilvusSearch) and dense.full_text:
        return MilvusFullText(dense)
    return IndexBM25(gen.lexical)
