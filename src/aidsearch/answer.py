"""Extractive answers: the sentences of the top passages that best answer the question, with ``[n]`` citations."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .chunk import Sentence, passage_sentences
from .features import (SENTENCE_FEATURES, Candidate, QuestionInfo, abstain_features, same_terms, sentence_features,
                       starts_with_pronoun)
from .lang import detect_en_fr
from .learned import load_model
from .lexical import tokenize
from .lexicon import ASKED_KINDS, LABEL_KINDS, PLACE_ASK, fold
from .linear import LinearModel
from .retrieve import Retrieval
from .fields import field_answer
from .reader import PassageLogits, Reader
from .spans import Span, span_candidates
from .types import MESSAGES, Answer, Citation, Document, Hit

_HAS = {
    "amount": re.compile(r"\d[\d ,.\u202f\u00a0]*\d\s*(?:eur|usd|cad|xof|fcfa|chf|€|\$|million)"
                         r"|(?:us\$|\$|€)\s*\d", re.I),
    "count": re.compile(r"(?<![\d/.,$€])(?<!\$ )(?<!€ )(?!(?:19|20)\d\d\b)\d{1,3}(?:[ ,.]\d{3})*(?![\d/.,]?\d)"
                       r"(?!\s*(?:eur|usd|cad|xof|fcfa|%))", re.I),
    "date": re.compile(r"\b(?:19|20)\d\d\b|\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b"
                       r"|\b\d+\s*(?:months|mois|years|ans)\b", re.I),
    "funder": re.compile(r"\b(?:donors?|funders?|bailleurs?|funded by|financed by|financ[ée]e?s? par)\b", re.I),
}
_AMOUNT_VALUE = re.compile(r"(?:[A-Z]{3}|€|\$|US\$)?\s*\d[\d ,.\u202f\u00a0]*"
                           r"(?:\s*(?:million|millions|[A-Z]{3}|€))?", re.I)
_LABEL_LINE = re.compile(r"^\s*([^:\n]{2,40}?)\s*:\s+\S")
SentenceVectors = Callable[[Hit], np.ndarray]
_MARKER = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class AnswerPolicy:
    """Weights and thresholds of the extractive answerer (tuned on the evaluation set)."""

    min_dense: float = 0.86
    min_dense_with_terms: float = 0.79
    min_coverage: float = 0.5
    passages: int = 5
    max_sentences: int = 3
    margin: float = 0.02
    max_chars: int = 600
    term_weight: float = 0.08
    type_boost: float = 0.08
    passage_weight: float = 1.0
    label_penalty: float = 0.1
    title_penalty: float = 0.05


def term_coverage(terms: set[str], hit: Hit) -> float:
    """Share of the question's key terms found in the passage or its context; a shared 5-letter prefix counts,
    so "Cambodge" covers "Cambodia" and "République" covers "Republic"."""
    if not terms:
        return 1.0
    words = set(tokenize(hit.chunk.embed_text()))
    prefixes = {w[:5] for w in words if len(w) >= 5}
    return sum(t in words or (len(t) >= 5 and t[:5] in prefixes) for t in terms) / len(terms)


def is_answerable(hits: Sequence[Hit], question: str, policy: AnswerPolicy) -> bool:
    """Calibrated decision: the best passage is very close to the question, or close and naming what it names."""
    if not hits:
        return False
    best = max(h.dense for h in hits)
    if best >= policy.min_dense:
        return True
    return best >= policy.min_dense_with_terms and term_coverage(key_terms(question), hits[0]) >= policy.min_coverage


_NAME = re.compile(r"(?:(?<=[^.?!]\s)|(?<=\s[lLdD]['’]))([A-ZÀ-Ö][\w'’-]+)")  # "… Kosovo", "… l'Australie"


def key_terms(question: str) -> set[str]:
    """Terms that name things: numbers, codes and capitalized words after the first; language-independent."""
    terms = {t for t in tokenize(question) if any(c.isdigit() for c in t) or "/" in t}
    for name in _NAME.findall(question):
        terms.update(tokenize(name))
    return terms


def field_label(sentence: str) -> str | None:
    """The kind of fiche field a "Label: value" line gives ("amount" for "Budget: 750,000 CAD"), if any; a line
    whose label names no field but whose whole value is an amount ("Luxembourg Government: 25,400,000 EUR")
    gives an amount."""
    match = _LABEL_LINE.match(sentence)
    if not match or len(sentence.split()) > 12:
        return None
    label = fold(match.group(1))
    kind = next((kind for kind, pattern in LABEL_KINDS.items() if pattern.search(label)), None)
    value = sentence[match.end() - 1:].strip()
    if kind is None and _AMOUNT_VALUE.fullmatch(value) and _HAS["amount"].search(value):
        return "amount"
    return kind


def asked_kinds(question: str) -> list[str]:
    """The kinds of fact a question asks for: amount, count, date, funder."""
    folded = fold(question)
    return [kind for kind, pattern in ASKED_KINDS.items() if pattern.search(folded)]


def _term_weight(term: str) -> float:
    return 3.0 if any(c.isdigit() for c in term) or "/" in term else 1.0


@dataclass(frozen=True)
class Scored:
    """A candidate sentence with its score and the evidence behind it."""

    score: float
    similarity: float
    passage: int
    sentence: Sentence
    typed: bool | None
    own_terms: int


def rank_sentences(question: str, query_vector: np.ndarray, top: Sequence[Hit], vectors: SentenceVectors,
                   policy: AnswerPolicy) -> list[Scored]:
    """Candidate sentences of the ``top`` passages, best first."""
    terms = key_terms(question)
    total = sum(_term_weight(t) for t in terms)
    asks = asked_kinds(question)
    wanted = set(asks) | ({"place"} if PLACE_ASK.search(question.lower()) else set())
    scored = []
    for i, hit in enumerate(top):
        cands = passage_sentences(hit.chunk.text)
        if not cands:
            continue
        sims = vectors(hit) @ query_vector
        context = set(tokenize(hit.chunk.context))
        folded_context, title = fold(hit.chunk.context), fold(hit.chunk.title).strip()
        for cand, sim in zip(cands, sims):
            own = terms & set(tokenize(cand.text))
            found = own | (terms & context)
            overlap = sum(_term_weight(t) for t in found) / total if total else 0.0
            typed = any(_HAS[kind].search(cand.text) for kind in asks) if asks else None
            folded = fold(cand.text)
            title_only = folded in folded_context
            field = field_label(cand.text)
            off_field = field is not None and field not in wanted  # "Donor: …" quoted for a question about a place
            titled = not title_only and len(title) >= 8 and folded.startswith(title)  # "Title: first sentence"
            score = (float(sim) + policy.passage_weight * hit.dense + policy.term_weight * overlap
                     + policy.type_boost * bool(typed) - 0.05 * title_only - policy.label_penalty * off_field
                     - policy.title_penalty * titled)
            scored.append(Scored(score, float(sim), i, cand, typed, len(own)))
    scored.sort(key=lambda t: -t.score)
    return scored


def _supports(extra: Scored, best: Scored, policy: AnswerPolicy) -> bool:
    """An extra sentence joins the answer only if it is as close to the question and carries the asked kind of
    fact (an amount, a date, a count) or, for other questions, one of the question's names."""
    relevant = extra.typed if extra.typed is not None else extra.own_terms >= 1
    return (extra.score >= best.score - policy.margin and extra.similarity >= best.similarity - policy.margin
            and relevant and len(extra.sentence.text.split()) >= 4)


