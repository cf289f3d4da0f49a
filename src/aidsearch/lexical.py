"""Keyword search: BM25 over accent-folded EN/FR terms that keep codes ("LAO/027") and numbers ("28,400,000") whole."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

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


class LexicalIndex:
    """BM25 scores for every passage; ``scores`` returns a dense array aligned with passage rows."""

    def __init__(self, texts: Sequence[str]) -> None:
        import bm25s

        self.size = len(texts)
        self._bm25 = bm25s.BM25()
        if texts:
            self._bm25.index([tokenize(t) or ["\x00"] for t in texts], show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        terms = [t for t in tokenize(query) if t in self._vocab]
        if not self.size or not terms:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)

    def has_exact_terms(self, query: str) -> bool:
        """True when the query holds a code or a number of 4+ digits that occurs in the passages."""
        vocab = self._vocab
        return any(t in vocab for t in tokenize(query) if "/" in t or (t.isdigit() and len(t) >= 4))

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
