"""The answer reader: committed weights, the sentence and span it picks, and its training."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aidsearch.chunk import passage_sentences
from aidsearch.config import Settings
from aidsearch.embed import model_path
from aidsearch.reader import PassageLogits, _windows, load_reader
from aidsearch.train_reader import QAExample, mean_loss, null_items, save_reader, train_reader, training_items

QUARTERBACK = ("Peyton Manning became the first quarterback ever to lead two different teams to multiple Super Bowls. "
               "He is also the oldest quarterback ever to play in a Super Bowl at age 39. The past record was held by "
               "John Elway, who led the Broncos to victory in Super Bowl XXXIII at age 38 and is currently Denver's "
               "Executive Vice President of Football Operations and General Manager.")
PERLE = ("Le Botswana connaît une croissance rapide après l'indépendance. Surnommé la « perle de l'Afrique », "
         "le pays devient un modèle de stabilité. La « perle de l'Afrique » devient un modèle pour ses voisins.")


@pytest.mark.unit
def test_best_span_stays_inside_the_range_and_is_short():
    text = "aa bb cc dd"
    offsets = np.array([[0, 2], [3, 5], [6, 8], [9, 11]])
    logits = PassageLogits(text, np.array([0.0, 5.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0, 6.0]), offsets)
    assert logits.best_span() == (3, 11, 11.0)
    assert logits.best_span(0, 8) == (3, 8, 6.0)
    assert logits.best_span(20, 30) is None
    assert logits.span_scores([(0, 5), (6, 11), (20, 30)]).tolist() == [5.0, 7.0, -np.inf]


@pytest.mark.unit
def test_long_passages_are_read_in_overlapping_windows():
    assert _windows(10, 20, 5) == [(0, 10)]
    windows = _windows(50, 20, 5)
    assert windows[0] == (0, 20) and windows[-1][1] == 50
    assert all(b[0] < a[1] for a, b in zip(windows, windows[1:]))  # each overlaps the previous


@pytest.mark.unit
def test_the_answer_margin_is_the_best_span_over_no_answer():
    from dataclasses import replace

    offsets = np.array([[0, 2], [3, 5]])
    logits = PassageLogits("aa bb", np.array([2.0, 0.0]), np.array([0.0, 3.0]), offsets, null=4.0)
    assert logits.answer_margin() == 1.0  # "aa bb" scores 2 + 3 against 4
    assert replace(logits, null=-1.0).answer_margin() == 6.0
    assert replace(logits, null=None).answer_margin() is None  # a reader that never learnt to say "no answer"


@pytest.mark.unit
def test_reader_abstention_fitted_on_other_features_is_not_used(tmp_path, monkeypatch):
    import aidsearch.reader as reader_module
    from aidsearch.features import READER_ABSTAIN_FEATURES
    from aidsearch.linear import LinearModel

    path = tmp_path / "reader_abstain.json"
    monkeypatch.setattr(reader_module, "ABSTAIN_FILE", path)
    assert reader_module.shipped_abstain() is None
    LinearModel(("abstain_score", "reader_margin"), np.ones(2), np.zeros(2), np.ones(2)).save(path)
    assert reader_module.shipped_abstain() is None  # an earlier feature list: the learned abstention alone
    n = len(READER_ABSTAIN_FEATURES)
    LinearModel(READER_ABSTAIN_FEATURES, np.ones(n), np.zeros(n), np.ones(n), info={"threshold": 0.2}).save(path)
    model = reader_module.shipped_abstain()
    assert model is not None and model.features == READER_ABSTAIN_FEATURES and model.info == {"threshold": 0.2}


@pytest.fixture(scope="module")
def trained():
    """A reader trained for a few steps on three questions, and the untrained one it started from."""
    folder = model_path(Settings())
    examples = [QAExample("t", "Who held the record before?", QUARTERBACK, ("Peyton Manning",),  # not the answer:
                          QUARTERBACK.index("Peyton Manning"), QUARTERBACK.index("Peyton Manning") + 14),  # see below
                QAExample("t", "How old was Manning?", QUARTERBACK, ("39",), QUARTERBACK.index("39"),
                          QUARTERBACK.index("39") + 2),
                QAExample("t", "Quel pays est surnommé la perle de l'Afrique ?", PERLE, ("Botswana",),
                          PERLE.index("Botswana"), PERLE.index("Botswana") + 8)] * 4
    untrained, _, _ = train_reader(folder, examples, epochs=0, batch=4)
    reader, tensors, settings = train_reader(folder, examples, epochs=3, batch=4, lr=3e-3)
    return untrained, reader, tensors, settings, training_items(untrained, examples)


@pytest.mark.model
def test_short_reader_training_run_improves_over_untrained(trained, tmp_path):
    untrained, reader, tensors, settings, items = trained
    assert settings["steps"] == 9 and any(k.endswith(".lora_b") for k in tensors)
    before, after = mean_loss(untrained, items), mean_loss(reader, items)
    assert after < 0.7 * before, (before, after)
    save_reader(tmp_path / "reader.safetensors", tensors, {"settings": settings, "data": "test"})
    loaded = load_reader(model_path(Settings()), tmp_path / "reader.safetensors")
    assert loaded is not None and loaded.info["data"] == "test"
    assert abs(mean_loss(loaded, items) - after) < 0.05 * after + 0.05  # half-precision adapters, same reader


@pytest.mark.model
def test_the_reader_chooses_the_quoted_sentence_and_highlights_its_span(trained, tmp_path_factory, embedder):
    """With a reader, the quote starts from the reader's sentence of the best passage and highlights its span,
    whatever the sentence ranker prefers (this reader was taught a wrong answer the ranker would not give)."""
    from dataclasses import replace

    from aidsearch import open_index
    from aidsearch.config import load_settings

    root = tmp_path_factory.mktemp("reader")
    (root / "corpus").mkdir()
    (root / "corpus" / "super_bowl.txt").write_text(f"Super Bowl 50\n\n{QUARTERBACK}\n", encoding="utf-8")
    settings = load_settings(corpus_dir=root / "corpus", index_dir=root / "index")
    open_index(settings=settings, embedder=embedder, create=True)
    ix = open_index(settings=settings.with_overrides(answerer="reader"), embedder=embedder)
    ix.models = replace(ix.models, reader=trained[1])
    question = "Who held the record before?"
    chunk = ix.search(question, k=1).hits[0].chunk
    logits = trained[1].logits(question, [chunk.text])[0]
    sentences = passage_sentences(chunk.text)
    chosen = sentences[int(np.argmax(logits.span_scores([(x.start, x.end) for x in sentences])))]
    start, end, _ = logits.best_span(chosen.start, chosen.end)
    answer = ix.ask(question)
    assert answer.found and chosen.text in answer.text, (chosen.text, answer.text)
    assert [answer.text[a:b] for a, b in answer.highlights] == [chunk.text[start:end]], answer.highlights
    ix.settings = ix.settings.with_overrides(answerer="learned")
    learned = ix.ask(question)
    assert [learned.text[a:b] for a, b in learned.highlights] != [chunk.text[start:end]], "the reader made no change"


@pytest.mark.model
def test_reader_answerer_without_weights_is_a_one_line_error(tmp_path, monkeypatch, embedder):
    from aidsearch import open_index, reader
    from aidsearch.config import load_settings
    from aidsearch.errors import ConfigError

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "super_bowl.txt").write_text(f"Super Bowl 50\n\n{QUARTERBACK}\n", encoding="utf-8")
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", answerer="reader")
    open_index(settings=settings, embedder=embedder, create=True)
    monkeypatch.setattr(reader, "READER_FILE", tmp_path / "missing.safetensors")
    monkeypatch.setattr(reader, "_SHARED", {})
    with pytest.raises(ConfigError, match=r"^answerer 'reader' needs the reader's weights \(missing.safetensors\): "
                                          r"run make train-reader$"):
        open_index(settings=settings, embedder=embedder).ask("Who held the record before?")


# Texts written for these tests (not from the sets the reader was trained on), one per failure kind of the earlier
# answerer: the sentence that restates the question comes first, the one that answers it next.
GRANTS = ("The Kigali water project was the largest grant the fund made in 2019, at 9 million dollars. "
          "The previous largest grant had gone to the Mwanza sanitation programme, which received 7 million dollars "
          "in 2016. Both grants were managed from the regional office in Nairobi.")
CHATEAU = ("Le massif du Fouta-Djalon, en Guinée, est surnommé le « château d'eau de l'Afrique de l'Ouest ». "
           "Le « château d'eau de l'Afrique de l'Ouest » alimente le Niger, le Sénégal et la Gambie. "
           "Le projet finance le reboisement de 4 000 hectares sur ses pentes.")


@pytest.fixture(scope="module")
def shipped_ix(tmp_path_factory, embedder):
    """An index of the two texts above, asked with the shipped reader weights."""
    from aidsearch import open_index
    from aidsearch.config import load_settings

    root = tmp_path_factory.mktemp("shipped")
    (root / "corpus").mkdir()
    (root / "corpus" / "grants.txt").write_text(f"Water and sanitation grants\n\n{GRANTS}\n", encoding="utf-8")
    (root / "corpus" / "fouta.txt").write_text(f"Reboisement du Fouta-Djalon\n\n{CHATEAU}\n", encoding="utf-8")
    settings = load_settings(corpus_dir=root / "corpus", index_dir=root / "index", answerer="reader")
    open_index(settings=settings, embedder=embedder, create=True)
    return open_index(settings=settings, embedder=embedder)


@pytest.mark.model
def test_committed_reader_weights_load_with_their_data_hash_and_validation_figures():
    from aidsearch.reader import READER_FILE
    from aidsearch.train import data_hash

    assert READER_FILE.stat().st_size < 5_000_000
    reader = load_reader(model_path(Settings()))
    assert reader is not None
    qa = Path(__file__).resolve().parent.parent / "eval" / "qa"
    assert reader.info["data"] == data_hash(list(qa.glob("*_dev_*.jsonl.gz")))
    assert reader.info["settings"]["seed"] == 0 and reader.info["train"] > 1000
    assert sorted(reader.info["validation"]) == ["piaf", "xquad_en"]
    for figures in reader.info["validation"].values():
        assert figures["questions"] > 300 and 0.5 < figures["sentence_has_answer"] <= 1.0


@pytest.mark.model
def test_int8_reader_is_quantized_and_reads_the_same_answer():
    import torch

    fp32 = load_reader(model_path(Settings()))
    int8 = load_reader(model_path(Settings()), quantize="int8")
    assert fp32 is not None and int8 is not None
    layer = int8.model.encoder.layer[0]
    assert not isinstance(layer.attention.self.query, torch.nn.Linear)  # replaced by a quantized layer
    assert not isinstance(layer.intermediate.dense, torch.nn.Linear)
    assert isinstance(layer.output.dense, torch.nn.Linear)  # outlier activations: stays fp32
    question = "Who previously held the record for being the oldest quarterback to play in a Super Bowl?"
    a, b = fp32.logits(question, [QUARTERBACK])[0], int8.logits(question, [QUARTERBACK])[0]
    assert np.array_equal(a.offsets, b.offsets) and not np.allclose(a.starts, b.starts, atol=1e-6)
    assert "John Elway" in QUARTERBACK[slice(*a.best_span()[:2])]
    assert a.best_span()[:2] == b.best_span()[:2]
    assert abs(a.answer_margin() - b.answer_margin()) < 1.0


@pytest.mark.model
def test_reader_on_onnx_runtime_gives_the_same_scores_from_a_graph_written_once(tmp_path, caplog):
    folder = model_path(Settings())
    torch_reader = load_reader(folder)
    onnx_reader = load_reader(folder, onnx_dir=tmp_path)
    assert torch_reader is not None and onnx_reader is not None
    assert torch_reader.session is None and onnx_reader.session is not None
    (graph,) = tmp_path.iterdir()
    assert graph.name.startswith("reader-") and 50e6 < graph.stat().st_size < 120e6  # no 250k-row word table
    import torch

    with pytest.raises(RuntimeError, match="run on ONNX Runtime"):
        onnx_reader.model(input_ids=torch.zeros((1, 4), dtype=torch.long))  # PyTorch's copy of the layers is gone
    assert load_reader(folder, quantize="int8", onnx_dir=tmp_path / "int8").session is None  # int8 stays on PyTorch
    question = "Who previously held the record for being the oldest quarterback to play in a Super Bowl?"
    long_text = " ".join([PERLE] * 12)  # read in several windows, batched with the short one
    expected = torch_reader.logits(question, [QUARTERBACK, long_text])
    got = onnx_reader.logits(question, [QUARTERBACK, long_text])
    for a, b in zip(expected, got):
        assert np.array_equal(a.offsets, b.offsets) and np.allclose(a.starts, b.starts, atol=1e-3)
        assert np.allclose(a.ends, b.ends, atol=1e-3) and abs(a.answer_margin() - b.answer_margin()) < 1e-3
    assert "John Elway" in QUARTERBACK[slice(*got[0].best_span()[:2])]
    written = graph.stat().st_mtime_ns
    load_reader(folder, onnx_dir=tmp_path)
    assert graph.stat().st_mtime_ns == written  # read again, not written again
    graph.write_bytes(b"half a graph")
    again = load_reader(folder, onnx_dir=tmp_path)
    assert "cannot be read; writing it again" in caplog.text and list(tmp_path.iterdir()) == [graph]
    assert np.allclose(again.logits(question, [QUARTERBACK])[0].starts, expected[0].starts, atol=1e-3)
    other = tmp_path / "other"
    other_weights = tmp_path / "reader.safetensors"
    from aidsearch.reader import READER_FILE
    other_weights.write_bytes(READER_FILE.read_bytes())
    assert load_reader(folder, other_weights, onnx_dir=other).session is not None
    assert [p.name for p in other.iterdir()] == [graph.name]  # named by the weights, not by their file


@pytest.mark.model
def test_reader_stays_on_pytorch_when_its_export_fails(tmp_path, monkeypatch, caplog):
    from aidsearch import reader as reader_module

    def cannot_export(*args, **kwargs):
        raise RuntimeError("no graph today")

    monkeypatch.setattr(reader_module, "export_layers", cannot_export)
    fallback = load_reader(model_path(Settings()), onnx_dir=tmp_path)
    assert fallback is not None and fallback.session is None
    assert "the answer reader runs on PyTorch: ONNX export failed (no graph today)" in caplog.text
    question = "Who previously held the record for being the oldest quarterback to play in a Super Bowl?"
    assert "John Elway" in QUARTERBACK[slice(*fallback.logits(question, [QUARTERBACK])[0].best_span()[:2])]


def _miss(question: str, answer: str, reason: str):
    return pytest.param(question, answer, marks=pytest.mark.xfail(strict=True, reason=reason))


@pytest.mark.model
@pytest.mark.parametrize("question, answer", [
    ("Which programme previously received the fund's largest grant?", "Mwanza sanitation programme"),
    ("Quel programme avait reçu la plus grosse subvention du fonds auparavant ?", "Mwanza sanitation programme"),
    _miss("Quel massif est surnommé le « château d'eau de l'Afrique de l'Ouest » ?", "Fouta-Djalon",
          "the right sentence is quoted, but the reader highlights 'en Guinée' instead of 'Fouta-Djalon'"),
    _miss("Which rivers does the water tower of West Africa feed?", "le Niger, le Sénégal et la Gambie",
          "abstention: confidence 0.002 for this EN question on the French text of a two-document corpus"),
])
def test_shipped_reader_quotes_the_answering_sentence_not_the_restating_one(shipped_ix, question, answer):
    reply = shipped_ix.ask(question)
    assert reply.found and answer in reply.text, reply.text
    marked = " ".join(reply.text[a:b] for a, b in reply.highlights)
    assert marked and (marked in answer or answer in marked), (marked, reply.text)


def _validation_case(question: str) -> tuple[str, str, str]:
    """Question, paragraph and first answer of a validation question of the public QA sets (eval/qa)."""
    from aidsearch.train_reader import load_qa

    qa = Path(__file__).resolve().parent.parent / "eval" / "qa"
    ex = next(e for e in load_qa(qa)["validation"] if e.question == question)
    return ex.question, ex.text, ex.answers[0]


@pytest.mark.model
@pytest.mark.parametrize("question, names", [
    ("Who previously held the record for being the oldest quarterback to play in a Super Bowl?", ()),
    ("Quel pays est surnommé la \"perle de l'Afrique\" ?", ("Uganda",)),  # the country field, in English
    ("Qui abandonne ses principes marxistes en 1987 ?", ()),
])
def test_shipped_reader_on_the_reported_validation_questions(tmp_path, embedder, question, names):
    """The questions the earlier answerer got wrong (they are in the validation articles, never trained on):
    their paragraph indexed alone, the answer quotes and highlights the gold answer (or another of its
    ``names``)."""
    from aidsearch import open_index
    from aidsearch.config import load_settings

    question, text, gold = _validation_case(question)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "article.txt").write_text(f"Article\n\n{text}\n", encoding="utf-8")
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", answerer="reader")
    open_index(settings=settings, embedder=embedder, create=True)
    reply = open_index(settings=settings, embedder=embedder).ask(question)
    right = [n for n in (gold, *names) if n in reply.text]
    assert reply.found and right, reply.text
    assert any(n in reply.text[a:b] or reply.text[a:b] in n for a, b in reply.highlights for n in right), \
        reply.highlights


@pytest.mark.model
@pytest.mark.parametrize("question", [
    "What Panther defender was called for holding on third down?",  # retrieval ranks another paragraph first
    "Quelle surface l'île recouvre-t-elle ?",  # the best learned sentence is in another paragraph
])
def test_the_reader_chooses_the_paragraph_that_answers_among_those_of_its_article(tmp_path, embedder, question):
    """A validation question (never trained on) over every paragraph of its article: with the committed passage
    weight the answer quotes and cites the question's own paragraph; choosing the passage of the best learned
    sentence, as before, quotes another paragraph of the article."""
    from dataclasses import replace

    from aidsearch import open_index
    from aidsearch.config import load_settings
    from aidsearch.reader import shipped_margin_bound, shipped_passage_weight
    from aidsearch.train_reader import load_qa

    qa = Path(__file__).resolve().parent.parent / "eval" / "qa"
    ex = next(e for e in load_qa(qa)["validation"] if e.question == question)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "own.txt").write_text(f"Article\n\n{ex.text}\n", encoding="utf-8")
    for i, text in enumerate(ex.others):
        (tmp_path / "corpus" / f"other{i}.txt").write_text(f"Article\n\n{text}\n", encoding="utf-8")
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", answerer="reader")
    open_index(settings=settings, embedder=embedder, create=True)
    ix = open_index(settings=settings, embedder=embedder)
    reply = ix.ask(question)
    assert ix.models.passage_weight == shipped_passage_weight() is not None
    assert ix.models.margin_bound == shipped_margin_bound() < np.inf
    assert reply.found and ex.answers[0] in reply.text, reply.text
    assert reply.citations[0].hit.chunk.source == "own.txt"
    ix.models = replace(ix.models, passage_weight=None)
    before = ix.ask(question)
    assert before.citations[0].hit.chunk.source != "own.txt" and ex.answers[0] not in before.text


@pytest.mark.model
def test_committed_passage_weight_is_fitted_on_the_train_parts():
    from aidsearch.reader import PASSAGE_FILE, shipped_margin_bound, shipped_passage_weight
    from aidsearch.train import PASSAGE_WEIGHTS, data_hash

    fitted = json.loads(PASSAGE_FILE.read_text(encoding="utf-8"))
    root = Path(__file__).resolve().parent.parent
    train_files = [root / "eval/qa/build/piaf/train.jsonl", root / "eval/qa/build/xquad/train.jsonl",
                   root / "eval/dev/train.jsonl"]
    if all(p.exists() for p in train_files):
        assert fitted["data"] == data_hash(train_files)
    assert fitted["weight"] in PASSAGE_WEIGHTS and shipped_passage_weight() == fitted["weight"]
    assert 0 < fitted["margin_bound"] == shipped_margin_bound()
    train = fitted["passage_has_answer"]["train"]
    assert sorted(train) == ["dev", "piaf", "xquad"] and sorted(fitted["passage_has_answer"]["validation"]) == \
        ["dev", "piaf", "xquad"]
    key = "best sentence" if fitted["weight"] is None else str(fitted["weight"])
    mean = {k: np.mean([f[k] for f in train.values()]) for k in train["piaf"]}
    assert mean[key] == max(mean.values())


@pytest.mark.model
def test_fitting_the_passage_weight_reads_every_top_passage(shipped_ix, tmp_path):
    from aidsearch.answer import AnswerModels
    from aidsearch.evaluate import Question
    from aidsearch.train import PASSAGE_WEIGHTS, Source, fit_passage_weight, passage_rows

    questions = [Question("g1", "Which programme previously received the fund's largest grant?", "en",
                          ("grants.txt",), ("Mwanza",)),
                 Question("g2", "Combien d'hectares le projet reboise-t-il ?", "fr", ("fouta.txt",), ("4 000",))]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q.__dict__) + "\n" for q in questions), encoding="utf-8")
    source = Source("tiny", shipped_ix, questions, path)
    rows = passage_rows(shipped_ix, source.examples(), AnswerModels.shipped(), shipped_ix.answer_models().reader)
    assert len(rows) == 2 and all(len(r.margins) == len(r.scores) == len(r.gold) == 2 for r in rows)
    assert all(r.gold.sum() == 1 and all(m is not None for m in r.margins) for r in rows)
    fitted = fit_passage_weight([source])
    figures = fitted["passage_has_answer"]["train"]["tiny"]
    assert fitted["weight"] in PASSAGE_WEIGHTS and fitted["sets"] == {"tiny": 2}
    assert fitted["margin_bound"] >= max(m for r in rows for m in r.margins) + 0.5 - 0.01
    assert figures["best sentence" if fitted["weight"] is None else str(fitted["weight"])] == max(figures.values())


@pytest.mark.unit
def test_reader_weight_trades_the_learned_score_against_the_reader_score():
    from aidsearch.answer import with_reader

    learned = np.array([2.0, 1.0, 0.0, -np.inf])
    reader = np.array([1.0, 3.0, 4.0, -np.inf])
    assert with_reader(learned, reader, None) == 2  # the reader alone
    assert with_reader(learned, reader, 0.0) == 0  # the learned ranker alone
    assert with_reader(learned, reader, 0.7) == 1  # 2.7, 3.1, 2.8
    assert with_reader(learned, reader, 0.1) == 0  # 2.1, 1.3, 0.4
    no_span = np.array([-np.inf, 1.0, 3.0])  # the first sentence holds no span: it counts as 1.0, not -inf
    assert with_reader(np.array([5.0, 0.0, 0.0]), no_span, 1.0) == 0 and with_reader(np.zeros(3), no_span, None) == 2


@pytest.mark.unit
def test_weight_accuracy_counts_the_choices_that_hold_the_answer():
    from aidsearch.train import READER_WEIGHTS, weight_accuracy

    rows = [(np.array([2.0, 0.0]), np.array([0.0, 5.0]), np.array([False, True])),  # the reader is right
            (np.array([2.0, 0.0]), np.array([1.0, 1.5]), np.array([True, False]))]  # the learned ranker is right
    figures = weight_accuracy(rows)
    assert list(figures) == [str(w) for w in READER_WEIGHTS[:-1]] + ["reader alone"]
    assert figures["0.0"] == 0.5 and figures["reader alone"] == 0.5
    assert figures["1.0"] == 1.0  # 2.0 vs 5.0, then 3.0 vs 1.5: both right
    assert weight_accuracy([]) == {k: 0.0 for k in figures}


@pytest.mark.unit
def test_the_passage_to_quote_weighs_the_reader_margin_against_the_retrieval_score():
    from aidsearch.answer import choose_passage

    scores = np.array([10.0, 8.0, 7.0])
    margins = [-6.0, 3.0, None]  # the first passage does not answer, the second does, the third was not read
    assert choose_passage(scores, margins, 0.0) == 0  # retrieval alone
    assert choose_passage(scores, margins, 0.1) == 0  # 9.4 vs 8.3
    assert choose_passage(scores, margins, 0.5) == 1  # 7.0 vs 9.5
    assert choose_passage(np.array([1.0, 5.0]), [None, -2.0], 1.0) == 1  # no margin counts as the lowest
    assert choose_passage(np.array([1.0, 2.0]), [None, None], 1.0) == 1


class _MarginReader:
    """Reads passage ``i`` (its text is ``"p<i>"``) with answer margin ``margins[i]``, and remembers what it read."""

    def __init__(self, margins: list[float]):
        self.margins, self.read = margins, []

    def logits(self, question, texts):
        self.read.append([int(t[1:]) for t in texts])
        return [PassageLogits(t, np.array([self.margins[int(t[1:])]]), np.array([0.0]), np.array([[0, len(t)]]),
                              null=0.0) for t in texts]


def _reading(scores: list[float]):
    from aidsearch.answer import Reading
    from aidsearch.features import QuestionInfo
    from aidsearch.types import Chunk, Hit

    top = [Hit(Chunk(f"c{i}", f"d{i}", f"d{i}.txt", "T", f"p{i}", 0, 2, "en"), s, i + 1) for i, s in enumerate(scores)]
    return Reading(top, [[] for _ in top], [], np.zeros((0, 1)), np.zeros(0), None, QuestionInfo("q?", "en"))


@pytest.mark.unit
def test_the_reader_reads_only_the_passages_that_could_still_be_chosen():
    from aidsearch.answer import read_passage

    reader = _MarginReader([2.0, 9.0, 5.0, 1.0])
    # with weight 0.5 and margins at most 10, the first passage (11 + 1 = 12) can be beaten by the second
    # (9 + 5 = 14 >= 12) and the third (6 + 5 = 11 < 12: no), never by the fourth (1 + 5)
    p, logits = read_passage(_reading([11.0, 9.0, 6.0, 1.0]), reader, 0.5, bound=10.0)
    assert reader.read == [[0], [1]] and p == 1 and logits.text == "p1"  # 9 + 4.5 = 13.5 against 12
    reader.read = []
    assert read_passage(_reading([11.0, 9.0, 6.0, 1.0]), reader, 0.5)[0] == 1  # no bound: every passage is read
    assert reader.read == [[0], [1, 2, 3]]
    reader = _MarginReader([9.0, 9.0])
    assert read_passage(_reading([11.0, 9.0]), reader, 0.5, bound=10.0)[0] == 0 and reader.read == [[0]]


@pytest.mark.unit
def test_passage_accuracy_counts_the_chosen_passages_that_hold_the_answer():
    from aidsearch.train import PASSAGE_WEIGHTS, PassageRow, passage_accuracy

    rows = [PassageRow(np.array([10.0, 8.0]), [-6.0, 3.0], np.array([False, True]), 0),  # the margin is right
            PassageRow(np.array([10.0, 9.0]), [1.0, 4.0], np.array([True, False]), 1)]  # retrieval is right
    figures = passage_accuracy(rows)
    assert list(figures) == ["best sentence"] + [str(w) for w in PASSAGE_WEIGHTS[1:]]
    assert figures["best sentence"] == 0.0 and figures["0.0"] == 0.5
    assert figures["0.3"] == 1.0  # 8.2 vs 8.9, then 10.3 vs 10.2
    assert figures["2.0"] == 0.5  # the margin alone, nearly: wrong on the second
    assert passage_accuracy([]) == {k: 0.0 for k in figures}


@pytest.mark.model
def test_committed_reader_weight_is_fitted_on_the_train_parts_and_used_by_the_reader_answerer(shipped_ix):
    from aidsearch.reader import WEIGHT_FILE, shipped_weight
    from aidsearch.train import READER_WEIGHTS, data_hash

    fitted = json.loads(WEIGHT_FILE.read_text(encoding="utf-8"))
    root = Path(__file__).resolve().parent.parent
    train_files = [root / "eval/qa/build/piaf/train.jsonl", root / "eval/qa/build/xquad/train.jsonl",
                   root / "eval/dev/train.jsonl"]
    if all(p.exists() for p in train_files):  # the QA sets are built by make eval-data
        assert fitted["data"] == data_hash(train_files)
    assert fitted["weight"] in READER_WEIGHTS and shipped_weight() == fitted["weight"]
    train = fitted["sentence_has_answer"]["train"]
    assert sorted(train) == ["dev", "piaf", "xquad"]
    key = "reader alone" if fitted["weight"] is None else str(fitted["weight"])
    mean = {k: np.mean([f[k] for f in train.values()]) for k in train["piaf"]}
    assert mean[key] == max(mean.values()) and mean[key] > mean["0.0"]
    shipped_ix.ask("Quel massif est surnommé le « château d'eau de l'Afrique de l'Ouest » ?")
    assert shipped_ix.models.reader is not None and shipped_ix.models.reader_weight == fitted["weight"]
    assert shipped_ix.settings.query_runtime == "onnx" and shipped_ix.models.reader.session is not None


@pytest.mark.model
def test_fitting_the_reader_weight_picks_the_best_weight_on_the_train_questions(shipped_ix, tmp_path):
    from aidsearch.evaluate import Question
    from aidsearch.train import READER_WEIGHTS, Source, fit_reader_weight

    questions = [Question("g1", "Which programme previously received the fund's largest grant?", "en",
                          ("grants.txt",), ("Mwanza",)),
                 Question("g2", "Quel massif est surnommé le « château d'eau de l'Afrique de l'Ouest » ?", "fr",
                          ("fouta.txt",), ("Fouta-Djalon",)),
                 Question("g3", "Combien d'hectares le projet reboise-t-il ?", "fr", ("fouta.txt",), ("4 000",))]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q.__dict__) + "\n" for q in questions), encoding="utf-8")
    fitted = fit_reader_weight([Source("tiny", shipped_ix, questions, path)])
    figures = fitted["sentence_has_answer"]["train"]["tiny"]
    assert fitted["weight"] in READER_WEIGHTS and fitted["sets"] == {"tiny": 3}
    key = "reader alone" if fitted["weight"] is None else str(fitted["weight"])
    assert figures[key] == max(figures.values()) and all(0.0 <= v <= 1.0 for v in figures.values())
    assert max(figures.values()) >= 2 / 3, figures


@pytest.mark.model
def test_the_reader_shares_the_word_embedding_table_of_the_embedder(embedder):
    """The reader's low-rank updates leave the word embeddings alone: the 250k-row table is held once."""
    import torch

    from aidsearch.reader import shared_reader

    reader = shared_reader(model_path(Settings()))
    assert reader is not None
    mine = reader.model.embeddings.word_embeddings
    theirs = embedder.model[0].auto_model.embeddings.word_embeddings
    assert mine is theirs and mine.weight.dtype == torch.float16 and mine.weight.shape[0] > 200_000