def compose(question: str, language: str, hits: Sequence[Hit], query_vector: np.ndarray,
            vectors: SentenceVectors, policy: AnswerPolicy = AnswerPolicy()) -> Answer:
    """Pick the best sentences of the top passages and stitch them with ``[n]`` markers."""
    none = Answer(question, language, False, MESSAGES[language]["none"])
    if not is_answerable(hits, question, policy):
        return none
    top = list(hits[: policy.passages])
    scored = rank_sentences(question, query_vector, top, vectors, policy)
    if not scored:
        return none
    best = scored[0]
    best_doc = top[best.passage].chunk.doc_id
    chosen: list[Scored] = [best]
    length = len(best.sentence.text)
    for extra in scored[1:]:
        if len(chosen) >= policy.max_sentences or extra.score < best.score - policy.margin:
            break
        cand = extra.sentence
        if top[extra.passage].chunk.doc_id != best_doc or any(c.sentence.text == cand.text for c in chosen):
            continue
        if any(c.passage == extra.passage and c.sentence.start < cand.end and cand.start < c.sentence.end
               for c in chosen):
            continue
        if not _supports(extra, best, policy) or length + len(cand.text) > policy.max_chars:
            continue
        chosen.append(extra)
        length += len(cand.text)
    numbers: dict[int, int] = {}
    parts = []
    for c in chosen:
        n = numbers.setdefault(c.passage, len(numbers) + 1)
        text = _MARKER.sub(r"(\1)", c.sentence.text)  # a quoted footnote "[2]" must not read as a citation
        text = text if len(text) <= 400 else text[:397].rsplit(" ", 1)[0] + "…"
        parts.append(f"{text} [{n}]")
    citations = tuple(
        Citation(n, top[i], tuple((c.sentence.start, c.sentence.end) for c in chosen if c.passage == i))
        for i, n in sorted(numbers.items(), key=lambda kv: kv[1])
    )
    return Answer(question, language, True, " ".join(parts), citations)


