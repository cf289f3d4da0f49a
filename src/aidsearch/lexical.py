"""Keyword search: BM25 over accent-folded EN/FR terms that keep codes ("LAO/027") and numbers ("28,400,000") whole."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from .lexicon import STOP_WORDS, fold

_TOKEN = re.compile(r"[a-z]{1,6}/\d{2,4}|\d+(?:[ ,.'\u202f\u00a0]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?|\w+", re.UNICODE)
_SEPARATORS = re.compile(r"[ ,.'\u202f\u00a0]")


def _stem(word: str) -> str:
    if len(word) > 4 and word[-1] in "sx" and not word.endswith("ss"):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Terms of ``text``: folded words without stop words, codes, and numbers also in digits-only form."""
    terms: list[str] = []
    for tok in _TOKEN.findall(fold(text)):
        if tok[0].isdigit():
            digits = _SEPARATORS.sub("", tok)
            terms.append(digits.split(",")[0] if "," in digits else digits)
            if len(tok) <= 4 and tok.isdigit():
                continue
        elif "/" in tok:
            terms += [tok, *tok.split("/")]
        elif tok not in STOP_WORDS and len(tok) > 1:
            terms.append(_stem(tok))
    return terms


_EMPTY = "\x00"  # the one term of a passage without any


@dataclass(frozen=True)
class Terms:
    """The terms of each passage as ids into one vocabulary: what BM25 is built from. Kept with the index, so that
    an update tokenizes only the passages it adds."""

    vocab: tuple[str, ...]
    ids: np.ndarray  # int32: the term ids of every passage, one passage after the other
    offsets: np.ndarray  # int64: passage i's ids are ids[offsets[i]:offsets[i + 1]]

    @classmethod
    def of(cls, texts: Sequence[str]) -> Terms:
        slot: dict[str, int] = {}
        ids: list[int] = []
        offsets = [0]
        for text in texts:
            ids += [slot.setdefault(term, len(slot)) for term in tokenize(text) or [_EMPTY]]
            offsets.append(len(ids))
        return cls(tuple(slot), np.array(ids, dtype=np.int32), np.array(offsets, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, rows: Sequence[int]) -> Terms:
        """The terms of passages ``rows``, in that order, with only the vocabulary they use."""
        picks = np.asarray(rows, dtype=np.int64)
        if len(picks) == len(self) and np.array_equal(picks, np.arange(len(self))):
            return self
        starts, ends = self.offsets[picks], self.offsets[picks + 1]
        picked = np.concatenate([self.ids[a:b] for a, b in zip(starts, ends)] or [np.zeros(0, np.int32)])
        used, ids = np.unique(picked, return_inverse=True)
        offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        return Terms(tuple(self.vocab[i] for i in used), ids.astype(np.int32).reshape(-1), offsets)

    def __add__(self, other: Terms) -> Terms:
        """These passages' terms followed by ``other``'s."""
        slot = {term: i for i, term in enumerate(self.vocab)}
        remap = np.array([slot.setdefault(term, len(slot)) for term in other.vocab], dtype=np.int32)
        return Terms(tuple(slot), np.concatenate([self.ids, remap[other.ids] if len(remap) else other.ids]),
                     np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]]))

    def save(self, path: Path) -> None:
        vocab = np.frombuffer("\n".join(self.vocab).encode("utf-8"), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez(fh, vocab=vocab, ids=self.ids, offsets=self.offsets)

    @classmethod
    def load(cls, path: Path) -> Terms:
        with np.load(path, allow_pickle=False) as z:
            text = z["vocab"].tobytes().decode("utf-8")
            return cls(tuple(text.split("\n")) if text else (), z["ids"], z["offsets"])


BM25_BLOCK = 16_384  # passages whose (term, passage) pairs are counted at a time (at most 65,536)


def _bm25_matrix(terms: Terms, k1: float, b: float) -> dict[str, Any]:
    """The score matrix bm25s builds for its default BM25 ("lucene": idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
    tf / (tf + k1 (1 - b + b len / avg len))), the same numbers in the same layout (by term, then passage), from
    array operations instead of bm25s's loop over passages: an update rebuilds it in a fraction of the time."""
    n, size = len(terms), len(terms.vocab)
    lengths = np.diff(terms.offsets)
    blocks, df = [], np.zeros(size, dtype=np.int64)
    for start in range(0, n, BM25_BLOCK):  # (term, passage) pairs a block of passages at a time: little memory
        end = min(start + BM25_BLOCK, n)
        ids = terms.ids[terms.offsets[start]:terms.offsets[end]].astype(np.int64)
        ids *= end - start
        ids += np.repeat(np.arange(end - start, dtype=np.int64), lengths[start:end])
        pairs, tf = np.unique(ids, return_counts=True)  # by term, then passage
        del ids
        ids_of = (pairs // (end - start)).astype(np.int32)
        blocks.append((start, ids_of, (pairs % (end - start)).astype(np.uint16), tf.astype(np.uint32)))
        df += np.bincount(ids_of, minlength=size)
    indptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    rows = np.empty(int(indptr[-1]), dtype=np.int32)
    counts = np.empty(int(indptr[-1]), dtype=np.float32)
    fill = indptr[:-1].copy()  # where each term's next pair goes: blocks come in passage order
    while blocks:
        start, ids_of, local, counted = blocks.pop(0)
        runs = np.flatnonzero(np.diff(ids_of)) + 1  # where each term's pairs start in the block
        first = np.repeat(np.concatenate([[0], runs]), np.diff(np.concatenate([[0], runs, [len(ids_of)]])))
        at = fill[ids_of] + (np.arange(len(ids_of)) - first)
        rows[at], counts[at] = local.astype(np.int32) + start, counted
        fill += np.bincount(ids_of, minlength=size)
    idf = np.array([math.log(1 + (n - d + 0.5) / (d + 0.5)) if d else 0.0 for d in df.tolist()], dtype=np.float32)
    average = lengths.mean()
    data = np.repeat(idf, df)  # each pair's idf, then its score in place
    for a in range(0, len(counts), BM25_BLOCK * 64):  # the same arithmetic, a slice at a time
        c, r = counts[a:a + BM25_BLOCK * 64], rows[a:a + BM25_BLOCK * 64]
        tfc = c / (k1 * ((1 - b) + b * lengths[r] / average) + c)
        data[a:a + len(c)] = data[a:a + len(c)] * tfc
    return {"data": data, "indices": rows, "indptr": indptr, "num_docs": n}


class LexicalIndex:
    """BM25 scores for every passage; ``scores`` returns a dense array aligned with passage rows."""

    def __init__(self, texts: Sequence[str] | Terms) -> None:
        import bm25s

        terms = texts if isinstance(texts, Terms) else Terms.of(texts)
        self.size = len(terms)
        self._bm25 = bm25s.BM25()
        if self.size:
            vocab = {t: i for i, t in enumerate(terms.vocab)}
            self._bm25.scores = _bm25_matrix(terms, self._bm25.k1, self._bm25.b)
            self._bm25.nonoccurrence_array = None
            self._bm25.vocab_dict = vocab if "" in vocab else {**vocab, "": len(vocab)}
            self._bm25.unique_token_ids_set = set(self._bm25.vocab_dict.values())

    def scores(self, query: str) -> np.ndarray:
        terms = [t for t in tokenize(query) if t in self._vocab]
        if not self.size or not terms:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)

    def has_exact_terms(self, query: str) -> bool:
        """True when the query holds a code or a number of 4+ digits that occurs in the passages."""
        vocab = self._vocab
        return any(t in vocab for t in tokenize(query) if "/" in t or (t.isdigit() and len(t) >= 4))

    def holding(self, terms: Sequence[str], rows: np.ndarray, prefix: int = 0) -> np.ndarray:
        """Whether each passage of ``rows`` holds each of ``terms`` (a matrix, terms by rows), read from the BM25
        postings instead of tokenizing the passages. With ``prefix``, a term of at least that many letters also
        counts as present when the passage holds another such term with the same first ``prefix`` letters."""
        out = np.zeros((len(terms), len(rows)), dtype=bool)
        if not self.size or not len(rows):
            return out
        vocab, postings = self._vocab, self._bm25.scores
        indptr, indices = postings["indptr"], postings["indices"]
        groups = self._prefix_groups(prefix) if prefix else {}
        for i, term in enumerate(terms):
            ids = groups.get(term[:prefix], []) if prefix and len(term) >= prefix else []
            if not ids and term in vocab:
                ids = [vocab[term]]
            if ids:
                holders = np.concatenate([indices[indptr[t]:indptr[t + 1]] for t in ids])
                out[i] = np.isin(rows, holders)
        return out

    def _prefix_groups(self, prefix: int) -> dict[str, list[int]]:
        """Term ids by their first ``prefix`` letters (terms at least that long), built once per index."""
        known = self.__dict__.setdefault("_groups", {})
        if prefix not in known:
            groups: dict[str, list[int]] = {}
            for term, i in self._vocab.items():
                if len(term) >= prefix:
                    groups.setdefault(term[:prefix], []).append(i)
            known[prefix] = groups
        return known[prefix]

    @property
    def _vocab(self) -> dict[str, int]:
        return self._bm25.vocab_dict if self.size else {}

    def save(self, folder: Path) -> None:
        if self.size:
            self._bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> LexicalIndex:
        import bm25s

        self = cls.__new__(cls)
        self.size = size
        if size:
            self._bm25 = bm25s.BM25.load(str(folder), mmap=False, show_progress=False, verbosity=0)
        return self


class LexicalSearch(Protocol):
    """The passages that best match a query's terms, as rows of the generation it serves."""

    name: str

    def search(self, query: str, n: int, mask: np.ndarray | None,
               filters: dict[str, tuple[str, ...]], exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and BM25 scores (> 0) of the ``n`` best passages among those ``mask`` allows (None: all), best
        first. ``filters`` and ``exclude`` (rows to leave out) are what ``mask`` was computed from."""
        ...


class IndexBM25:
    """BM25 from the index folder (the default, and what a Milvus server without full-text search falls back on)."""

    name = "bm25"

    def __init__(self, index: LexicalIndex) -> None:
        self.index = index

    def search(self, query: str, n: int, mask: np.ndarray | None,
               filters: dict[str, tuple[str, ...]], exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores = self.index.scores(query)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        nonzero = np.flatnonzero(scores > 0)
        top = nonzero[np.argsort(-scores[nonzero], kind="stable")[:n]]
        return top, scores[top]
