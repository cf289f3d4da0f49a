"""Micro-batching: concurrent calls share model passes, each gets its own result, errors reach every caller."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from aidsearch.batching import MicroBatcher


class Gate:
    """A batch function that holds its first pass until released, so that other calls pile up meanwhile."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.release, self.entered = threading.Event(), threading.Event()
        self.batches: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [i.upper() for i in items]


def _pile_up(batcher: MicroBatcher, gate: Gate, items: list[str]) -> list:
    """Call ``items[0]`` first; once its pass holds the model, call the rest and release it when all wait."""
    with ThreadPoolExecutor(len(items)) as pool:
        first = pool.submit(batcher, items[0])
        assert gate.entered.wait(10)
        rest = [pool.submit(batcher, i) for i in items[1:]]
        deadline = time.monotonic() + 10
        while len(batcher._queue) < len(items) - 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        gate.release.set()
        return [f.exception(timeout=10) or f.result() for f in [first, *rest]]


@pytest.mark.unit
def test_a_lone_call_runs_at_once():
    batcher = MicroBatcher(lambda items: [i * 2 for i in items])
    assert batcher(21) == 42 and batcher(1) == 2
    assert (batcher.passes, batcher.items) == (2, 2)


@pytest.mark.unit
@pytest.mark.parametrize("max_batch, sizes", [(16, [1, 9]), (4, [1, 4, 4, 1]), (1, [1] * 10)])
def test_calls_made_while_a_pass_runs_share_the_next_ones_up_to_max_batch(max_batch, sizes):
    gate = Gate()
    batcher = MicroBatcher(gate, max_batch=max_batch)
    items = [f"q{i}" for i in range(10)]
    assert _pile_up(batcher, gate, items) == [i.upper() for i in items]
    assert gate.batches[0] == ["q0"] and [len(b) for b in gate.batches] == sizes
    assert sorted(i for b in gate.batches for i in b) == sorted(items)
    assert (batcher.passes, batcher.items) == (len(sizes), 10)


@pytest.mark.unit
def test_an_error_reaches_every_call_of_its_pass_and_the_next_pass_works():
    gate = Gate(fail_on="q3")
    batcher = MicroBatcher(gate, max_batch=16)
    out = _pile_up(batcher, gate, [f"q{i}" for i in range(6)])
    assert out[0] == "Q0"
    assert all(isinstance(e, ValueError) and str(e) == "bad item q3" for e in out[1:])
    assert batcher("ok") == "OK"
    with pytest.raises(ValueError):
        MicroBatcher(gate, max_batch=0)


@pytest.mark.unit
def test_many_threads_each_get_their_own_result():
    threads = set()

    def slow_double(items: list[int]) -> list[int]:
        threads.add(threading.get_ident())
        time.sleep(0.002)
        return [i * 2 for i in items]

    batcher = MicroBatcher(slow_double, max_batch=8)
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(batcher, range(400)))
    assert results == [i * 2 for i in range(400)]
    assert batcher.items == 400 and batcher.passes < 400
    assert len(threads) == 1 and threading.get_ident() not in threads  # every pass in the one worker thread


@pytest.mark.model
def test_concurrent_queries_get_the_vectors_they_get_alone(settings, embedder):
    from aidsearch.embed import load_embedder

    questions = ["Quel est le budget total du projet au Kosovo ?", "Who funds the health project in Cambodia?",
                 "LAO/027", "projets d'eau potable au Burundi financés par l'Union européenne", "budget"]
    alone = np.stack([embedder.encode_queries([q])[0] for q in questions])
    library = load_embedder(settings.with_overrides(query_runtime="torch")).model.encode(
        questions, prompt_name="query", normalize_embeddings=True)
    assert np.allclose(alone, library, atol=1e-5)
    assert np.allclose(embedder.encode_queries(questions), library, atol=1e-5)
    passes = embedder._one_query.passes
    with ThreadPoolExecutor(len(questions) * 4) as pool:
        together = list(pool.map(lambda q: embedder.encode_queries([q])[0], questions * 4))
    assert np.allclose(np.stack(together), np.tile(alone, (4, 1)), atol=1e-5)
    assert embedder._one_query.passes - passes <= len(questions) * 4


@pytest.mark.model
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_concurrent_reader_calls_score_as_they_do_alone(embedder, runtime, tmp_path):
    from aidsearch.config import Settings
    from aidsearch.embed import model_path
    from aidsearch.reader import load_reader

    reader = load_reader(model_path(Settings()), onnx_dir=tmp_path if runtime == "onnx" else None)
    assert reader is not None and (reader.session is not None) == (runtime == "onnx")
    cases = [("Who funds the project?", "The project is funded by the European Union with 2 million euros."),
             ("Combien coûte le programme ?", "Le programme coûte 29 110 000 EUR et dure cinq ans au Kosovo."),
             ("Where is the hospital?", "A new hospital opened in Gjilan in 2019. " * 30)]
    alone = [reader.logits(q, [t])[0] for q, t in cases]
    gate_calls = []
    original = reader._forward.fn

    def counted(calls):
        gate_calls.append(len(calls))
        time.sleep(0.05)  # keep the model busy so that the other calls pile up
        return original(calls)

    reader._forward.fn = counted
    with ThreadPoolExecutor(len(cases) * 3) as pool:
        together = list(pool.map(lambda c: reader.logits(c[0], [c[1]])[0], cases * 3))
    assert max(gate_calls) > 1
    for got, want in zip(together, alone * 3):
        assert np.array_equal(got.offsets, want.offsets)
        assert np.allclose(got.starts, want.starts, atol=1e-4) and np.allclose(got.ends, want.ends, atol=1e-4)


@pytest.mark.unit
def test_micro_batch_setting_is_checked(monkeypatch):
    from aidsearch.config import load_settings
    from aidsearch.errors import ConfigError

    assert load_settings().micro_batch == 16 and load_settings(micro_batch="1").micro_batch == 1
    for bad in ("0", "-2", "many", "2.5"):
        monkeypatch.setenv("AIDSEARCH_MICRO_BATCH", bad)
        with pytest.raises(ConfigError, match=f"setting micro_batch must be a whole number of at least 1, got '{bad}'"):
            load_settings()


@pytest.mark.unit
@pytest.mark.parametrize("name, least, bad", [("batch_tokens", 0, ("-1", "lots", "1.5")),
                                              ("batch_size", 1, ("0", "-3", "x"))])
def test_indexing_batch_settings_are_checked(monkeypatch, name, least, bad):
    from aidsearch.config import load_settings
    from aidsearch.errors import ConfigError

    assert getattr(load_settings(**{name: str(least)}), name) == least
    for value in bad:
        monkeypatch.setenv(f"AIDSEARCH_{name.upper()}", value)
        message = f"setting {name} must be a whole number of at least {least}, got '{value}'"
        with pytest.raises(ConfigError, match=message):
            load_settings()
