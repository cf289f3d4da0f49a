"""Evaluate retrieval and answers on a JSONL question set, broken down by query language × document language.

Each line of a question file is ``{"id", "query", "lang", "relevant": [source or doc id, ...], "answers": [...]}``;
an empty ``relevant`` means the corpus cannot answer the question. Retrieval is scored on documents (passages
deduplicated by document, in rank order, binary relevance); answers on whether an expected string occurs in
the answer text; abstention on "no answer" predictions (``found`` false), whose positive class is
"the corpus cannot answer".
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from .config import Settings
from .errors import AidsearchError
from .metadata import full_dates
from .retrieve import MODES
from .types import Answer, Document, SearchResult

K = 10
CUTOFFS = (1, 5, 10)
FIELDS = ("id", "query", "lang", "relevant", "answers")
LANGS = ("en", "fr")
DIRECTIONS = ("EN→EN", "EN→FR", "FR→EN", "FR→FR")
OVERALL = "overall"
NO_DOC = "none"


class EvalError(AidsearchError):
    """A bad question file or a question that does not fit the index (one-line message)."""

    kind, status = "bad_request", 400
    default_hint = "check the question file's lines against eval/README.md"


# ---------------------------------------------------------------- questions

@dataclass(frozen=True)
class Question:
    """One evaluation question; ``relevant`` empty means the corpus cannot answer it."""

    id: str
    query: str
    lang: str
    relevant: tuple[str, ...]
    answers: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.relevant)


def _string_list(value: Any, name: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise EvalError(f"{where}: '{name}' must be a list of non-empty strings")
    return tuple(value)


def parse_question(obj: Any, where: str) -> Question:
    """A ``Question`` from one decoded JSON line; ``where`` ("file line N") prefixes the error."""
    if not isinstance(obj, dict):
        raise EvalError(f"{where}: expected a JSON object")
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise EvalError(f"{where}: missing {', '.join(repr(f) for f in missing)}")
    for name in ("id", "query"):
        if not isinstance(obj[name], str) or not obj[name].strip():
            raise EvalError(f"{where}: '{name}' must be a non-empty string")
    lang = obj["lang"]
    if lang not in LANGS:
        raise EvalError(f"{where}: 'lang' must be one of {', '.join(LANGS)}, got {lang!r}")
    relevant = _string_list(obj["relevant"], "relevant", where)
    answers = _string_list(obj["answers"], "answers", where)
    if answers and not relevant:
        raise EvalError(f"{where}: 'answers' given but 'relevant' is empty")
    return Question(obj["id"].strip(), obj["query"].strip(), lang, relevant, answers)


def parse_questions(lines: Iterable[str], name: str = "questions") -> list[Question]:
    """Questions from JSONL lines (blank lines skipped); ids must be unique."""
    out: list[Question] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{where}: invalid JSON ({exc.msg})") from None
        q = parse_question(obj, where)
        if q.id in seen:
            raise EvalError(f"{where}: duplicate id {q.id!r} (first on line {seen[q.id]})")
        seen[q.id] = n
        out.append(q)
    if not out:
        raise EvalError(f"{name}: no questions")
    return out


def load_questions(path: str | Path) -> list[Question]:
    """Read and validate a JSONL question file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalError(f"question file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read {path}: {exc}") from None
    return parse_questions(text.splitlines(), path.name)


def split_part(key: str, validation_share: float = 0.4) -> str:
    """"train" or "validation" for a group of questions (an article, a document), fixed by a hash of ``key``."""
    return "validation" if hashlib.sha256(key.encode()).digest()[0] < validation_share * 256 else "train"


# ---------------------------------------------------------------- metric arithmetic (pure)

def dedupe(keys: Iterable[str]) -> list[str]:
    """``keys`` without repeats, first occurrence kept (passages → documents in rank order)."""
    return list(dict.fromkeys(keys))


