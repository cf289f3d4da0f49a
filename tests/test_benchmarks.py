"""The scale benchmark in its quick form, and the benchmarks hub written from the committed results."""
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
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["rows"]
    assert [r["passages"] for r in rows] == [100, 400]
    base = result["base"]
    assert base["documents"] >= 20 and base["texts"] > base["passages"] > 0
    for row in rows:
        assert 0 < row["search_p50_ms"] <= row["search_p95_ms"] and 0 < row["ask_p50_ms"] <= row["ask_p95_ms"]
        assert row["peak_mib"] >= row["rss_loaded_mib"] > 100 and row["disk_mib"] > 0
        assert row["faiss"] == "flat" and row["calls"] == 10
    assert rows[1]["disk_mib"] > rows[0]["disk_mib"]
    text = out.read_text(encoding="utf-8")
    assert "| 100 | flat |" in text and "| 400 | flat |" in text
    assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.unit
def test_hub_is_written_from_the_committed_results(tmp_path: Path) -> None:
    docs = ROOT / "docs"
    committed = (docs / "BENCHMARKS.md").read_text(encoding="utf-8").splitlines()
    rendered = report.render(docs).splitlines()
    assert len(committed) == len(rendered)
    differ = [(a, b) for a, b in zip(committed, rendered) if a != b]
    assert all(a.startswith("Written by `make bench`") for a, _ in differ), differ[:2]


@pytest.mark.unit
def test_hub_checks_the_scale_goals(tmp_path: Path) -> None:
    rows = [{"passages": n, "search_p50_ms": s, "ask_p50_ms": a, "peak_mib": m, "disk_mib": 1.0, "first_answer_s": 1.0}
            for n, s, a, m in ((1000, 20.0, 30.0, 1200.0), (100_000, 60.0, 90.0, 1900.0))]
    lines = report._scale({"rows": rows, "base": {"texts_per_s": 30.0, "passages_per_s": 5.0}})
    goals = lines[-1]
    assert goals.startswith("Goals at 100,000 passages")
    assert "search p50 60 ms (goal ≤ 50): NOT met" in goals and "ask p50 90 ms (goal ≤ 150): met" in goals
    assert "peak memory 1900 MiB (goal ≤ 2048): met" in goals


@pytest.mark.unit
@pytest.mark.parametrize("name", ["model", "quality", "scale"])
def test_each_report_is_rendered_from_its_committed_results(name: str) -> None:
    import importlib

    module = importlib.import_module(f"bench_{name}")
    docs = ROOT / "docs" / "benchmarks"
    data = json.loads((docs / f"{name}.json").read_text(encoding="utf-8"))
    rendered = module.render(data, "scale.png") if name == "scale" else module.render(data)
    assert rendered == (docs / f"{name}.md").read_text(encoding="utf-8")
