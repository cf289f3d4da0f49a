"""Fit the learned stages (fusion, answer sentence, abstention, answer span) on the train parts of the development sets.

``python -m aidsearch.train --set NAME=INDEX_DIR:QUESTIONS.jsonl ... [--validate NAME=INDEX_DIR:QUESTIONS.jsonl ...]``
writes ``params/{fusion,sentence,abstain,span}.json`` with the hash of the data, the counts and the validation
figures they reached (``make train`` runs it on the shipped sets). Nothing is random: the same data gives the
same parameters. With ``--reader-weight`` it fits only how much the answer reader's span scores weigh against the
learned sentence scores (``params/reader_weight.json``), with ``--passage-weight`` how much its answer margin weighs
against the retrieval score in choosing the passage to quote (``params/reader_passage.json``); ``make train-reader``
runs both after training the reader.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .answer import (AnswerModels, choose_passage, passage_scores, read, read_passage,
                     with_reader)
from .api import Aidsearch, open_index
from .embed import model_path
from .evaluate import Question, auc, load_questions
from .features import ABSTAIN_FEATURES, PASSAGE_FEATURES, READER_ABSTAIN_FEATURES, SENTENCE_FEATURES
from .learned import load_model
from .linear import PARAMS_DIR, LinearModel, fit_binary, fit_listwise, untrained
from .reader import (ABSTAIN_FILE, PASSAGE_FILE, WEIGHT_FILE, Reader, shared_reader, shipped_margin_bound,
                     shipped_passage_weight)
from .spans import SPAN_FEATURES, span_candidates, token_f1

_ARTICLE = re.compile(r"^(.*-a\d+)-p\d+\.txt$")


def group_key(source: str) -> str:
    """What a training "the answer is not indexed" case leaves out with a document: its whole article for QA
    paragraphs (``piaf-a012-p03.txt``), else the document itself."""
    m = _ARTICLE.match(Path(source).name)
    return m.group(1) if m else source


@dataclass
class Example:
    """One question as the trainer sees it."""

    set: str
    question: Question
    relevant: frozenset[str]
    vector: np.ndarray


@dataclass
class Source:
    """A question set over one index."""

    name: str
    ix: Aidsearch
    questions: list[Question]
    path: Path

    def examples(self) -> list[Example]:
        docs = {d.source for d in self.ix.documents()} | {d.id for d in self.ix.documents()}
        by_id = {d.id: d.source for d in self.ix.documents()}
        vectors = self.ix.embedder.encode_queries([q.query for q in self.questions])
        out = []
        for q, v in zip(self.questions, vectors):
            missing = [r for r in q.relevant if r not in docs]
            if missing:
                raise ValueError(f"{self.path}: question {q.id}: {missing[0]!r} is not in the index")
            out.append(Example(self.name, q, frozenset(by_id.get(r, r) for r in q.relevant), v))
        return out


def _retrieval(ix: Aidsearch, ex: Example, *, hide_answer: bool = False, paragraph: bool = False):
    """The question's retrieval; ``hide_answer``: with the answer's article left out (only its paragraph with
    ``paragraph``)."""
    retriever = ix.retriever()
    exclude = None
    if hide_answer:
        unit = (lambda s: s) if paragraph else group_key
        hidden = {unit(s) for s in ex.relevant}
        exclude = np.array([unit(c.source) in hidden for c in retriever.chunks])
    return retriever, retriever.retrieve(ex.question.query, k=5, query_vector=ex.vector, exclude=exclude,
                                         mode="learned")


def _contains(text: str, answers: Sequence[str]) -> bool:
    folded = text.casefold()
    return any(a.casefold() in folded for a in answers)


def fusion_groups(ix: Aidsearch, examples: Sequence[Example]) -> list[tuple[np.ndarray, np.ndarray]]:
    groups = []
    for ex in examples:
        if not ex.question.answerable:
            continue
        retriever, r = _retrieval(ix, ex)
        if r.pool is None:
            continue
        groups.append((r.pool.features, np.array([retriever.chunks[int(row)].source in ex.relevant
                                                  for row in r.pool.rows])))
    return groups


def _readings(ix: Aidsearch, examples: Sequence[Example], models: AnswerModels):
    """For each question with answer strings: its reading and which candidates hold an answer in a relevant
    document."""
    for ex in examples:
        if not ex.question.answers:
            continue
        retriever, r = _retrieval(ix, ex)
        reading = read(ex.question.query, r, ex.vector, retriever.sentence_vectors, models)
        labels = np.array([reading.top[c.passage].chunk.source in ex.relevant and _contains(c.text, ex.question.answers)
                           for c in reading.candidates], dtype=bool)
        yield ex, reading, labels


def sentence_groups(ix: Aidsearch, examples: Sequence[Example],
                    models: AnswerModels) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(reading.features, labels) for _, reading, labels in _readings(ix, examples, models) if len(labels)]


def span_groups(ix: Aidsearch, examples: Sequence[Example],
                models: AnswerModels) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each question, the spans of the best-scored sentence that holds a gold answer; the positives are the
    spans closest to it (word F1 at least 0.5)."""
    groups = []
    for ex, reading, labels in _readings(ix, examples, models):
        if not labels.any():
            continue
        good = np.flatnonzero(labels)
        sentence = reading.candidates[int(good[np.argmax(reading.scores[good])])].text
        spans, x = span_candidates(sentence, reading.question)
        if spans:
            f1 = np.array([max(token_f1(sp.text, a) for a in ex.question.answers) for sp in spans])
            groups.append((x, (f1 >= f1.max() - 1e-9) & (f1 >= 0.5)))
    return groups