# ---------------------------------------------------------------- learned answer selection

@dataclass(frozen=True)
class AnswerModels:
    """The learned stages of the answerer: sentence choice, abstention and the answer span, plus how many passages
    to read. A sentence joins the best one when it is its neighbour or scores within ``near_score`` of it, and
    one short sentence within ``close_score`` when the best one alone is over ``max_words`` (all chosen on the
    train parts); a span is highlighted when its probability reaches ``min_span_probability``; the
    answer is "no answer" below ``min_probability`` (set by the trainer from the train parts). With a ``reader``,
    the passage quoted is the one holding the best learned sentence, or with ``passage_weight`` the best of
    retrieval score + ``passage_weight`` × the reader's answer margin over the top passages (those that cannot
    win with a margin of ``margin_bound`` are not read); its quoted sentence
    is the best of learned + ``reader_weight`` × reader span score (the reader's choice alone when None); with
    ``reader_abstain`` too, for a quoted answer, the answer is "no answer" when that model, given the abstention
    features and the reader's answer margin on the passage quoted (``PassageLogits.answer_margin``), is below
    ``min_reader_probability``."""

    sentence: LinearModel
    abstain: LinearModel
    span: LinearModel | None = None
    passages: int = 5
    min_probability: float = 0.5
    max_words: int = 40
    near_score: float = 2.0
    close_score: float = 1.0
    min_span_probability: float = 0.3
    reader: Reader | None = None
    reader_weight: float | None = None
    passage_weight: float | None = None
    margin_bound: float = math.inf
    reader_abstain: LinearModel | None = None
    min_reader_probability: float = 0.5

    @classmethod
    def shipped(cls) -> AnswerModels:
        abstain = load_model("abstain")
        threshold = (abstain.info or {}).get("threshold", 0.5)
        return cls(load_model("sentence"), abstain, load_model("span"), min_probability=float(threshold))


@dataclass(frozen=True)
class Reading:
    """The answer candidates of the top passages, scored: what the answerer and the trainer both look at."""

    top: list[Hit]
    sentences: list[list[Sentence]]
    candidates: list[Candidate]
    features: np.ndarray
    scores: np.ndarray
    abstain_features: np.ndarray | None
    question: QuestionInfo


def read(question: str, retrieval: Retrieval, query_vector: np.ndarray, vectors: SentenceVectors,
         models: AnswerModels) -> Reading:
    """Score every sentence of the top passages, and compute the abstention features of the question."""
    top = list(retrieval.hits[: models.passages])
    sentences = [passage_sentences(h.chunk.text) for h in top]
    sims = [vectors(h) @ query_vector if s else np.zeros(0) for h, s in zip(top, sentences)]
    info = retrieval.pool.question if retrieval.pool is not None else QuestionInfo(question, detect_en_fr(question))
    labels = [[field_label(s.text) is not None for s in sents] for sents in sentences]
    cands, x = sentence_features(info, [[s.text for s in sents] for sents in sentences], sims,
                                 np.array([h.score for h in top]), labels)
    scores = models.sentence.scores(x) if len(x) else np.zeros(0)
    abstain = None
    if retrieval.pool is not None and top:
        cover = term_coverage(key_terms(question), top[0])
        abstain = abstain_features(retrieval.fused, retrieval.pool.features, retrieval.pool.docs, scores, cover, info,
                                   top[0].chunk.lang)
    return Reading(top, sentences, cands, x, scores, abstain, info)