def auc(scores: Iterable[float], labels: Iterable[bool]) -> float:
    """The chance that a random positive scores above a random negative (ties count half)."""
    pairs = list(zip(map(float, scores), map(bool, labels)))
    pos = [x for x, y in pairs if y]
    neg = sorted(x for x, y in pairs if not y)
    if not pos or not neg:
        raise ValueError("AUC needs both classes")
    wins = sum(bisect_left(neg, x) + 0.5 * (bisect_right(neg, x) - bisect_left(neg, x)) for x in pos)
    return wins / (len(pos) * len(neg))


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant documents found in the first ``k`` ranked documents."""
    if not relevant:
        raise ValueError("recall needs at least one relevant document")
    return len(set(ranked[:k]) & set(relevant)) / len(set(relevant))


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str], k: int = K) -> float:
    """1 / rank of the first relevant document within the first ``k``, else 0."""
    for rank, key in enumerate(ranked[:k], 1):
        if key in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], relevant: Collection[str], k: int = K) -> float:
    """Binary-relevance nDCG: sum of 1/log2(rank + 1) over relevant hits, over the ideal ordering's sum."""
    relevant = set(relevant)
    if not relevant:
        raise ValueError("nDCG needs at least one relevant document")
    dcg = sum(1.0 / math.log2(rank + 1) for rank, key in enumerate(ranked[:k], 1) if key in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


_THOUSANDS = re.compile(r"(?<=\d)[ ,.\u202f\u00a0](?=\d{3}(?!\d))")


_DURATION_UNITS = ((re.compile(r"(?<=\d) (?:mois|month)\b"), " months"),
                   (re.compile(r"(?<=\d) (?:ans|années|annees|year)\b"), " years"),
                   (re.compile(r"(?<=\d) (?:semaines|week)\b"), " weeks"),
                   (re.compile(r"(?<=\d) (?:jours|day)\b"), " days"))


def _units(text: str) -> str:
    """Durations worded in English whatever the language: "72 mois" → "72 months"."""
    for pattern, unit in _DURATION_UNITS:
        text = pattern.sub(unit, text)
    return text


def answer_matches(text: str | None, answers: Sequence[str]) -> bool:
    """True when one of ``answers`` occurs in ``text`` as a case-insensitive substring; numbers are compared
    without thousands separators ("29,110,000" matches "29 110 000"), a duration in either language ("72 mois"
    matches "72 months"), and an answer that is a date matches the same day written another way ("31.12.2028"
    matches "31 décembre 2028")."""
    if not text:
        return False
    folded = _units(_THOUSANDS.sub("", text.casefold()))
    if any(_units(_THOUSANDS.sub("", a.casefold())) in folded for a in answers):
        return True
    days = [full_dates(a) for a in answers]
    return any(days) and bool(full_dates(text) & set().union(*days))


@dataclass(frozen=True)
class Confusion:
    """No-answer confusion counts; positive = "the corpus cannot answer", predicted when ``found`` is false."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def to_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "precision": self.precision, "recall": self.recall}


def no_answer_confusion(cases: Iterable[tuple[bool, bool]]) -> Confusion:
    """Counts from (truly unanswerable, predicted unanswerable) pairs."""
    tp = fp = fn = tn = 0
    for actual, predicted in cases:
        if actual and predicted:
            tp += 1
        elif predicted:
            fp += 1
        elif actual:
            fn += 1
        else:
            tn += 1
    return Confusion(tp, fp, fn, tn)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def direction(query_lang: str, doc_lang: str | None) -> str:
    """Group label such as "EN→FR"; unanswerable questions (no document) go to "EN→none"."""
    return f"{query_lang.upper()}→{doc_lang.upper() if doc_lang else NO_DOC}"


def group_by_direction(items: Iterable[Any], key: Callable[[Any], str]) -> dict[str, list[Any]]:
    """``items`` grouped by ``key``: the four EN/FR directions always (maybe empty), other labels when present."""
    groups: dict[str, list[Any]] = {d: [] for d in DIRECTIONS}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class QuestionResult:
    """What one question got: ranked documents, retrieval scores, the answer and its judgement."""

    id: str
    query: str
    lang: str
    doc_lang: str | None
    relevant: tuple[str, ...]
    answers: tuple[str, ...]
    ranked: tuple[str, ...]
    recall_1: float | None
    recall_5: float | None
    recall_10: float | None
    rr: float | None
    ndcg: float | None
    found: bool
    answer: str | None
    cited: tuple[str, ...]
    correct: bool | None
    highlights: tuple[str, ...] = ()

    @property
    def direction(self) -> str:
        return direction(self.lang, self.doc_lang)

    @property
    def answerable(self) -> bool:
        return bool(self.relevant)

    @property
    def grounded(self) -> bool | None:
        """Correct and quoting at least one relevant document; None when there is nothing to check."""
        if self.correct is None:
            return None
        return self.correct and any(s in self.relevant for s in self.cited)

    @property
    def cited_first(self) -> bool | None:
        """The answer's first citation is a relevant document; None for a question the corpus cannot answer."""
        return bool(self.found and self.cited and self.cited[0] in self.relevant) if self.answerable else None

    def failures(self) -> list[str]:
        """Why this question counts as a miss (empty when it does not)."""
        reasons = []
        if not self.answerable:
            if self.found:
                reasons.append("answered although the corpus cannot answer")
            return reasons
        rank = next((i for i, s in enumerate(self.ranked, 1) if s in self.relevant), None)
        if rank is None:
            reasons.append(f"relevant document not in the top {len(self.ranked) or K}")
        elif rank > 5:
            reasons.append(f"relevant document at rank {rank}")
        if not self.found:
            reasons.append("no answer given")
        elif self.correct is False:
            reasons.append("expected string not in the answer")
        return reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "query": self.query, "lang": self.lang, "doc_lang": self.doc_lang,
            "direction": self.direction, "relevant": list(self.relevant), "answers": list(self.answers),
            "ranked": list(self.ranked), "cited_first": self.cited_first, "recall@1": self.recall_1,
            "recall@5": self.recall_5,
            "recall@10": self.recall_10, "rr@10": self.rr, "ndcg@10": self.ndcg, "found": self.found,
            "answer": self.answer, "cited": list(self.cited), "correct": self.correct, "grounded": self.grounded,
            "highlights": list(self.highlights), "failures": self.failures(),
        }


