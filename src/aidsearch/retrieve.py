"""Hybrid retrieval: dense (FAISS) and BM25 rankings fused by reciprocal rank, with metadata filters."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np

from .embed import Embedder
from .errors import QueryError
from .lexical import fold
from .store import Generation
from .types import Document, Hit

FILTER_KEYS = ("country", "lang", "funder", "year", "source")
MODES = ("hybrid", "dense", "bm25")
RRF_K = 60
_YEAR_RANGE = re.compile(r"^\s*(\d{4})\s*(?:(?:-|–|\.\.|to|à)\s*(\d{4}))?\s*$")

Filters = Mapping[str, str | Sequence[str]]


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
        if key == "year" and not _YEAR_RANGE.match(value):
            raise QueryError(f"bad year filter {value!r}: use 2015 or 2014-2016")
        out[key] = out.get(key, ()) + (value,)
    return out


@dataclass(frozen=True)
class _FacetColumns:
    """Each document's filterable values, folded once, in ``doc_list`` order."""

    countries: np.ndarray
    funders: list[list[str]]
    years: list[list[int]]
    sources: list[str]

    @classmethod
    def of(cls, docs: Sequence[Document]) -> _FacetColumns:
        return cls(np.array([fold(str(d.metadata.get("country") or "")) for d in docs]),
                   [[fold(f.get("name") or "") for f in d.metadata.get("funders") or []] for d in docs],
                   [list(d.metadata.get("years") or []) for d in docs], [d.source for d in docs])

    def matches(self, key: str, values: tuple[str, ...]) -> np.ndarray:
        """Which documents match any of ``values`` for filter ``key`` (not "lang", which is per passage)."""
        if key == "country":
            return np.isin(self.countries, [fold(v) for v in values])
        if key == "funder":
            wanted = [fold(v) for v in values]
            return np.array([any(v in n for v in wanted for n in names) for names in self.funders], dtype=bool)
        if key == "source":
            prefixes = tuple(v.lstrip("./") for v in values)
            return np.array([s.startswith(prefixes) for s in self.sources], dtype=bool)
        if key == "year":
            spans = []
            for v in values:
                m = _YEAR_RANGE.match(v)
                assert m
                spans.append((int(m.group(1)), int(m.group(2) or m.group(1))))
            return np.array([any(lo <= y <= hi for y in years for lo, hi in spans) for years in self.years], dtype=bool)
        return np.ones(len(self.sources), dtype=bool)


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the rankings in reciprocal rank fusion; ``exact`` replaces ``lexical`` when the query
    holds a code or a long number found in the index."""

    dense: float = 1.0
    lexical: float = 0.2
    sentence: float = 1.0
    exact: float = 3.0


class Retriever:
    """Searches one loaded generation; safe to share between threads (read-only)."""

    def __init__(self, gen: Generation, embedder: Embedder, weights: FusionWeights = FusionWeights()) -> None:
        self.weights = weights
        self.gen = gen
        self.embedder = embedder
        self.chunks = gen.chunks
        self.doc_list = list(gen.documents.values())
        position = {d.id: i for i, d in enumerate(self.doc_list)}
        self.chunk_doc = np.array([position[c.doc_id] for c in self.chunks], dtype=np.int64)
        self.chunk_lang = np.array([c.lang for c in self.chunks])
        self.vectors = gen.vectors() if self.chunks else np.zeros((0, 1), np.float16)

    @cached_property
    def _facets(self) -> _FacetColumns:
        return _FacetColumns.of(self.doc_list)

    def mask(self, filters: dict[str, tuple[str, ...]]) -> np.ndarray | None:
        if not filters:
            return None
        ok = np.ones(len(self.doc_list), dtype=bool)
        for key, values in filters.items():
            if key != "lang":
                ok &= self._facets.matches(key, values)
        rows = ok[self.chunk_doc] if len(self.chunks) else np.zeros(0, dtype=bool)
        if "lang" in filters:
            rows &= np.isin(self.chunk_lang, [v.lower()[:2] for v in filters["lang"]])
        return rows

    def _dense(self, qv: np.ndarray, mask: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        if mask is None:
            scores, ids = self.gen.faiss_index.search(qv.reshape(1, -1), min(n, len(self.chunks)))
            keep = ids[0] >= 0
            return ids[0][keep], scores[0][keep]
        rows = np.flatnonzero(mask)
        sims = self.vectors[rows].astype(np.float32) @ qv
        top = np.argsort(-sims)[:n]
        return rows[top], sims[top]

    def _lexical(self, query: str, mask: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.gen.lexical.scores(query)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        nonzero = np.flatnonzero(scores > 0)
        if not len(nonzero):
            return nonzero, scores[nonzero]
        top = nonzero[np.argsort(-scores[nonzero], kind="stable")[:n]]
        return top, scores[top]

    def search(self, query: str, *, k: int = 5, filters: dict[str, tuple[str, ...]] | None = None,
               max_per_doc: int = 3, candidates: int = 50, query_vector: np.ndarray | None = None,
               mode: str = "hybrid") -> list[Hit]:
        """Top ``k`` passages for ``query``: RRF of dense, BM25 and best-sentence rankings, at most ``max_per_doc``
        per document. ``mode`` "dense" or "bm25" uses one ranking alone (for comparisons)."""
        if mode not in MODES:
            raise QueryError(f"unknown retrieval mode {mode!r}: use one of {', '.join(MODES)}")
        if not self.chunks:
            return []
        mask = self.mask(filters or {})
        if mask is not None and not mask.any():
            return []
        qv = query_vector if query_vector is not None else self.embedder.encode_queries([query])[0]
        d_ids, _ = self._dense(qv, mask, candidates)
        l_ids, l_scores = self._lexical(query, mask, candidates)
        pool = np.unique(np.concatenate([d_ids, l_ids]).astype(np.int64))
        best_sentence = np.array([self.best_sentence(int(r), qv) for r in pool], dtype=np.float32)
        s_ids = pool[np.argsort(-best_sentence, kind="stable")]
        fused: dict[int, float] = {}
        w = self.weights
        lexical_weight = w.exact if self.gen.lexical.has_exact_terms(query) else w.lexical
        rankings = {"hybrid": ((d_ids, w.dense), (l_ids, lexical_weight), (s_ids, w.sentence)),
                    "dense": ((d_ids, 1.0),), "bm25": ((l_ids, 1.0),)}[mode]
        for ranking, weight in rankings:
            for rank, row in enumerate(ranking):
                fused[int(row)] = fused.get(int(row), 0.0) + weight / (RRF_K + rank + 1)
        lexical = dict(zip(map(int, l_ids), map(float, l_scores)))
        order = sorted(fused, key=lambda r: (-fused[r], r))
        hits: list[Hit] = []
        per_doc: dict[int, int] = {}
        for row in order:
            doc = int(self.chunk_doc[row])
            if per_doc.get(doc, 0) >= max_per_doc:
                continue
            per_doc[doc] = per_doc.get(doc, 0) + 1
            dense = float(self.vectors[row].astype(np.float32) @ qv)
            hits.append(Hit(self.chunks[row], fused[row], len(hits) + 1, dense, lexical.get(row, 0.0),
                            self._public_metadata(self.doc_list[doc]), row))
            if len(hits) == k:
                break
        return hits

    def best_sentence(self, row: int, qv: np.ndarray) -> float:
        sims = self.gen.chunk_sentence_vectors(row) @ qv
        return float(sims.max()) if len(sims) else -1.0

    def sentence_vectors(self, hit: Hit) -> np.ndarray:
        return self.gen.chunk_sentence_vectors(hit.row)

    @staticmethod
    def _public_metadata(doc: Document) -> dict[str, Any]:
        meta = doc.metadata
        return {"country": meta.get("country"), "funders": [f.get("name") for f in meta.get("funders") or []],
                "years": meta.get("years") or [], "budget": meta.get("budget"), "currency": meta.get("currency")}
