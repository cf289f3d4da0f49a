"""FAISS against Milvus Lite as the search backend, on the scale benchmark's real indexes: time to fill the Milvus
collection from an index, search / filtered search / ask latency, memory, disk and a one-document update. Milvus
Lite runs twice: with keyword search in Milvus (its BM25 full-text search, the default where the server has it) and
with the index's BM25.

Usage: .venv/bin/python benchmarks/bench_backends.py [--sizes 10000,all,100000] [--work benchmarks/out] [--cache DIR]
                                                    [--out docs/benchmarks/backends.json]

Each size's index is the one ``bench_scale.py`` measures (real aid-project texts and the evaluation corpus), built
into ``WORK/backends-SIZE`` from the scale benchmark's vector cache when missing (``--work`` holding ``all/index``
reuses it). Each backend runs in its own process on its own copy of the index, one after the other in one run, with
the same distinct questions of eval/questions.jsonl and eval/heldout.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import bench_scale  # noqa: E402
from procstat import ForeignCpu, status_mib  # noqa: E402

BACKENDS = {"faiss": {"index_backend": "faiss"},  # name: settings
            "milvus": {"index_backend": "milvus", "milvus_full_text": "on"},
            "milvus, index BM25": {"index_backend": "milvus", "milvus_full_text": "off"}}
FILTER = {"lang": "fr"}


def _size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.exists() else 0.0


def _p(values: list[float], q: float) -> float:
    return round(sorted(values)[int(q * (len(values) - 1))], 1)


def measure(backend: str, index: Path, corpus: Path, milvus: Path) -> dict[str, Any]:
    """Runs in a fresh process on its own copy of the index."""
    from aidsearch.api import open_index
    from aidsearch.config import load_settings

    settings = load_settings(index_dir=index, corpus_dir=corpus, milvus_uri=str(milvus), **BACKENDS[backend])
    t = time.perf_counter()
    ix = open_index(settings=settings)
    out: dict[str, Any] = {"open_s": round(time.perf_counter() - t, 2)}  # with Milvus: fills the collection
    t = time.perf_counter()
    ix.update()  # the index caught up with its corpus folder; with Milvus, written again without a FAISS index
    out["first_update_s"] = round(time.perf_counter() - t, 2)
    questions = bench_scale.load_questions()
    ix.ask(questions[0])
    out["rss_loaded_mib"] = round(status_mib("VmRSS"))
    search, filtered, ask = [], [], []
    for q in questions:
        for into, call, options in ((search, ix.search, {"k": 10}), (filtered, ix.search, {"k": 10, "filters": FILTER}),
                                    (ask, ix.ask, {})):
            t = time.perf_counter()
            call(q, **options)
            into.append((time.perf_counter() - t) * 1000)
    out.update({"questions": len(questions), "passages": ix.stats()["passages"],
                "search_ms": {"p50": round(statistics.median(search), 1), "p95": _p(search, 0.95)},
                "filtered_ms": {"p50": round(statistics.median(filtered), 1), "p95": _p(filtered, 0.95)},
                "ask_ms": {"p50": round(statistics.median(ask), 1), "p95": _p(ask, 0.95)},
                "top10": [[h.chunk.id for h in ix.search(q, k=10).hits] for q in questions[:50]],
                "peak_mib": round(status_mib("VmHWM")),
                "disk_mib": round(_size_mib(index) + _size_mib(milvus), 1)})
    text = bench_scale.update_text(bench_scale.load_texts())
    bench_scale.write_corpus([{**text, "id": f"{text['id']}@{backend}", "text": f"{text['text']} ({backend})"}],
                             corpus)
    t = time.perf_counter()
    report = ix.update()
    out["update_s"] = round(time.perf_counter() - t, 2)
    assert len(report.added) == 1, report
    out["peak_with_update_mib"] = round(status_mib("VmHWM"))
    return out


def _index_for(size: str, work: Path, cache: Path) -> Path:
    folder = work / size if size == "all" and (work / size / "index").is_dir() else work / f"backends-{size}"
    if not (folder / "index").is_dir():
        shutil.rmtree(folder, ignore_errors=True)
        texts = bench_scale.load_texts()
        count = bench_scale._sizes(size, len(texts))[0]
        embedder = bench_scale.CachedEmbedder(bench_scale._real_embedder(), cache, bench_scale._log)
        evaluation = bench_scale.evaluation_corpus(work / "evaluation")
        bench_scale.build(bench_scale.select(texts, count), folder, embedder, evaluation)
    return folder


def _run(backend: str, folder: Path, scratch: Path) -> dict[str, Any]:
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(folder / "index", scratch / "index")
    shutil.copytree(folder / "corpus", scratch / "corpus", symlinks=True)
    cmd = [sys.executable, __file__, "--measure", backend, "--index", str(scratch / "index"), "--corpus",
           str(scratch / "corpus"), "--milvus", str(scratch / "milvus.db")]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **bench_scale.ENV})
    if done.returncode:
        raise SystemExit(f"error: {backend} run failed: {done.stderr.strip().splitlines()[-1:]}")
    shutil.rmtree(scratch, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,all,100000")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--cache", type=Path, default=bench_scale.DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "backends.json")
    parser.add_argument("--measure", choices=list(BACKENDS), help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--milvus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.index, args.corpus, args.milvus)))
        return
    rows = []
    with ForeignCpu() as foreign:
        for size in args.sizes.split(","):
            folder = _index_for(size, args.work, args.cache)
            row: dict[str, Any] = {"size": size}
            for n, backend in enumerate(BACKENDS):
                bench_scale._log(f"{size}: {backend}")
                row[backend] = _run(backend, folder, args.work / f"backends-scratch-{n}")
            reference = row["faiss"]["top10"]
            for backend in BACKENDS:
                same = [a == b for a, b in zip(reference, row[backend]["top10"])]
                row[backend]["same_top10"] = round(sum(same) / len(same), 3)
            for backend in BACKENDS:
                row[backend].pop("top10")
            rows.append(row)
    data = {"command": f"benchmarks/bench_backends.py --sizes {args.sizes}",
            "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "contention": f"{foreign.share:.0%}", "filter": FILTER, "rows": rows}
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