def score_question(q: Question, ranked: Sequence[str], relevant: Collection[str], doc_lang: str | None,
                   answer: Answer) -> QuestionResult:
    """Judge one question from its ranked document keys and answer; ``relevant`` uses the same keys."""
    ranked = tuple(dedupe(ranked))[:K]
    scored = bool(relevant)
    cited = tuple(dedupe(c.hit.chunk.source for c in answer.citations))
    correct = (answer.found and answer_matches(answer.text, q.answers)) if q.answers else None
    return QuestionResult(
        q.id, q.query, q.lang, doc_lang, tuple(relevant), q.answers, ranked,
        recall_at(ranked, relevant, 1) if scored else None,
        recall_at(ranked, relevant, 5) if scored else None,
        recall_at(ranked, relevant, 10) if scored else None,
        reciprocal_rank(ranked, relevant, K) if scored else None,
        ndcg_at(ranked, relevant, K) if scored else None,
        answer.found, answer.text, cited, correct,
        tuple((answer.text or "")[a:b] for a, b in answer.highlights),
    )


@dataclass(frozen=True)
class GroupMetrics:
    """Averages over one group of questions; retrieval and accuracy over the questions they apply to."""

    group: str
    questions: int
    answerable: int
    recall_1: float | None
    recall_5: float | None
    recall_10: float | None
    mrr_10: float | None
    ndcg_10: float | None
    accuracy: float | None
    accuracy_questions: int
    accuracy_correct: int
    grounded_accuracy: float | None
    no_answer: Confusion
    cited_first: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "questions": self.questions, "answerable": self.answerable,
            "recall@1": self.recall_1, "recall@5": self.recall_5, "recall@10": self.recall_10,
            "mrr@10": self.mrr_10, "ndcg@10": self.ndcg_10,
            "answer_accuracy": self.accuracy, "answer_questions": self.accuracy_questions,
            "answer_correct": self.accuracy_correct, "grounded_accuracy": self.grounded_accuracy,
            "no_answer_precision": self.no_answer.precision, "no_answer_recall": self.no_answer.recall,
            "no_answer": self.no_answer.to_dict(), "cited_first": self.cited_first,
        }


