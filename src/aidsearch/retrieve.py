"""Hybrid retrieval: dense (FAISS) and BM25 rankings fused by reciprocal rank, with metadata filters."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from .backends import DenseSearch, FaissSearch
from .config import RETRIEVALS
from .embed import Embedder
from .errors import QueryError
from .features import PREFIX, QuestionInfo, passage_features
from .lang import detect_en_fr
from .lexical import IndexBM25, LexicalSearch
from .lexicon import fold
from .linear import LinearModel
from .query import YEAR_RANGE
from .store import Generation
from .types import Document, Hit

MODES = RETRIEVALS
RRF_K = 60


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
                m = YEAR_RANGE.match(v)
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


@dataclass(frozen=True)
class Pool:
    """The candidate passages of one query: pool rows, each ranking's scores and the fusion features."""

    question: QuestionInfo
    rows: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    sentence: np.ndarray
    in_dense: np.ndarray
    features: np.ndarray
    exact_query: bool
    docs: np.ndarray  # the document (index) of each pool row


@dataclass(frozen=True)
class Retrieval:
    """What ``Retriever.retrieve`` found: the hits, and the pool with its fused scores (None when empty)."""

    hits: list[Hit]
    pool: Pool | None
    fused: np.ndarray


class Retriever:
    """Searches one loaded generation; safe to share between threads (read-only)."""

    def __init__(self, gen: Generation, embedder: Embedder, weights: FusionWeights = FusionWeights(),
                 fusion: LinearModel | None = None, dense: DenseSearch | None = None,
                 lexical: LexicalSearch | None = None) -> None:
        from .learned import load_model

        self.weights = weights
        self.fusion = fusion or load_model("fusion")
        self.gen = gen
        self.embedder = embedder
        self.chunks = gen.chunks
        self.doc_list = list(gen.documents.values())
        position = {d.id: i for i, d in enumerate(self.doc_list)}
        self.chunk_doc = np.array([position[c.doc_id] for c in self.chunks], dtype=np.int64)
        self.chunk_lang = np.array([c.lang for c in self.chunks])
        self.vectors = gen.vector_rows if self.chunks else None  # opened now: a later update may remove the folder
        self.dense = dense or FaissSearch(gen)
        self.lexical = lexical or IndexBM25(gen.lexical)

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

    def pool(self, query: str, qv: np.ndarray, mask: np.ndarray | None, *, candidates: int = 50,
             filters: dict[str, tuple[str, ...]] | None = None, exclude: np.ndarray | None = None) -> Pool:
        """The candidate passages of ``query`` (the union of the dense and BM25 top ``candidates``) with their
        scores under each ranking and their fusion features; ``mask`` holds the rows that ``filters`` and
        ``exclude`` allow."""
        d_ids, _ = self.dense.search(qv, candidates, mask, filters or {}, exclude)
        l_ids, l_scores = self.lexical.search(query, candidates, mask, filters or {}, exclude)
        rows = np.unique(np.concatenate([d_ids, l_ids]).astype(np.int64))
        assert self.vectors is not None
        dense = self.vectors.take(rows).astype(np.float32) @ qv
        lexical = np.zeros(len(rows), dtype=np.float32)
        lexical[np.searchsorted(rows, l_ids)] = l_scores
        in_dense = np.zeros(len(rows), dtype=bool)
        in_dense[np.searchsorted(rows, d_ids)] = True
        sentence = np.array([self.best_sentence(int(r), qv) for r in rows], dtype=np.float32)
        question = QuestionInfo(query, detect_en_fr(query))
        exact = np.asarray(self.gen.lexical.holding(sorted(question.exact_terms), rows).any(0))
        held = self.gen.lexical.holding(sorted(question.terms), rows, prefix=PREFIX)
        term_overlap = held.mean(0) if len(held) else np.zeros(len(rows))
        same = self.chunk_lang[rows] == question.lang
        x = passage_features(dense, in_dense, lexical, sentence, same, exact, term_overlap)
        return Pool(question, rows, dense, lexical, sentence, in_dense, x, self.gen.lexical.has_exact_terms(query),
                    self.chunk_doc[rows])

    def _rrf(self, pool: Pool, mode: str) -> np.ndarray:
        """Reciprocal rank fusion of the pool's rankings with fixed weights."""
        w = self.weights
        lexical_weight = w.exact if pool.exact_query else w.lexical
        weights = {"hybrid": (w.dense, lexical_weight, w.sentence), "dense": (1.0, 0.0, 0.0),
                   "bm25": (0.0, 1.0, 0.0)}[mode]
        fused = np.zeros(len(pool.rows))
        for scores, present, weight in ((pool.dense, pool.in_dense, weights[0]),
                                        (pool.lexical, pool.lexical > 0, weights[1]),
                                        (pool.sentence, np.ones(len(pool.rows), bool), weights[2])):
            if weight:
                order = np.argsort(-np.where(present, scores, -np.inf), kind="stable")[: int(present.sum())]
                fused[order] += weight / (RRF_K + np.arange(1, len(order) + 1))
        if mode == "bm25":
            fused[pool.lexical <= 0] = -1.0
        return fused

    def fused_scores(self, pool: Pool, mode: str = "hybrid") -> np.ndarray:
        """Scores of the pool's passages: the learned fusion for "learned", RRF for "hybrid", else one ranking."""
        if mode == "learned":
            return self.fusion.scores(pool.features)
        return self._rrf(pool, mode)

    def retrieve(self, query: str, *, k: int = 5, filters: dict[str, tuple[str, ...]] | None = None,
                 max_per_doc: int = 3, candidates: int = 50, query_vector: np.ndarray | None = None,
                 mode: str = "hybrid", exclude: np.ndarray | None = None) -> Retrieval:
        """Top ``k`` passages for ``query`` and the scored pool they come from, at most ``max_per_doc`` per
        document. ``mode``: "hybrid" (reciprocal rank fusion of dense, BM25 and best-sentence rankings), "learned"
        (the learned fusion of the same evidence), "dense" or "bm25" (one ranking alone, for comparisons).
        ``exclude`` marks passage rows to leave out (training builds "the answer is not indexed" cases with it)."""
        if mode not in MODES:
            raise QueryError(f"unknown retrieval mode {mode!r}: use one of {', '.join(MODES)}")
        if not self.chunks:
            return Retrieval([], None, np.zeros(0))
        mask = self.mask(filters or {})
        if exclude is not None:
            mask = ~exclude if mask is None else mask & ~exclude
        if mask is not None and not mask.any():
            return Retrieval([], None, np.zeros(0))
        qv = query_vector if query_vector is not None else self.embedder.encode_queries([query])[0]
        pool = self.pool(query, qv, mask, candidates=candidates, filters=filters, exclude=exclude)
        fused = self.fused_scores(pool, mode)
        hits: list[Hit] = []
        per_doc: dict[int, int] = {}
        for i in np.lexsort((pool.rows, -fused)):
            if mode == "bm25" and pool.lexical[i] <= 0:
                break
            row = int(pool.rows[i])
            doc = int(self.chunk_doc[row])
            if per_doc.get(doc, 0) >= max_per_doc:
                continue
            per_doc[doc] = per_doc.get(doc, 0) + 1
            hits.append(Hit(self.chunks[row], float(fused[i]), len(hits) + 1, float(pool.dense[i]),
                            float(pool.lexical[i]), self._public_metadata(self.doc_list[doc]), row))
            if len(hits) == k:
                break
        return Retrieval(hits, pool, fused)

    def search(self, query: str, **options: Any) -> list[Hit]:
        """The hits of ``retrieve`` (same options)."""
        return self.retrieve(query, **options).hits

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