def _abstain_readings(ix: Aidsearch, examples: Sequence[Example], models: AnswerModels, *,
                      siblings: bool = False):
    """Each question as asked, and each answerable one again with its answer's article hidden (with ``siblings``,
    once more with only its paragraph hidden, when it is a QA paragraph and no passage read holds an answer
    string): the reading, whether the documents answer it and whether it is the real question."""
    for ex in examples:
        answerable = ex.question.answerable
        cases = [(False, False, answerable)] + ([(True, False, False)] if answerable else []) + \
            ([(True, True, False)] if answerable and siblings and ex.question.answers and
             any(group_key(s) != s for s in ex.relevant) else [])
        for hide, paragraph, label in cases:
            retriever, r = _retrieval(ix, ex, hide_answer=hide, paragraph=paragraph)
            reading = read(ex.question.query, r, ex.vector, retriever.sentence_vectors, models)
            if paragraph and any(_contains(h.chunk.text, ex.question.answers) for h in reading.top):
                continue
            if reading.abstain_features is not None:
                yield reading, label, not hide


def abstain_rows(ix: Aidsearch, examples: Sequence[Example],
                 models: AnswerModels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, labels (the documents answer) and whether the row is a real question (not a case built
    by hiding the answer's article)."""
    cases = list(_abstain_readings(ix, examples, models))
    return (np.array([r.abstain_features for r, _, _ in cases]), np.array([y for _, y, _ in cases]),
            np.array([real for _, _, real in cases]))


UNANSWERABLE_SHARE = 0.1  # about one question in ten cannot be answered from the documents (the development set)


def choose_threshold(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """The probability below which the answerer says "no answer": where a question is as likely to be answerable
    as not once ``UNANSWERABLE_SHARE`` of questions cannot be answered. The model learnt on rows where answerable
    questions make up share ``p`` (each set counting alike, as in training; the other rows hide the answer's
    article or cannot be answered), so its odds are rescaled by the two priors. A rule, not a search: it does not
    chase the few questions that sit near any threshold on the train parts."""
    p = float(np.mean([y.mean() for _, y, _ in parts if len(y)]))
    odds = p / (1 - p) * UNANSWERABLE_SHARE / (1 - UNANSWERABLE_SHARE)
    return round(odds / (1 + odds), 4)


def _with_fusion(sources: Sequence[Source], fusion: LinearModel) -> None:
    for s in sources:
        s.ix.retriever().fusion = fusion


def measure(sources: Sequence[tuple[Source, list[Example]]], fusion: LinearModel,
            models: AnswerModels) -> dict[str, Any]:
    """Per set: passage Recall@1 of the fusion (right document first), and how often the chosen sentence holds a
    gold answer (among answerable questions with answer strings); abstention accuracy when the set has
    unanswerable questions; with a span model, over the questions whose chosen sentence holds the answer, the
    word F1 of the best span, how often one is highlighted (probability at least ``min_span_probability``) and
    its F1 then."""
    from .answer import best_span
    out: dict[str, Any] = {}
    for source, examples in sources:
        _with_fusion([source], fusion)
        first, contains, n_ret, n_ans, abst_ok, n_abst = 0, 0, 0, 0, 0, 0
        f1_all: list[float] = []
        f1_shown: list[float] = []
        for ex in examples:
            retriever, r = _retrieval(source.ix, ex)
            if ex.question.answerable and r.hits:
                n_ret += 1
                first += r.hits[0].chunk.source in ex.relevant
            reading = read(ex.question.query, r, ex.vector, retriever.sentence_vectors, models)
            if ex.question.answers and len(reading.scores):
                n_ans += 1
                best = reading.candidates[int(np.argmax(reading.scores))]
                holds = (reading.top[best.passage].chunk.source in ex.relevant
                         and _contains(best.text, ex.question.answers))
                contains += holds
                if holds and models.span is not None:
                    top = best_span(reading.question, best.text, models.span, 0.0)
                    f1_all.append(max(token_f1(top.text, a) for a in ex.question.answers) if top else 0.0)
                    if best_span(reading.question, best.text, models.span, models.min_span_probability):
                        f1_shown.append(f1_all[-1])
            if reading.abstain_features is not None:
                p = float(models.abstain.probability(reading.abstain_features[None, :])[0])
                n_abst += 1
                abst_ok += (p >= models.min_probability) == ex.question.answerable
        out[source.name] = {"questions": len(examples), "recall_1": round(first / max(n_ret, 1), 4),
                            "sentence_has_answer": round(contains / max(n_ans, 1), 4),
                            "abstention_accuracy": round(abst_ok / max(n_abst, 1), 4)}
        if models.span is not None:
            out[source.name].update({"sentences": len(f1_all), "span_f1": round(float(np.mean(f1_all or [0])), 4),
                                     "highlighted": round(len(f1_shown) / max(len(f1_all), 1), 4),
                                     "highlighted_f1": round(float(np.mean(f1_shown or [0])), 4)})
    return out


READER_WEIGHTS: tuple[float | None, ...] = (0.0, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, None)


def reader_rows(ix: Aidsearch, examples: Sequence[Example], models: AnswerModels,
                reader: Reader) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each question with answer strings: the learned and the reader's scores of the sentences of the passage
    that holds the best-scored sentence (the one the reader reads), and which of them hold a gold answer."""
    rows = []
    for _, reading, labels in _readings(ix, examples, models):
        if not len(reading.scores):
            continue
        p, logits = read_passage(reading, reader)
        scores = logits.span_scores([(x.start, x.end) for x in reading.sentences[p]])
        gold = np.zeros(len(scores), dtype=bool)
        for c, label in zip(reading.candidates, labels):
            if c.passage == p:
                gold[c.index] = label
        learned = passage_scores(reading, p)
        rows.append((learned, scores if np.isfinite(scores).any() else learned, gold))
    return rows


def reader_abstain_rows(ix: Aidsearch, examples: Sequence[Example], models: AnswerModels, reader: Reader, *,
                        siblings: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As ``abstain_rows``, with the features of ``READER_ABSTAIN_FEATURES``: the abstention features and the
    reader's answer margin on the passage the answerer quotes (``read_passage`` with the shipped passage weight);
    with ``siblings``, the cases with only the answer's paragraph hidden too (the same subject, not the answer:
    what that margin tells apart)."""
    rows: list[np.ndarray] = []
    labels: list[bool] = []
    real: list[bool] = []
    weight, bound = shipped_passage_weight(), shipped_margin_bound()
    for reading, label, is_real in _abstain_readings(ix, examples, models, siblings=siblings):
        if not len(reading.scores):
            continue
        margin = read_passage(reading, reader, weight, bound)[1].answer_margin()
        if margin is None:
            raise SystemExit("error: the reader was trained without no-answer examples: run python -m "
                             "aidsearch.train_reader --nulls 0.5 first")
        rows.append(np.append(reading.abstain_features, margin))
        labels.append(label)
        real.append(is_real)
    return np.array(rows).reshape(-1, len(READER_ABSTAIN_FEATURES)), np.array(labels), np.array(real)


VALIDATION_QUESTIONS = 200  # per validation set, for the figures of the reader's abstention


def _committed_reader(source: Source) -> Reader:
    """The committed answer reader over the bundled encoder of ``source``'s index."""
    folder = model_path(source.ix.settings)
    reader = shared_reader(folder) if folder is not None else None
    if reader is None:
        raise SystemExit("error: no reader weights: run python -m aidsearch.train_reader first")
    return reader


def fit_reader_abstain(train_sets: Sequence[Source], validation: Sequence[Source] = (), *,
                       log: Callable[[str], None] = lambda _: None) -> LinearModel:
    """The abstention model over the abstention features and the reader's answer margin on the passage quoted,
    fitted like abstention on the answer present, its article hidden and its paragraph hidden (each set counting
    alike, threshold by ``choose_threshold``), with the AUC of the shipped abstention model alone and of the
    fitted model on the first ``VALIDATION_QUESTIONS`` questions of each validation set."""
    models, reader = AnswerModels.shipped(), _committed_reader(train_sets[0])
    parts = []
    for s in train_sets:
        log(f"reader abstention: train {s.name}")
        parts.append(reader_abstain_rows(s.ix, s.examples(), models, reader))
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    weight = np.concatenate([np.full(len(p[1]), 1.0 / max(len(p[1]), 1)) for p in parts])
    info: dict[str, Any] = {"data": data_hash([s.path for s in train_sets]), "rows": len(y),
                            "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "sets": {s.name: len(s.questions) for s in train_sets},
                            "threshold": choose_threshold(parts)}
    model = fit_binary(x, y, READER_ABSTAIN_FEATURES, info=info, sample_weight=weight)
    figures = {}
    for s in validation:
        log(f"reader abstention: validation {s.name}")
        vx, vy, _ = reader_abstain_rows(s.ix, s.examples()[:VALIDATION_QUESTIONS], models, reader)
        if 0 < vy.sum() < len(vy):
            figures[s.name] = {"rows": len(vy), "auc_abstain": round(auc(models.abstain.scores(vx[:, :-1]), vy), 4),
                               "auc_with_reader": round(auc(model.scores(vx), vy), 4)}
    info["validation"] = figures
    return model


def weight_accuracy(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """For each weight of ``READER_WEIGHTS`` ("reader alone" for None), how often the chosen sentence holds a
    gold answer."""
    return {"reader alone" if w is None else str(w):
            round(float(np.mean([g[with_reader(a, b, w)] for a, b, g in rows] or [0.0])), 4) for w in READER_WEIGHTS}


def fit_reader_weight(train_sets: Sequence[Source], validation: Sequence[Source] = (), *,
                      log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The weight of ``READER_WEIGHTS`` whose choices hold a gold answer most often on the train parts (each set
    counting alike; the smaller weight on a tie), with the figures of every weight on the train and the
    validation parts."""
    models, reader = AnswerModels.shipped(), _committed_reader(train_sets[0])
    fitted, figures = _fit_weight(train_sets, validation, "reader weight",
                                  lambda s: weight_accuracy(reader_rows(s.ix, s.examples(), models, reader)),
                                  "reader alone", log)
    return {**fitted, "sentence_has_answer": figures}


PASSAGE_WEIGHTS: tuple[float | None, ...] = (None, 0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class PassageRow:
    """One question's top passages: retrieval scores, the reader's answer margins, which hold a gold answer in a
    relevant document, and the passage of the best learned sentence."""

    scores: np.ndarray
    margins: list[float | None]
    gold: np.ndarray
    learned: int


def passage_rows(ix: Aidsearch, examples: Sequence[Example], models: AnswerModels, reader: Reader) -> list[PassageRow]:
    rows = []
    for ex, reading, _ in _readings(ix, examples, models):
        if not len(reading.scores):
            continue
        logits = reader.logits(ex.question.query, [h.chunk.text for h in reading.top])
        gold = np.array([h.chunk.source in ex.relevant and _contains(h.chunk.text, ex.question.answers)
                         for h in reading.top])
        rows.append(PassageRow(np.array([h.score for h in reading.top]), [r.answer_margin() for r in logits], gold,
                               reading.candidates[int(np.argmax(reading.scores))].passage))
    return rows


def passage_accuracy(rows: Sequence[PassageRow]) -> dict[str, float]:
    """For each weight of ``PASSAGE_WEIGHTS`` ("best sentence" for None), how often the chosen passage holds a
    gold answer in a relevant document."""
    return {"best sentence" if w is None else str(w):
            round(float(np.mean([r.gold[r.learned if w is None else choose_passage(r.scores, r.margins, w)]
                                 for r in rows] or [0.0])), 4) for w in PASSAGE_WEIGHTS}


def _fit_weight(train_sets: Sequence[Source], validation: Sequence[Source], what: str,
                accuracy: Callable[[Source], dict[str, float]], none_key: str,
                log: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, float]]]]:
    """The weight whose figure by ``accuracy`` is best on the train parts (each set counting alike; the earlier
    key of the grid on a tie), with every weight's figures on the train and the validation parts."""
    figures: dict[str, dict[str, dict[str, float]]] = {"train": {}, "validation": {}}
    for part, sources in (("train", train_sets), ("validation", validation)):
        for s in sources:
            log(f"{what}: {part} {s.name}")
            figures[part][s.name] = accuracy(s)
    keys = list(figures["train"][train_sets[0].name])
    mean = {k: float(np.mean([f[k] for f in figures["train"].values()])) for k in keys}
    best = max(keys, key=lambda k: (mean[k], -keys.index(k)))
    return {"weight": None if best == none_key else float(best), "data": data_hash([s.path for s in train_sets]),
            "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sets": {s.name: len(s.questions) for s in train_sets}}, figures


def fit_passage_weight(train_sets: Sequence[Source], validation: Sequence[Source] = (), *,
                       log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The weight of ``PASSAGE_WEIGHTS`` whose chosen passages hold a gold answer most often on the train parts,
    with the figures of every weight on the train and the validation parts, and the bound of the margins (the
    highest on the train parts, plus 0.5) above which a passage is not read."""
    models, reader = AnswerModels.shipped(), _committed_reader(train_sets[0])
    bound: list[float] = []

    def accuracy(s: Source) -> dict[str, float]:
        rows = passage_rows(s.ix, s.examples(), models, reader)
        if any(s is t for t in train_sets):
            bound.extend(m for r in rows for m in r.margins if m is not None)
        return passage_accuracy(rows)

    fitted, figures = _fit_weight(train_sets, validation, "passage weight", accuracy, "best sentence", log)
    return {**fitted, "margin_bound": round(max(bound, default=0.0) + 0.5, 2), "passage_has_answer": figures}


def data_hash(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def train(train_sets: Sequence[Source], validation: Sequence[Source] = (), *, steps: int = 400,
          log: Callable[[str], None] = lambda _: None) -> dict[str, LinearModel]:
    """Fit fusion, then the sentence model on the fitted fusion's passages, then abstention on both."""
    examples = [(s, s.examples()) for s in train_sets]
    val = [(s, s.examples()) for s in validation]
    info = {"data": data_hash([s.path for s in train_sets]), "sets": {s.name: len(e) for s, e in examples},
            "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"), "steps": steps}
    log("fusion: collecting pools")
    per_set = [fusion_groups(s.ix, e) for s, e in examples]
    groups = [g for gs in per_set for g in gs]
    fusion = fit_listwise(groups, PASSAGE_FEATURES, steps=steps, info={**info, "groups": len(groups)},
                          group_weight=[1.0 / len(gs) for gs in per_set for _ in gs])  # each set counts alike
    _with_fusion(train_sets, fusion)
    base = AnswerModels(untrained(SENTENCE_FEATURES, "sim_rel"), untrained(ABSTAIN_FEATURES, "dense_z_top"))
    log(f"sentence: reading the top passages ({len(groups)} fusion groups)")
    s_groups = [g for s, e in examples for g in sentence_groups(s.ix, e, base)]
    sentence = fit_listwise(s_groups, SENTENCE_FEATURES, steps=steps, info={**info, "groups": len(s_groups)})
    models = replace(base, sentence=sentence)
    log(f"abstention: answer present and hidden ({len(s_groups)} sentence groups)")
    parts = [abstain_rows(s.ix, e, models) for s, e in examples]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    weight = np.concatenate([np.full(len(p[1]), 1.0 / max(len(p[1]), 1)) for p in parts])  # each set counts alike
    abstain = fit_binary(x, y, ABSTAIN_FEATURES, steps=steps, info={**info, "rows": len(y)}, sample_weight=weight)
    assert abstain.info is not None
    abstain.info["threshold"] = choose_threshold(parts)
    log("span: the spans of the sentences that hold the answer")
    p_groups = [g for s, e in examples for g in span_groups(s.ix, e, models)]
    span = fit_listwise(p_groups, SPAN_FEATURES, steps=steps, info={**info, "groups": len(p_groups)})
    fitted = {"fusion": fusion, "sentence": sentence, "abstain": abstain, "span": span}
    if val:
        log("validation")
        models = replace(models, abstain=abstain, span=span, min_probability=abstain.info["threshold"])
        before = measure(val, untrained(PASSAGE_FEATURES, "dense_rel"),
                         replace(base, span=untrained(SPAN_FEATURES, "near_question")))
        after = measure(val, fusion, models)
        for model in fitted.values():
            assert model.info is not None
            model.info["validation"] = {"untrained": before, "trained": after}
    return fitted


def _source(spec: str, settings_embedder: dict[str, Any]) -> Source:
    name, sep, rest = spec.partition("=")
    index_dir, sep2, questions = rest.rpartition(":")
    if not sep or not sep2:
        raise SystemExit(f"error: bad set {spec!r}: use NAME=INDEX_DIR:QUESTIONS.jsonl")
    ix = open_index(index_dir, embedder=settings_embedder.get("embedder"))
    settings_embedder.setdefault("embedder", ix.embedder)
    return Source(name, ix, load_questions(questions), Path(questions))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="sets", action="append", required=True, help="NAME=INDEX_DIR:QUESTIONS.jsonl")
    parser.add_argument("--validate", action="append", default=[], help="NAME=INDEX_DIR:QUESTIONS.jsonl")
    parser.add_argument("--out", type=Path, default=PARAMS_DIR)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--reader-weight", action="store_true", help="fit only the weight of the answer reader")
    parser.add_argument("--passage-weight", action="store_true",
                        help="fit only how much the reader's answer margin weighs in choosing the passage to quote")
    parser.add_argument("--reader-abstain", action="store_true",
                        help="fit only the abstention that weighs the reader's answer margin")
    args = parser.parse_args(argv)
    shared: dict[str, Any] = {}
    sources = [_source(s, shared) for s in args.sets]
    validation = [_source(s, shared) for s in args.validate]
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.reader_weight or args.passage_weight:
        fitted_weight = (fit_reader_weight if args.reader_weight else fit_passage_weight)(sources, validation, log=say)
        out = args.out / (WEIGHT_FILE if args.reader_weight else PASSAGE_FILE).name
        out.write_text(json.dumps(fitted_weight, indent=1) + "\n", encoding="utf-8")
        print(json.dumps({"out": str(out), **fitted_weight}, indent=1))
        return
    if args.reader_abstain:
        fitted_abstain = fit_reader_abstain(sources, validation, log=say)
        out = args.out / ABSTAIN_FILE.name
        fitted_abstain.save(out)
        print(json.dumps({"out": str(out), **fitted_abstain.to_dict()}, indent=1))
        return
    fitted = train(sources, validation, steps=args.steps, log=say)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, model in fitted.items():
        model.save(args.out / f"{name}.json")
    load_model.cache_clear()
    summary = next(iter(fitted.values())).info or {}
    print(json.dumps({"out": str(args.out), "validation": summary.get("validation")}, indent=1))


if __name__ == "__main__":
    main()
