"""The exact answer inside the answer sentence: candidate spans (runs of words the question does not contain) and
one language-independent feature row each, ranked by a learned linear model."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .features import WH_TYPES, QuestionInfo
from .lexicon import STOP_WORDS, fold

MAX_TOKENS = 8
_TOKEN = re.compile(r"\d+(?:[ ,.\u202f\u00a0]\d{3})*(?:[.,]\d+)?\s*%?|[^\W_]+(?:[-'’][^\W_]+)*|[$€£]|\S", re.UNICODE)
_YEAR = re.compile(r"^(?:1[5-9]|20)\d\d$")
_MONTHS = frozenset(fold(m) for m in (
    "january february march april may june july august september october november december janvier février mars "
    "avril mai juin juillet août septembre octobre novembre décembre").split())
_UNITS = frozenset("""eur euro euros usd cad xof fcfa chf gbp dollars dollar francs franc million millions milliard
milliards billion billions thousand mille km kilometres kilometers ha hectares tonnes tons mw kw % $ € £ months mois
years ans year an weeks semaines days jours percent pourcent""".split())
_DURATION_UNITS = frozenset("months mois years ans weeks semaines days jours".split())
_PREPOSITIONS = frozenset("""by par in en a au aux of de du des from to than que comme as called appele named nomme
with avec at for pour on sur dans into vers between entre d l""".split())
_COPULAS = frozenset("is was are were est etait sont etaient fut be been devient became becomes".split())
_TYPES = ("digit", "year", "month", "unit", "capital", "duration")
_WH_CROSS = tuple(f"{w}_x_{t}" for w in WH_TYPES for t in _TYPES)
SPAN_FEATURES = (
    "tokens_1", "tokens_2", "tokens_3", "tokens_4plus", "log_chars", *(f"has_{t}" for t in _TYPES),
    "all_capital", "starts_sentence", "left_is_question", "right_is_question", "near_question", "far_question",
    "left_punct", "right_punct", "maximal", "left_preposition", "left_copula", "question_before", "question_after",
    "has_inner_stop", "in_parentheses", "share_of_sentence", *_WH_CROSS,
)


@dataclass(frozen=True)
class Span:
    """An answer candidate: ``text == sentence[start:end]``."""

    start: int
    end: int
    text: str


def _tokens(sentence: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group().strip()) for m in _TOKEN.finditer(sentence)]


def _in_question(word: str, question: QuestionInfo) -> bool:
    folded = fold(word)
    if folded in question.words:
        return True
    return len(folded) >= 5 and any(len(w) >= 5 and w[:5] == folded[:5] for w in question.words)


def span_candidates(sentence: str, question: QuestionInfo) -> tuple[list[Span], np.ndarray]:
    """Every run of up to ``MAX_TOKENS`` words of ``sentence`` that holds no word of the question and neither
    starts nor ends with a stop word or punctuation, with its feature row (``SPAN_FEATURES``)."""
    toks = _tokens(sentence)
    if not toks:
        return [], np.zeros((0, len(SPAN_FEATURES)))
    words = [t[2] for t in toks]
    is_word = [any(c.isalnum() for c in w) for w in words]
    asked = [is_word[i] and _in_question(w, question) for i, w in enumerate(words)]
    edge_ok = [is_word[i] and fold(w) not in STOP_WORDS and not asked[i] for i, w in enumerate(words)]
    question_at = [i for i, a in enumerate(asked) if a and fold(words[i]) not in STOP_WORDS]
    wh = WH_TYPES.index(question.wh)
    spans, rows = [], []
    n = len(toks)
    for i in range(n):
        if not edge_ok[i]:
            continue
        for j in range(i, min(n, i + MAX_TOKENS)):
            if asked[j] or (not is_word[j] and words[j] not in "%$€£-'’/.,"):
                break
            if not edge_ok[j]:
                continue
            inner = words[i:j + 1]
            folded = [fold(w) for w in inner]
            types = {
                "digit": any(any(c.isdigit() for c in w) for w in inner),
                "year": any(_YEAR.match(w) for w in inner),
                "month": any(w in _MONTHS for w in folded),
                "unit": any(w in _UNITS for w in folded) or (j + 1 < n and fold(words[j + 1]) in _UNITS),
                "capital": any(w[:1].isupper() for w, ok in zip(inner, is_word[i:j + 1], strict=False) if ok),
                "duration": any(w in _DURATION_UNITS for w in folded)
                or (j + 1 < n and fold(words[j + 1]) in _DURATION_UNITS),
            }
            dist = min((min(abs(q - i), abs(q - j)) for q in question_at), default=30)
            before = min((i - q for q in question_at if q < i), default=30)
            after = min((q - j for q in question_at if q > j), default=30)
            left = fold(words[i - 1]) if i > 0 else ""
            count = j - i + 1
            left_punct = i == 0 or not is_word[i - 1]
            right_punct = j + 1 == n or not is_word[j + 1]
            maximal = (i == 0 or not edge_ok[i - 1]) and (j + 1 == n or not edge_ok[j + 1] or asked[j + 1])
            cross = np.zeros((len(WH_TYPES), len(_TYPES)))
            cross[wh] = [float(types[t]) for t in _TYPES]
            start, end = toks[i][0], toks[j][1]
            text = sentence[start:end].strip()
            rows.append([
                float(count == 1), float(count == 2), float(count == 3), float(count >= 4), math.log1p(len(text)),
                *(float(types[t]) for t in _TYPES),
                float(all(w[:1].isupper() or w[:1].isdigit()
                          for w, ok in zip(inner, is_word[i:j + 1], strict=False) if ok)),
                float(i == 0), float(i > 0 and asked[i - 1]), float(j + 1 < n and asked[j + 1]),
                float(dist <= 3), math.log1p(dist), float(left_punct), float(right_punct), float(maximal),
                float(left in _PREPOSITIONS), float(left in _COPULAS), math.log1p(before), math.log1p(after),
                float(any(w in STOP_WORDS for w in folded[1:-1])),
                float("(" in sentence[:start] and ")" in sentence[end:]
                      and sentence[:start].rfind("(") > sentence[:start].rfind(")")),
                len(text) / max(len(sentence), 1), *cross.ravel(),
            ])
            spans.append(Span(start, start + len(text), text))
    return spans, np.asarray(rows, dtype=np.float64).reshape(-1, len(SPAN_FEATURES))


def _words(text: str) -> list[str]:
    return [fold(w) for w in re.findall(r"[^\W_]+", text)]


def token_f1(predicted: str, gold: str) -> float:
    """Word-overlap F1 of two answers (accents and case ignored)."""
    p, g = _words(predicted), _words(gold)
    if not p or not g:
        return float(p == g)
    common = sum(min(p.count(w), g.count(w)) for w in set(p))
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)
