"""The scale and indexing benchmarks in their quick form, and the benchmarks hub written from the committed results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402


@pytest.mark.slow
def test_quick_scale_benchmark_measures_each_size(tmp_path: Path) -> None:
    out = tmp_path / "scale.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--quick", "--out", str(out),
                           "--cache", str(tmp_path / "cache")], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["rows"]
    assert [r["texts"] for r in rows] == [200, 500]
    rate = result["rate"]
    assert rate["documents"] == 200 and rate["texts"] > rate["passages"] >= 200 and rate["passages_per_s"] > 0
    assert result["embedded_this_run"] > 0 and result["fill"]["texts"] == result["embedded_this_run"]
    for row in rows:
        assert row["documents"] == row["texts"] + 5  # and the seed pages of the evaluation corpus
        assert row["questions"] == 12 and 0 < row["answered"] <= 12
        assert 0 < row["search_p50_ms"] <= row["search_p95_ms"] and 0 < row["ask_p50_ms"] <= row["ask_p95_ms"]
        assert set(row["filtered_p50_ms"]) == {"lang=fr", "lang=en"}
        assert row["faiss"] == "flat" and row["hnsw_recall_at_10"] == 1.0
        assert row["update_added"] == 1 and row["update_s"] > 0
        assert row["peak_with_update_mib"] >= row["peak_mib"] >= row["rss_loaded_mib"] > 100 and row["disk_mib"] > 0
        assert all(row[key]["errors"] == 0 and row[key]["answered"] > 0 for key in ("load", "load_one_at_a_time"))
        assert row["cli_cold_s"] > row["cli_server_s"] > 0 and row["cli_server_p95_s"] >= row["cli_server_s"]
        assert row["cli_server_runs"] == 3  # distinct questions, one command each
    assert rows[1]["passages"] > rows[0]["passages"] and rows[1]["disk_mib"] > rows[0]["disk_mib"]
    text = out.read_text(encoding="utf-8")
    assert text.count("\n| 200 |") == 2 and text.count("\n| 500 |") == 2
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--quick", "--fill",
                            "--cache", str(tmp_path / "cache")], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert again.returncode == 0 and "embedded" not in again.stderr  # every vector comes from the cache


@pytest.mark.slow
def test_quick_indexing_benchmark_compares_the_earlier_code_with_the_same_vectors(tmp_path: Path) -> None:
    out = tmp_path / "indexing.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_indexing.py"), "--quick", "--repeats", "1",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert set(result["speed"]) == {"short texts", "long reports"}
    for name, row in result["speed"].items():
        earlier, current = row["earlier"], row["current"]
        assert earlier["passages"] > 0 and current["passages"] > 0
        assert current["passages_per_s"] > 0 and row["speedup"] == current["passages_per_s"] / earlier["passages_per_s"]
        if name == "short texts" or row["min_cosine"] is not None:  # the PDF reports are read apart since then
            assert earlier["passages"] == current["passages"] and earlier["texts"] == current["texts"]
            assert row["min_cosine"] > 0.999
        pooled = row["pooled"]
        assert pooled["passages"] == current["passages"] and pooled["texts"] == current["texts"]
        assert row["pooled_speedup"] == pooled["passages_per_s"] / earlier["passages_per_s"] > 0
    assert result["speed"]["short texts"]["current"]["documents"] == 100
    assert "| short texts | 100 |" in out.read_text(encoding="utf-8")


@pytest.mark.slow
def test_update_benchmark_times_both_revisions_on_the_same_index(tmp_path: Path) -> None:
    out = tmp_path / "update.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_update.py"), "--size", "300",
                           "--repeats", "1", "--updates", "2", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    build, update = result["build"], result["update"]
    assert build["documents"] > 300 and build["passages"] > build["documents"]
    for label in ("earlier", "current"):
        row = update[label]
        assert len(row["all_seconds"]) == 2 and 0 < row["write"] < row["seconds"]
        assert row["passages"] > build["passages"]  # each update added a passage or more
        assert row["peak_mib"] >= row["loaded_peak_mib"] > 100
    assert update["speedup"] == update["earlier"]["seconds"] / update["current"]["seconds"]
    assert f"{build['passages']:,} passages" in out.read_text(encoding="utf-8")


@pytest.mark.slow
def test_build_benchmark_builds_the_same_index_three_ways(tmp_path: Path) -> None:
    out = tmp_path / "build.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_build.py"), "--size", "150",
                           "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())["builds"]
    earlier, alone, current = result["earlier"], result["current, read in this process"], result["current"]
    assert earlier["read_workers"] == alone["read_workers"] == 1 and current["read_workers"] >= 1
    assert earlier["passages"] == alone["passages"] == current["passages"] > earlier["documents"] > 150
    for row in (earlier, alone, current):
        assert 0 < row["write"] < row["seconds"] and 0 < row["read"] < row["seconds"] and len(row["all_seconds"]) == 1
    assert result["speedup"] == earlier["seconds"] / current["seconds"]
    assert result["read_speedup"] == alone["read"] / current["read"]
    assert f"{current['passages']:,} passages" in out.read_text(encoding="utf-8")


@pytest.mark.slow
def test_memory_benchmark_serves_and_updates_with_both_revisions(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_update

    source = tmp_path / "query-300"
    bench_update.build(source, 300)
    before = sorted(p.name for p in (source / "corpus" / "devaid-large").iterdir())
    out = tmp_path / "memory.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_memory.py"), "--size", "300",
                           "--source", str(source), "--repeats", "1", "--questions", "3", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    for label in ("earlier", "current"):
        row = result["result"][label]
        assert row["added"] == [1] and row["passages"] > result["passages"]  # the new document was indexed
        assert row["peak_with_update_mib"] >= row["peak_answering_mib"] >= row["rss_first_answer_mib"] > 500
    assert sorted(p.name for p in (source / "corpus" / "devaid-large").iterdir()) == before  # copies were changed
    assert f"{result['passages']:,} passages" in out.read_text(encoding="utf-8")


@pytest.mark.slow
def test_query_benchmark_times_both_runtimes_on_one_index(tmp_path: Path, embedder) -> None:
    from browser_helpers import open_engine

    engine = open_engine(tmp_path / "demo", embedder)
    out = tmp_path / "query.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_query.py"),
                           "--index", f"demo={engine.settings.index_dir}", "--questions", "12", "--repeats", "2",
                           "--users", "3", "--seconds", "3", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["questions"] == 12 and [r["label"] for r in result["indexes"]] == ["demo"]
    row = result["indexes"][0]["result"]
    assert row["questions"] == 12 and row["same_first_passage"] >= 11 / 12  # the same vectors up to rounding
    for runtime in ("torch", "onnx"):
        figures = row[runtime]
        assert 0 < figures["embed_p50_ms"] < figures["ask_p50_ms"]
        assert figures["search_p50_ms"] <= figures["search_p95_ms"] and figures["rss_loaded_mib"] > 100
    for runtime in ("torch", "onnx"):
        load = row[runtime]["load"]
        assert len(load["runs"]) == 2 and load["errors"] == 0 and load["answered"] >= 3 and load["p50_s"] > 0
    text = out.read_text(encoding="utf-8")
    assert f"| demo | {result['indexes'][0]['passages']:,} | onnx |" in text and "3 users on loopback" in text


@pytest.mark.slow
def test_cli_benchmark_times_both_revisions_against_one_server(tmp_path: Path, embedder) -> None:
    from browser_helpers import open_engine

    engine = open_engine(tmp_path / "demo", embedder)
    out = tmp_path / "cli.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cli.py"), "--questions", "3",
                           "--index", str(engine.settings.index_dir), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["questions"] == 3 and result["result"]["server"]["ask"]["runs"] == 3
    labels = list(result["result"]["cli"])
    assert labels[-1] == "current" and (labels == ["earlier", "current"]) != ("baseline_missing" in result)
    for label in labels:
        figures = result["result"]["cli"][label]
        assert figures["ask"]["runs"] == figures["search"]["runs"] == 3 and figures["help"]["runs"] == 10
        assert 0 < figures["help"]["p50_s"] and figures["ask"]["p50_s"] <= figures["ask"]["p95_s"]
    assert f"{result['passages']:,} passages" in out.read_text(encoding="utf-8")


@pytest.mark.unit
def test_scale_texts_windows_and_vector_cache(tmp_path: Path) -> None:
    import numpy as np

    import bench_scale
    from aidsearch.embed import HashEmbedder

    texts = [{"id": f"t{i}", "source": "s", "title": f"T{i}", "text": " ".join(f"w{i}x{j}" for j in range(120 + i)),
              "country": None, "org": None} for i in range(3)]
    assert bench_scale.select(texts, 2) == bench_scale.select(texts, 2) and len(bench_scale.select(texts, 2)) == 2
    grown = bench_scale.select(texts, 7)
    assert grown[:3] == texts and len(grown) == 7 and len({t["text"] for t in grown}) == 7
    assert all(len(t["text"].split()) == bench_scale.WINDOW for t in grown[3:])

    class Counting(HashEmbedder):
        calls = 0

        def encode_passages(self, batch, progress=None):
            Counting.calls += len(batch)
            return super().encode_passages(batch, progress)

    inner = Counting()
    first = bench_scale.CachedEmbedder(inner, tmp_path)
    want = inner.encode_passages(["a b", "c d", "a b"])
    Counting.calls = 0
    assert np.allclose(first.encode_passages(["a b", "c d", "a b"]), want) and Counting.calls == 2
    reopened = bench_scale.CachedEmbedder(inner, tmp_path)
    assert np.allclose(reopened.encode_passages(["c d", "a b"]), want[[1, 0]]) and Counting.calls == 2
    assert reopened.fill_stats()["texts"] == 2


@pytest.mark.unit
def test_hub_is_written_from_the_committed_results(tmp_path: Path) -> None:
    docs = ROOT / "docs"
    committed = (docs / "BENCHMARKS.md").read_text(encoding="utf-8").splitlines()
    rendered = report.render(docs).splitlines()
    assert len(committed) == len(rendered)
    differ = [(a, b) for a, b in zip(committed, rendered) if a != b]
    assert all(a.startswith("Written by `make bench`") for a, _ in differ), differ[:2]


@pytest.mark.unit
def test_scale_goals_are_checked_at_the_largest_size() -> None:
    import bench_scale

    row = {"search_p50_ms": 41.0, "ask_p50_ms": 90.0, "filtered_p50_ms": {"lang=fr": 20.0, "lang=en": 61.0},
           "hnsw_recall_at_10": 0.98, "faiss": "hnsw", "peak_with_update_mib": 1900.0, "update_s": 6.0,
           "load": {"p50_s": 0.5, "errors": 2}, "cli_server_s": 0.4}
    text = "; ".join(bench_scale.goals(row))
    assert "search p50 41 ms (goal ≤ 40 ms): NOT met" in text and "ask p50 90 ms (goal ≤ 150 ms): met" in text
    assert "filtered search p50 61 ms (goal ≤ 60 ms): NOT met" in text
    assert "recall@10 of FAISS (hnsw) 0.980 (goal ≥ 0.970): met" in text
    assert "one-document update 6.0 s (goal ≤ 5.0 s): NOT met" in text and "2 errors (goal 0): NOT met" in text
    assert "peak memory 1900 MiB (goal ≤ 2048 MiB): met" in text


@pytest.mark.unit
def test_answers_benchmark_reads_the_learned_models_of_a_revision() -> None:
    import bench_answers
    import numpy as np
    from aidsearch.learned import MODELS, load_model

    from aidsearch import reader

    models = bench_answers.learned_models("HEAD")
    assert (models["reader_weight"], models["passage_weight"], models["margin_bound"]) == \
        (reader.shipped_weight(), reader.shipped_passage_weight(), reader.shipped_margin_bound())
    rng = np.random.default_rng(0)
    for name in ("fusion", "sentence", "abstain", "span"):
        model = models[name]
        assert model.features == tuple(MODELS[name][0])
        x = rng.normal(size=(4, len(model.features)))
        assert np.allclose(model.scores(x), load_model(name).scores(x))
    with pytest.raises(subprocess.CalledProcessError):
        bench_answers.learned_models("no-such-revision")


@pytest.mark.unit
@pytest.mark.parametrize("name", ["model", "quality", "scale", "indexing", "cli", "reading", "answers", "query"])
def test_each_report_is_rendered_from_its_committed_results(name: str) -> None:
    import importlib

    module = importlib.import_module(f"bench_{name}")
    docs = ROOT / "docs" / "benchmarks"
    data = json.loads((docs / f"{name}.json").read_text(encoding="utf-8"))
    rendered = module.render(data)
    assert rendered == (docs / f"{name}.md").read_text(encoding="utf-8")


@pytest.mark.unit
def test_reading_benchmark_scores_by_direction_and_kind_of_document(tmp_path: Path) -> None:
    import bench_reading

    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps({"id": i, "doc": d}) for i, d in
                                   (("a", "report"), ("b", "record"), ("c", "none"), ("d", "report"))) + "\n")
    rows = [{"id": "a", "direction": "EN→FR", "relevant": ["r.pdf"], "recall@1": 1.0, "cited_first": True,
             "correct": True, "found": True},
            {"id": "b", "direction": "EN→EN", "relevant": ["x.txt"], "recall@1": 0.0, "cited_first": False,
             "correct": False, "found": False},
            {"id": "c", "direction": "EN→none", "relevant": [], "recall@1": 0.0, "cited_first": None,
             "correct": False, "found": False},
            {"id": "d", "direction": "EN→FR", "relevant": ["r.pdf"], "recall@1": 1.0, "cited_first": False,
             "correct": False, "found": True}]
    g = bench_reading.groups(rows, questions)
    assert g["overall"]["answerable"] == 3 and g["overall"]["accuracy"] == pytest.approx(1 / 3)
    assert g["overall"]["no_answer_precision"] == 0.5 and g["overall"]["no_answer_recall"] == 1.0
    assert g["report documents"] == {**g["EN→FR"], "questions": 2}
    assert g["EN→FR"]["recall_1"] == 1.0 and g["EN→FR"]["cited_first"] == 0.5
    assert g["none documents"]["answerable"] == 0 and g["none documents"]["accuracy"] is None