def compose_learned(question: str, language: str, retrieval: Retrieval, query_vector: np.ndarray,
                    vectors: SentenceVectors, models: AnswerModels,
                    documents: Callable[[str], Document | None] = lambda _: None) -> Answer:
    """The answer to ``question``: "no answer" when the abstention model finds the corpus unlikely to answer;
    else the fiche fields it asks for, worded in ``language``, when the best document has them; else the
    best-scored sentence of the top passages. Each with its ``[n]`` citation."""
    reading = read(question, retrieval, query_vector, vectors, models)
    if reading.abstain_features is None or not len(reading.scores):
        return Answer(question, language, False, MESSAGES[language]["none"])
    row = reading.abstain_features[None, :]
    confidence, threshold = float(models.abstain.probability(row)[0]), models.min_probability
    top = reading.top
    doc = documents(top[0].chunk.doc_id)
    own = [h for h in top if h.chunk.doc_id == doc.id] if doc is not None else []
    fields = field_answer(question, language, doc.metadata, [h.chunk.text for h in own]) if doc is not None else None
    passage = read_passage(reading, models.reader, models.passage_weight, models.margin_bound) \
        if models.reader is not None and fields is None else None
    margin = passage[1].answer_margin() if passage is not None else None
    if models.reader_abstain is not None and margin is not None:
        both = np.append(row, [[margin]], axis=1)
        confidence, threshold = float(models.reader_abstain.probability(both)[0]), models.min_reader_probability
    if confidence < threshold:
        return Answer(question, language, False, MESSAGES[language]["none"], confidence=confidence)
    if fields is not None:
        citation = Citation(1, own[fields.passage], tuple((x.start, x.end) for x in fields.sentences))
        text, marks = "", []
        for line in fields.lines:
            label, sep, value = line.partition(":")
            start = len(text) + len(label) + len(sep) + 1 if sep else len(text)
            marks.append((start, len(text) + len(line)))
            text += f"{line} [1] "
        return Answer(question, language, True, text.strip(), (citation,), confidence=confidence,
                      highlights=tuple(marks))
    return _quote(question, language, reading, models, confidence, passage)


def best_span(question: QuestionInfo, sentence: str, model: LinearModel, min_probability: float) -> Span | None:
    """The span of ``sentence`` that answers the question, when the span model gives it ``min_probability``."""
    spans, x = span_candidates(sentence, question)
    if not spans:
        return None
    scores = model.scores(x)
    probs = np.exp(scores - scores.max())
    best = int(np.argmax(scores))
    return spans[best] if probs[best] / probs.sum() >= min_probability else None


def passage_scores(reading: Reading, passage: int) -> np.ndarray:
    """The learned score of each sentence of passage ``passage`` of ``reading`` (-inf for one not scored)."""
    out = np.full(len(reading.sentences[passage]), -np.inf)
    for i, c in enumerate(reading.candidates):
        if c.passage == passage:
            out[c.index] = reading.scores[i]
    return out


def with_reader(learned: np.ndarray, reader: np.ndarray, weight: float | None) -> int:
    """The sentence of a passage to quote given its sentences' learned scores and the reader's best span score in
    each: the reader's choice alone when ``weight`` is None, else the best learned + ``weight`` × reader score (a
    sentence holding no span counts as the passage's lowest reader score)."""
    finite = np.isfinite(reader)
    reader = np.where(finite, reader, reader[finite].min())
    return int(np.argmax(reader if weight is None else learned + weight * reader))


def read_passage(reading: Reading, reader: Reader, weight: float | None = None,
                 bound: float = math.inf) -> tuple[int, PassageLogits]:
    """The passage to quote and the reader's reading of it: with ``weight`` None, the one holding the best learned
    sentence (the only one read); else the best by ``choose_passage``. The reader reads the first passage by
    retrieval score, then only the passages that could still win with an answer margin of ``bound`` (the highest
    the reader gave on the train parts)."""
    question = reading.question.text
    if weight is not None:
        scores = np.array([h.score for h in reading.top])
        first = int(np.argmax(scores))
        read = dict(zip([first], reader.logits(question, [reading.top[first].chunk.text])))  # empty: nothing read
        margin = read[first].answer_margin() if first in read else None
        floor = scores[first] + weight * (margin if margin is not None else -bound)
        rest = [i for i in range(len(scores)) if i != first and scores[i] + weight * bound > floor]
        if rest and first in read:
            read.update(zip(rest, reader.logits(question, [reading.top[i].chunk.text for i in rest])))
        if first in read:
            ids = sorted(read)
            p = ids[choose_passage(scores[ids], [read[i].answer_margin() for i in ids], weight)]
            return p, read[p]
    p = reading.candidates[int(np.argmax(reading.scores))].passage
    return p, reader.logits(question, [reading.top[p].chunk.text])[0]


def choose_passage(scores: np.ndarray, margins: Sequence[float | None], weight: float) -> int:
    """The passage with the best retrieval score + ``weight`` × the reader's answer margin (a passage without a
    margin counts as the lowest one)."""
    known = [m for m in margins if m is not None]
    low = min(known) if known else 0.0
    return int(np.argmax(scores + weight * np.array([low if m is None else m for m in margins])))


