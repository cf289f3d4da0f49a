"""Language-independent features for the learned stages: passage ranking (fusion), answer sentence choice,
answer span choice and abstention. Each feature compares things within one question (a score relative to the
best candidate, a rank, a share of the question's words), so the learned weights carry over to another
embedding model and to any ``k``."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .lexical import tokenize
from .lexicon import BACK_REFERENCE, WH_CUES, fold

# ---------------------------------------------------------------- the question

WH_TYPES = ("who", "when", "where", "count", "amount", "duration", "why", "how", "what")


def starts_with_pronoun(sentence: str) -> bool:
    """Whether ``sentence`` opens with a pronoun or demonstrative that points back ("Il…", "This fund…")."""
    return bool(BACK_REFERENCE.match(sentence))


def wh_type(question: str) -> str:
    """The kind of answer a question asks for, from EN/FR question words; "what" when none matches."""
    folded = fold(question)
    return next((t for t, pattern in WH_CUES if pattern.search(folded)), "what")


@dataclass(frozen=True)
class QuestionInfo:
    """What the features need to know about the question, computed once."""

    text: str
    lang: str

    @cached_property
    def wh(self) -> str:
        return wh_type(self.text)

    @cached_property
    def terms(self) -> frozenset[str]:
        return frozenset(tokenize(self.text))

    @cached_property
    def words(self) -> frozenset[str]:
        return frozenset(fold(w) for w in _WORD.findall(self.text))

    @cached_property
    def exact_terms(self) -> frozenset[str]:
        return frozenset(t for t in self.terms if "/" in t or (t.isdigit() and len(t) >= 4))


_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
_YEAR = re.compile(r"\b(?:1[5-9]|20)\d\d\b")
_NUMBER = re.compile(r"\d+(?:[ ,.\u202f\u00a0]\d+)*")
_PERCENT = re.compile(r"\d\s*(?:%|pour ?cent|per ?cent)", re.I)
_DURATION = re.compile(r"\b\d+\s*(?:months?|mois|years?|ans|années|weeks?|semaines?|days?|jours?)\b", re.I)
_AMOUNT = re.compile(r"(?:\d[\d ,.\u202f\u00a0]*\s*(?:millions?|milliards?|billions?|thousand|mille)?\s*"
                     r"(?:eur|euros?|usd|cad|xof|fcfa|chf|gbp|dollars?|francs?|€|\$|£))|(?:us\$|\$|€|£)\s*\d", re.I)
_MONTH = re.compile(r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december|"
                    r"janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|"
                    r"décembre|decembre)\b", re.I)


def _new_names(text: str, question: QuestionInfo) -> int:
    """Capitalized words after the first word that the question does not name."""
    words = _WORD.findall(text)
    return sum(1 for w in words[1:] if w[:1].isupper() and fold(w) not in question.words)


def answer_types(text: str, question: QuestionInfo) -> dict[str, float]:
    """Which kinds of answer ``text`` holds that the question does not already contain."""
    qtext = question.text
    years = {y for y in _YEAR.findall(text)} - set(_YEAR.findall(qtext))
    numbers = {n for n in _NUMBER.findall(text)} - set(_NUMBER.findall(qtext))
    return {
        "number": float(bool(numbers - years)),
        "year": float(bool(years) or bool(_MONTH.search(text) and not _MONTH.search(qtext))),
        "amount": float(bool(_AMOUNT.search(text)) and bool(numbers)),
        "percent": float(bool(_PERCENT.search(text)) and bool(numbers)),
        "duration": float(bool(_DURATION.search(text)) and bool(numbers)),
        "name": min(_new_names(text, question), 3) / 3,
    }


ANSWER_TYPES = ("number", "year", "amount", "percent", "duration", "name")
_WH_MATCH = {"who": ("name",), "where": ("name",), "when": ("year",), "count": ("number", "percent"),
             "amount": ("amount",), "duration": ("duration",)}


_SENTENCE_END = re.compile(r"[.!?…][\s\"'»”’)\]]*$")


def is_heading(sentence: str) -> bool:
    """A title or heading line: short and without the punctuation that ends a sentence."""
    return len(sentence.split()) <= 20 and not _SENTENCE_END.search(sentence.strip())


def same_terms(a: set[str], b: set[str]) -> bool:
    """Whether two sentences' terms are nearly the same (a title and the first sentence that repeats it)."""
    return bool(a) and len(a & b) >= 0.8 * len(a | b)


PREFIX = 5  # terms sharing their first letters match: "Cambodge"/"Cambodia"


def overlap(terms: frozenset[str] | set[str], text_terms: set[str]) -> float:
    """Share of ``terms`` present in ``text_terms``; a shared ``PREFIX``-letter prefix counts."""
    if not terms:
        return 0.0
    prefixes = {w[:PREFIX] for w in text_terms if len(w) >= PREFIX}
    return sum(t in text_terms or (len(t) >= PREFIX and t[:PREFIX] in prefixes) for t in terms) / len(terms)