@pytest.mark.model
def test_the_reader_tokenizes_as_the_model_tokenizer_without_a_second_vocabulary(embedder):
    """The reader's tokenizer gives the model tokenizer's ids and character offsets, and holding more of them does
    not hold the vocabulary again (a copy of the bundled model's costs about 270 MB)."""
    from transformers import AutoTokenizer

    from aidsearch.embed import release_freed_memory, tokenizer_for

    folder = model_path(Settings())
    hf = AutoTokenizer.from_pretrained(str(folder))
    texts = [QUARTERBACK, PERLE, "passage: Budget total : 29 110 000 EUR <s> </s> <mask>", "émoji 😀\tet\n\nlignes", "",
             "query: Qui finance le projet « Santé » au Kosovo ?", "x" * 3000]
    mine = tokenizer_for(folder)
    for text in texts:
        theirs = hf(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = mine.offsets(text)
        assert ids == theirs["input_ids"] == mine.ids(text)
        assert offsets == [tuple(o) for o in theirs["offset_mapping"]]
    assert (mine.cls_token_id, mine.sep_token_id, mine.pad_token_id) == (hf.cls_token_id, hf.sep_token_id,
                                                                        hf.pad_token_id)

    def rss_mib() -> float:
        release_freed_memory()
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20

    before = rss_mib()
    more = [tokenizer_for(folder) for _ in range(3)]
    assert all(t.ids(PERLE) == mine.ids(PERLE) for t in more)
    assert rss_mib() - before < 100  # three copies of the vocabulary would be about 800 MB

@pytest.mark.unit
def test_auc_counts_the_pairs_ranked_right():
    from aidsearch.evaluate import auc

    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert auc([1.0, 1.0], [True, False]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        auc([1.0], [True])


@pytest.mark.model
def test_the_committed_reader_says_which_paragraph_holds_no_answer():
    """Hand-written: for each question, the reader's answer margin on its paragraph is above its margin on a
    paragraph of the same subject that does not answer it and on one of another subject; its validation figures
    say the same on the public sets."""
    from aidsearch.train import data_hash

    reader = load_reader(model_path(Settings()))
    assert reader is not None and reader.null
    qa = Path(__file__).resolve().parent.parent / "eval" / "qa"
    assert reader.info["data"] == data_hash(list(qa.glob("*_dev_*.jsonl.gz")))
    assert reader.info["settings"]["nulls"] > 0
    assert all(f["no_answer_auc"] > 0.8 and f["no_answer_pairs"] >= 300 for f in reader.info["validation"].values())
    grants_2020 = ("In 2020 the fund made smaller grants to rural boreholes in Tanzania and to school latrines in "
                   "Uganda. Most were managed from the regional office in Nairobi.")
    cases = [("Which programme previously received the fund's largest grant?", GRANTS, grants_2020),
             ("Quel massif est surnommé le « château d'eau de l'Afrique de l'Ouest » ?", CHATEAU, GRANTS),
             ("Who held the record for the oldest quarterback before Manning?", QUARTERBACK, PERLE)]
    for question, own, *others in cases:
        margins = [x.answer_margin() for x in reader.logits(question, [own, *others])]
        assert all(m is not None for m in margins)
        assert margins[0] > max(margins[1:]), (question, margins)


@pytest.mark.model
def test_the_reader_abstention_model_decides_when_the_reader_answers(shipped_ix):
    from dataclasses import replace

    from aidsearch.features import READER_ABSTAIN_FEATURES
    from aidsearch.linear import LinearModel

    question = "Which programme previously received the fund's largest grant?"
    assert shipped_ix.ask(question).found
    models = shipped_ix.answer_models()

    def only_reader(bias: float) -> LinearModel:  # the reader's answer margin alone, shifted by ``bias``
        n = len(READER_ABSTAIN_FEATURES)
        return LinearModel(READER_ABSTAIN_FEATURES, np.eye(n)[-1], np.zeros(n), np.ones(n), bias)

    try:
        shipped_ix.models = replace(models, reader_abstain=only_reader(-50.0))
        refused = shipped_ix.ask(question)
        assert not refused.found and refused.confidence is not None and refused.confidence < 1e-6
        shipped_ix.models = replace(models, reader_abstain=only_reader(50.0))
        assert shipped_ix.ask(question).found
    finally:
        shipped_ix.models = models


@pytest.mark.model
def test_fitting_the_reader_abstention_on_a_small_set(shipped_ix, tmp_path):
    from aidsearch.features import READER_ABSTAIN_FEATURES
    from aidsearch.evaluate import Question
    from aidsearch.train import Source, fit_reader_abstain

    questions = [Question("g1", "Which programme previously received the fund's largest grant?", "en",
                          ("grants.txt",), ("Mwanza",)),
                 Question("g2", "Quel massif est surnommé le « château d'eau de l'Afrique de l'Ouest » ?", "fr",
                          ("fouta.txt",), ("Fouta-Djalon",)),
                 Question("u1", "How much did the fund grant to the Kampala drainage project?", "en", (), ())]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q.__dict__) + "\n" for q in questions), encoding="utf-8")
    source = Source("tiny", shipped_ix, questions, path)
    model = fit_reader_abstain([source], [source])
    assert model.features == READER_ABSTAIN_FEATURES and model.info is not None
    assert model.info["rows"] == 5 and model.info["sets"] == {"tiny": 3}  # 2 answered, 2 with the answer hidden, 1
    assert 0.0 < model.info["threshold"] < 1.0
    assert set(model.info["validation"]["tiny"]) == {"rows", "auc_abstain", "auc_with_reader"}


