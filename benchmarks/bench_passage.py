"""What choosing the passage to quote with the answer reader costs at scale: ``ask`` latency on a large index with
the passage of the best learned sentence (one passage read) and with the committed passage weight (the passages
that could still win read), alternating question by question in one process.

Usage: .venv/bin/python benchmarks/bench_passage.py [--size all] [--work benchmarks/out/passage-all] [--cache DIR]
                                                   [--out docs/benchmarks/passage-latency.json]

The index is the one ``bench_scale.py`` measures at ``--size`` (real aid-project texts and the evaluation corpus),
built into ``--work`` from the scale benchmark's vector cache when it is not there yet and kept for reruns; the
questions are the distinct questions of eval/questions.jsonl and eval/heldout.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import bench_scale  # noqa: E402
from procstat import ForeignCpu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="all")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--cache", type=Path, default=bench_scale.DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "passage-latency.json")
    args = parser.parse_args()
    work = args.work or ROOT / "benchmarks" / "out" / f"passage-{args.size}"
    if not (work / "index").is_dir():
        shutil.rmtree(work, ignore_errors=True)
        texts = bench_scale.load_texts()
        size = bench_scale._sizes(args.size, len(texts))[0]
        embedder = bench_scale.CachedEmbedder(bench_scale._real_embedder(), args.cache, bench_scale._log)
        evaluation = bench_scale.evaluation_corpus(work / "evaluation")
        bench_scale.build(bench_scale.select(texts, size), work, embedder, evaluation)
    from aidsearch.api import open_index
    from aidsearch.config import load_settings
    from aidsearch.evaluate import load_questions

    questions = list(dict.fromkeys(q.query for f in bench_scale.QUESTION_FILES for q in load_questions(f)))
    ix = open_index(settings=load_settings(index_dir=work / "index", corpus_dir=work / "corpus", answerer="reader"))
    ix.ask(questions[0])
    shipped = ix.models
    configs = {"passage of the best sentence": replace(shipped, passage_weight=None), "passage weight": shipped}
    timings: dict[str, list[float]] = {name: [] for name in configs}
    with ForeignCpu() as foreign:
        for q in questions:
            for name, models in configs.items():
                ix.models = models
                t = time.perf_counter()
                ix.ask(q)
                timings[name].append((time.perf_counter() - t) * 1000)
    where = "" if args.work is None else f" --work {os.path.relpath(args.work.resolve(), ROOT)}"
    data = {"command": f"benchmarks/bench_passage.py --size {args.size}{where}",
            "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "contention": f"{foreign.share:.0%}", "passages": ix.stats().get("passages"), "questions": len(questions),
            "passage_weight": shipped.passage_weight, "margin_bound": shipped.margin_bound,
            "ask_ms": {name: {"p50": round(statistics.median(v), 1),
                              "p95": round(sorted(v)[int(0.95 * (len(v) - 1))], 1)} for name, v in timings.items()}}
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