def _read_best_passage(reading: Reading, passage: tuple[int, PassageLogits], order: np.ndarray,
                       weight: float | None) -> tuple[np.ndarray, Span | None]:
    """The reader's choice within the passage it read (with the learned scores, by ``weight``): that sentence goes
    first in ``order``, and the reader's span in it, relative to the sentence."""
    p, logits = passage
    sentences = reading.sentences[p]
    scores = logits.span_scores([(s.start, s.end) for s in sentences])
    if not len(scores) or not np.isfinite(scores.max()):
        return order, None
    index = with_reader(passage_scores(reading, p), scores, weight)
    pick = next((i for i in order if reading.candidates[int(i)].passage == p and
                 reading.candidates[int(i)].index == index), None)
    if pick is None:
        return order, None
    order = np.concatenate([[pick], order[order != pick]])
    sentence = sentences[index]
    found = logits.best_span(sentence.start, sentence.end)
    span = None
    if found is not None:
        words = " ".join(reading.top[p].chunk.text[found[0]:found[1]].split())
        at = sentence.text.find(words) if words else -1
        span = Span(at, at + len(words), words) if at >= 0 else None
    return order, span


def _quote(question: str, language: str, reading: Reading, models: AnswerModels, confidence: float,
           passage: tuple[int, PassageLogits] | None = None) -> Answer:
    """The best-scored sentence, with its neighbours and the sentences scored within ``near_score`` of it in the
    same document while the answer stays within ``max_words``, in reading order, each with the number of its
    passage; the sentence before, whatever its length, when the best one starts with a pronoun ("Il abandonne…",
    "Ce fonds…": it names what the pronoun stands for); the answer span of the best sentence highlighted.
    ``passage``: the reader's reading of the passage of the best sentence, when there is a reader."""
    order = np.argsort(-reading.scores, kind="stable")
    reader_span = None
    if passage is not None:
        order, reader_span = _read_best_passage(reading, passage, order, models.reader_weight)
    best = reading.candidates[int(order[0])]
    top_score = float(reading.scores[int(order[0])])
    doc = reading.top[best.passage].chunk.doc_id
    is_label = reading.features[:, SENTENCE_FEATURES.index("label_line")] > 0
    chosen = [best]
    seen: dict[tuple[int, int], set[str]] = {}

    def terms(c: Candidate) -> set[str]:
        key = (c.passage, c.index)
        if key not in seen:
            seen[key] = set(tokenize(c.text))
        return seen[key]

    words = len(best.text.split())
    for i in order[1:]:
        cand = reading.candidates[int(i)]
        size = len(cand.text.split())
        score = float(reading.scores[int(i)])
        near = score >= top_score - models.near_score
        neighbour = cand.passage == best.passage and abs(cand.index - best.index) == 1
        label = is_label[int(i)] and not is_label[int(order[0])]  # "Donor: …" as filler
        repeat = any(same_terms(terms(c), terms(cand)) for c in chosen)  # a title and the sentence repeating it
        if reading.top[cand.passage].chunk.doc_id != doc or label or repeat:
            continue
        if words + size <= models.max_words and (near or neighbour):
            chosen.append(cand)
            words += size
        elif len(chosen) == 1 and words > models.max_words and size <= models.max_words and \
                score >= top_score - models.close_score:  # a long best sentence and a short rival
            chosen.append(cand)
            words += size
    if best.index > 0 and starts_with_pronoun(best.text) and not any(c.passage == best.passage and
                                                                    c.index == best.index - 1 for c in chosen):
        chosen.append(next(c for c in reading.candidates if c.passage == best.passage and c.index == best.index - 1))
    chosen.sort(key=lambda c: (c.passage, c.index))
    span: Span | None = reader_span
    if span is None and models.span is not None:
        span = best_span(reading.question, best.text, models.span, models.min_span_probability)
    numbers: dict[int, int] = {}
    text, marks = "", []
    for c in chosen:
        n = numbers.setdefault(c.passage, len(numbers) + 1)
        quoted = _MARKER.sub(r"(\1)", c.text)
        if len(quoted.split()) > 2 * models.max_words:
            quoted = " ".join(quoted.split()[: 2 * models.max_words]) + "…"
        if c is best and span is not None and quoted[span.start:span.end] == span.text:
            marks.append((len(text) + span.start, len(text) + span.end))
        text += f"{quoted} [{n}] "
    citations = tuple(
        Citation(n, reading.top[p], tuple((reading.sentences[p][c.index].start, reading.sentences[p][c.index].end)
                                          for c in chosen if c.passage == p))
        for p, n in numbers.items())
    return Answer(question, language, True, text.strip(), citations, confidence=confidence, highlights=tuple(marks))