def summarize(group: str, results: Sequence[QuestionResult]) -> GroupMetrics:
    """Metrics of one group of question results."""
    judged = [r for r in results if r.correct is not None]
    correct = sum(bool(r.correct) for r in judged)
    return GroupMetrics(
        group, len(results), sum(r.answerable for r in results),
        mean(r.recall_1 for r in results), mean(r.recall_5 for r in results), mean(r.recall_10 for r in results),
        mean(r.rr for r in results), mean(r.ndcg for r in results),
        correct / len(judged) if judged else None, len(judged), correct,
        mean(float(bool(r.grounded)) for r in judged) if judged else None,
        no_answer_confusion((not r.answerable, not r.found) for r in results),
        mean(r.cited_first for r in results),
    )


def breakdown(results: Sequence[QuestionResult]) -> tuple[GroupMetrics, ...]:
    """Overall metrics, then one row per query-language → document-language group."""
    groups = group_by_direction(results, lambda r: r.direction)
    return (summarize(OVERALL, results),) + tuple(summarize(name, rows) for name, rows in groups.items())


@dataclass(frozen=True)
class EvalReport:
    """A whole evaluation run: settings, per-group metrics and per-question results."""

    questions_file: str
    index_dir: str
    mode: str
    k: int
    model: str
    documents: int
    created: str
    seconds: float
    groups: tuple[GroupMetrics, ...]
    results: tuple[QuestionResult, ...]

    def group(self, name: str) -> GroupMetrics:
        return next(g for g in self.groups if g.group == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions_file": self.questions_file, "index_dir": self.index_dir, "mode": self.mode, "k": self.k,
            "model": self.model, "documents": self.documents, "created": self.created,
            "seconds": round(self.seconds, 2),
            "overall": self.group(OVERALL).to_dict(),
            "groups": {g.group: g.to_dict() for g in self.groups if g.group != OVERALL},
            "questions": [r.to_dict() for r in self.results],
        }


# ---------------------------------------------------------------- running

class Searchable(Protocol):
    """What ``evaluate`` needs from an opened index (``aidsearch.api.Aidsearch`` fits)."""

    settings: Settings

    def search(self, query: str, *, k: int | None = ..., max_per_doc: int | None = ...,
               mode: str | None = ...) -> SearchResult: ...

    def ask(self, question: str, *, mode: str | None = ...) -> Answer: ...

    def documents(self) -> list[Document]: ...


def _resolver(docs: Sequence[Document]) -> Callable[[Question], tuple[list[str], str | None]]:
    by_key: dict[str, Document] = {}
    for d in docs:
        by_key.setdefault(d.id, d)
        by_key[d.source] = d

    def resolve(q: Question) -> tuple[list[str], str | None]:
        found: list[Document] = []
        for entry in q.relevant:
            doc = by_key.get(entry) or by_key.get(entry.lstrip("./"))
            if doc is None:
                raise EvalError(f"question {q.id}: relevant document {entry!r} is not in the index")
            found.append(doc)
        return dedupe(d.source for d in found), (found[0].lang if found else None)

    return resolve