# ---------------------------------------------------------------- passages (fusion)

PASSAGE_FEATURES = ("dense_rel", "dense_z", "dense_rr", "lex_rel_same", "lex_rel_cross", "lex_rr_same",
                    "lex_rr_cross", "sent_rel", "sent_rr", "exact", "overlap", "in_both", "overlap_cross",
                    "in_both_cross", "cross_lang")


def _rr(ranks: np.ndarray) -> np.ndarray:
    """10 / (10 + rank) for ranked rows (rank from 0), 0 for rows a ranking did not return (rank < 0)."""
    return np.where(ranks >= 0, 10.0 / (10.0 + np.maximum(ranks, 0)), 0.0)


def _ranks(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    order = np.argsort(-np.where(present, scores, -np.inf), kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(len(scores))
    return np.where(present, ranks, -1)


def passage_features(dense: np.ndarray, dense_ranked: np.ndarray, lexical: np.ndarray, sentence: np.ndarray,
                     same_lang: np.ndarray, exact: np.ndarray, term_overlap: np.ndarray) -> np.ndarray:
    """One row per pool passage. ``dense`` and ``sentence`` are cosines for every pool row; ``dense_ranked``
    marks the rows the dense search returned; ``lexical`` is BM25 (0 when absent). Word overlap and being found
    by both searches are given again for passages in the other language than the question's, with a flag for
    them: across languages few words can match, so the fusion weighs that evidence apart."""
    std = float(dense.std()) or 1.0
    lex_present = lexical > 0
    lex_rel = lexical / lexical.max() if lex_present.any() else np.zeros_like(lexical)
    lex_rr = _rr(_ranks(lexical, lex_present))
    same = same_lang.astype(float)
    return np.column_stack([
        dense - dense.max(), (dense - dense.mean()) / std, _rr(_ranks(dense, dense_ranked)),
        lex_rel * same, lex_rel * (1 - same), lex_rr * same, lex_rr * (1 - same),
        sentence - sentence.max(), _rr(_ranks(sentence, np.ones(len(sentence), bool))),
        exact.astype(float), term_overlap, (dense_ranked & lex_present).astype(float),
        term_overlap * (1 - same), (dense_ranked & lex_present) * (1 - same), 1 - same,
    ])


# ---------------------------------------------------------------- answer sentences

SENTENCE_FEATURES = (
    "sim_rel", "sim_z", "sim_rank_rr", "prev_sim_rel", "next_sim_rel", "overlap", "prev_overlap", "next_overlap",
    "novelty", "first", "position", "words_log", "long", "label_line", "passage_rel", "passage_rr",
    "next_pronoun", "pronoun_start", "overlap_rel", "echo", "prev_is_echo", "next_is_echo", "wh_match",
    "heading", "repeat", *(f"has_{a}" for a in ANSWER_TYPES),
    *(f"{w}_x_{a}" for w in WH_TYPES for a in ANSWER_TYPES),
)


@dataclass(frozen=True)
class Candidate:
    """An answer sentence candidate: which passage (index in the top list), which sentence there."""

    passage: int
    index: int
    text: str


def sentence_features(question: QuestionInfo, passages: list[list[str]], sims: list[np.ndarray],
                      passage_scores: np.ndarray, label_lines: list[list[bool]]) -> tuple[list[Candidate], np.ndarray]:
    """Candidates of the top passages and one feature row each. ``passages[i]`` are the sentence texts of
    passage ``i``, ``sims[i]`` their cosines to the question, ``passage_scores`` the fusion scores."""
    cands: list[Candidate] = []
    rows: list[list[float]] = []
    flat = np.concatenate(sims) if sims else np.zeros(0)
    if not len(flat):
        return cands, np.zeros((0, len(SENTENCE_FEATURES)))
    top, mean, std = float(flat.max()), float(flat.mean()), float(flat.std()) or 1.0
    order = np.argsort(-flat, kind="stable")
    sim_rank = np.empty(len(flat), dtype=np.int64)
    sim_rank[order] = np.arange(len(flat))
    best_passage = float(passage_scores.max()) if len(passage_scores) else 0.0
    wh_index = WH_TYPES.index(question.wh)
    terms = [[set(tokenize(t)) for t in texts] for texts in passages]
    overlaps = [[overlap(question.terms, t) for t in ts] for ts in terms]
    echo_key = [[o + 0.5 * (float(s) - top) for o, s in zip(os_, ps)] for os_, ps in zip(overlaps, sims)]
    best_echo = max((v for vs in echo_key for v in vs), default=0.0)
    best_overlap = max((v for vs in overlaps for v in vs), default=0.0)
    match = _WH_MATCH.get(question.wh, ())
    flat_i = 0
    for p, (texts, psims) in enumerate(zip(passages, sims)):
        is_echo = [v >= best_echo - 1e-9 for v in echo_key[p]]
        repeats = [any(same_terms(terms[p][i], terms[p][j]) for j in range(i)) for i in range(len(texts))]
        for i, text in enumerate(texts):
            words = len(text.split())
            own = overlaps[p][i]
            novelty = len(terms[p][i] - question.terms) / max(len(terms[p][i]), 1)
            types = answer_types(text, question)
            prev_sim = float(psims[i - 1]) if i > 0 else float(psims[i])
            next_sim = float(psims[i + 1]) if i + 1 < len(texts) else float(psims[i])
            cross = np.zeros((len(WH_TYPES), len(ANSWER_TYPES)))
            cross[wh_index] = [types[a] for a in ANSWER_TYPES]
            rows.append([
                float(psims[i]) - top, (float(psims[i]) - mean) / std, 1.0 / (1 + sim_rank[flat_i]),
                prev_sim - top, next_sim - top, own,
                overlaps[p][i - 1] if i > 0 else 0.0,
                overlaps[p][i + 1] if i + 1 < len(texts) else 0.0,
                novelty, float(i == 0), math.log1p(i), math.log1p(words), float(words > 40),
                float(label_lines[p][i]), float(passage_scores[p]) - best_passage, 1.0 / (1 + p),
                float(i + 1 < len(texts) and bool(BACK_REFERENCE.match(texts[i + 1]))),
                float(bool(BACK_REFERENCE.match(text))),
                own - best_overlap, float(is_echo[i]), float(i > 0 and is_echo[i - 1]),
                float(i + 1 < len(texts) and is_echo[i + 1]), max((types[a] for a in match), default=0.0),
                float(not label_lines[p][i] and is_heading(text)), float(repeats[i]),
                *[types[a] for a in ANSWER_TYPES], *cross.ravel(),
            ])
            cands.append(Candidate(p, i, text))
            flat_i += 1
    return cands, np.asarray(rows, dtype=np.float64)


# ---------------------------------------------------------------- abstention

ABSTAIN_FEATURES = ("doc_margin", "top_doc_prob", "dense_z_top", "dense_gap10", "sent_z_top", "key_cover_top",
                    "answer_prob", "answer_margin", "question_terms", "cross_lingual", "overlap_same_lang",
                    "overlap_gap_same_lang")
# with the answer reader: the same, and its answer margin on the passage quoted (``PassageLogits.answer_margin``)
READER_ABSTAIN_FEATURES = (*ABSTAIN_FEATURES, "reader_margin")


def abstain_features(fused: np.ndarray, pool: np.ndarray, docs: np.ndarray, answer_scores: np.ndarray,
                     key_cover: float, question: QuestionInfo, top_lang: str) -> np.ndarray:
    """One row for the whole question: how clearly the best document and the best sentence stand out (margin and
    probability against the passages of other documents, ``docs`` giving each pool row's document). Word overlap
    with the question, and how far it stands above other documents', count only when the best passage is in the
    question's language (across languages it is near zero, and the answer may well be there).
    ``fused`` are the pool's fusion scores, ``pool`` its passage feature rows (``PASSAGE_FEATURES``),
    ``answer_scores`` the sentence scores of the answer candidates, ``top_lang`` the best passage's language
    (similarities run lower across languages)."""
    order = np.argsort(-fused, kind="stable")
    top = order[0]
    col = {f: i for i, f in enumerate(PASSAGE_FEATURES)}
    probs = np.exp(fused - fused.max())
    probs /= probs.sum()
    same_doc = docs == docs[top]
    others = fused[~same_doc]
    margin = float(fused[top] - others.max()) if len(others) else 5.0
    dense_sorted = np.sort(pool[:, col["dense_rel"]])[::-1]
    gap10 = float(dense_sorted[0] - dense_sorted[min(9, len(dense_sorted) - 1)])
    if len(answer_scores):
        a_sorted = np.sort(answer_scores)[::-1]
        a_probs = np.exp(a_sorted - a_sorted[0])
        a_prob = float(1.0 / a_probs.sum())
        a_margin = float(a_sorted[0] - a_sorted[1]) if len(a_sorted) > 1 else 5.0
    else:
        a_prob, a_margin = 0.0, 0.0
    sent_col = pool[:, col["sent_rel"]]
    sent_z = float((sent_col[top] - sent_col.mean()) / (sent_col.std() or 1.0))
    same_lang = float(top_lang == question.lang)
    own_overlap = float(pool[top, col["overlap"]])
    other_overlap = float(pool[~same_doc, col["overlap"]].max()) if len(others) else 0.0
    return np.array([min(margin, 5.0), float(probs[same_doc].sum()), float(pool[top, col["dense_z"]]), gap10, sent_z,
                     key_cover, a_prob, min(a_margin, 5.0), math.log1p(len(question.terms)), 1.0 - same_lang,
                     same_lang * own_overlap, same_lang * (own_overlap - other_overlap)])