BRONCOS = ("The Broncos play their home games at Empower Field at Mile High in Denver. The stadium opened in 2001 "
           "and holds more than 76,000 people.")
BOTSWANA_MINES = ("Les mines de diamants de Jwaneng et d'Orapa fournissent l'essentiel des exportations. Le pays "
                  "investit ces revenus dans les écoles et les routes.")


@pytest.mark.model
def test_a_reader_trained_with_no_answer_examples_tells_the_paragraph_without_the_answer(tmp_path):
    """Each question over its own paragraph and over one of the same subject without the answer: after a short run
    the reader's answer margin is higher on its own paragraph, and it survives saving and loading."""
    folder = model_path(Settings())
    elway = QUARTERBACK.index("John Elway")
    examples = [QAExample("t", "Who held the record before?", QUARTERBACK, ("John Elway",), elway, elway + 10,
                          (BRONCOS,)),
                QAExample("t", "Quel pays est surnommé la perle de l'Afrique ?", PERLE, ("Botswana",),
                          PERLE.index("Botswana"), PERLE.index("Botswana") + 8, (BOTSWANA_MINES,))] * 4
    untrained, _, _ = train_reader(folder, examples, epochs=0, batch=4, nulls=1.0)
    nulls = null_items(untrained, examples, 1.0)
    assert len(nulls) == 8 and all(it["start"] == it["end"] == 0 for it in nulls)
    assert null_items(untrained, examples, 0.5) == null_items(untrained, examples, 0.5)  # seeded
    reader, tensors, settings = train_reader(folder, examples, epochs=3, batch=4, lr=3e-3, nulls=1.0)
    assert settings["nulls"] == 1.0 and settings["examples"] == 16 and reader.null
    assert mean_loss(reader, nulls) < 0.7 * mean_loss(untrained, nulls)  # it learnt where the answer is absent
    for ex in examples[:2]:
        own, other = reader.logits(ex.question, [ex.text, ex.others[0]])
        assert own.answer_margin() is not None and other.answer_margin() is not None
        assert own.answer_margin() > other.answer_margin(), (ex.question, own.answer_margin(), other.answer_margin())
    save_reader(tmp_path / "reader.safetensors", tensors, {"settings": settings, "data": "test"})
    loaded = load_reader(folder, tmp_path / "reader.safetensors")
    assert loaded is not None and loaded.null
    again = loaded.logits(examples[0].question, [QUARTERBACK])[0].answer_margin()
    assert again == pytest.approx(reader.logits(examples[0].question, [QUARTERBACK])[0].answer_margin(), abs=0.3)