def evaluate(ix: Searchable, questions: Sequence[Question], *, mode: str | None = None, k: int = K,
             questions_file: str = "", index_dir: str = "", model: str = "",
             progress: Callable[[int, int], None] | None = None, answers: bool = True) -> EvalReport:
    """Run every question through ``search`` (top ``k`` documents) and ``ask`` and score them; ``answers``
    False scores retrieval alone (answers count as not found); ``mode`` defaults to the index's setting."""
    mode = mode or ix.settings.retrieval
    if mode not in MODES:
        raise EvalError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    started = time.perf_counter()
    docs = ix.documents()
    resolve = _resolver(docs)
    resolved = [resolve(q) for q in questions]  # fail on a bad reference before running anything
    results = []
    for n, (q, (relevant, doc_lang)) in enumerate(zip(questions, resolved), 1):
        # one passage per document: the k hits are the k best documents, in the order of their best passage
        hits = ix.search(q.query, k=k, max_per_doc=1, mode=mode).hits
        ranked = [h.chunk.source for h in hits]
        answer = ix.ask(q.query, mode=mode) if answers else Answer(q.query, q.lang, False, None)
        results.append(score_question(q, ranked, relevant, doc_lang, answer))
        if progress:
            progress(n, len(questions))
    results_t = tuple(results)
    return EvalReport(questions_file, index_dir, mode, k, model, len(docs),
                      datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter() - started,
                      breakdown(results_t), results_t)


# ---------------------------------------------------------------- rendering

def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render_table(groups: Sequence[GroupMetrics]) -> str:
    """The metrics as a markdown table, one row per group."""
    head = ("group", "questions", "answerable", "R@1", "R@5", "R@10", "MRR@10", "nDCG@10", "cited first",
            "answer acc.", "acc. + cited", "no-answer P", "no-answer R")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        acc = "–" if g.accuracy is None else f"{g.accuracy:.3f} ({g.accuracy_correct}/{g.accuracy_questions})"
        cells = (g.group, str(g.questions), str(g.answerable), _num(g.recall_1), _num(g.recall_5),
                 _num(g.recall_10), _num(g.mrr_10), _num(g.ndcg_10), _num(g.cited_first), acc,
                 _num(g.grounded_accuracy), _num(g.no_answer.precision), _num(g.no_answer.recall))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def render_markdown(report: EvalReport, failures: bool = True) -> str:
    """A heading line, the metrics table and (optionally) the list of missed questions."""
    na = report.group(OVERALL).no_answer
    parts = [
        f"**{report.mode}** retrieval, {len(report.results)} questions from `{report.questions_file}`, "
        f"index `{report.index_dir}` ({report.documents} documents, model {report.model}), "
        f"top {report.k} documents; {report.seconds:.1f} s",
        "",
        render_table(report.groups),
        "",
        f"No-answer confusion (overall): TP {na.tp}, FP {na.fp}, FN {na.fn}, TN {na.tn}.",
    ]
    missed = [r for r in report.results if r.failures()]
    if failures and missed:
        parts += ["", f"Missed questions ({len(missed)}):", ""]
        for r in missed:
            answer = " ".join((r.answer or "").split())
            answer = answer if len(answer) <= 160 else answer[:157] + "…"
            top = r.ranked[0] if r.ranked else "–"
            parts.append(f"- `{r.id}` {r.direction}: {'; '.join(r.failures())} — top document `{top}`; "
                         f"answer: {answer or '–'}")
    return "\n".join(parts)


__all__ = [
    "Confusion", "EvalError", "EvalReport", "GroupMetrics", "Question", "QuestionResult", "answer_matches", "auc",
    "breakdown", "dedupe", "direction", "evaluate", "group_by_direction", "load_questions", "mean", "ndcg_at",
    "no_answer_confusion", "parse_questions", "recall_at", "reciprocal_rank", "render_markdown", "render_table",
    "score_question", "summarize",
]
