"""Indexing with the embedding on Ray (``aidsearch index --ray``) at 1 and 2 workers against the plain indexer, on the
same real aid-project texts, one after the other in one run: passages per second end to end, the time Ray takes to
start, and whether the vectors are the same.

Usage: .venv/bin/python benchmarks/bench_ray.py [--texts 1000] [--work benchmarks/out/ray]
                                               [--out docs/benchmarks/ray.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import bench_scale  # noqa: E402
import numpy as np  # noqa: E402
from procstat import ForeignCpu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "ray")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "ray.json")
    args = parser.parse_args()
    import ray

    from aidsearch.config import load_settings
    from aidsearch.distributed import RayEmbedder
    from aidsearch.embed import load_embedder
    from aidsearch.indexer import build_index

    shutil.rmtree(args.work, ignore_errors=True)
    corpus = args.work / "corpus"
    bench_scale.write_corpus(bench_scale.select(bench_scale.load_texts(), args.texts), corpus)
    local = load_embedder(load_settings())
    local.encode_passages(["warm-up"])
    runs, vectors = {}, {}
    contention = "?"
    for name, workers in (("plain", 0), ("ray, 1 worker", 1), ("ray, 2 workers", 2)):
        settings = load_settings(corpus_dir=corpus, index_dir=args.work / name.replace(", ", "-"))
        with ForeignCpu() as foreign:  # meaningful for the plain run only: Ray's workers are other processes
            started = time.perf_counter()
            embedder = local
            if workers:
                if not ray.is_initialized():
                    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                embedder = RayEmbedder(settings, local, workers=workers)
            ray_up = time.perf_counter() - started
            report = build_index(settings, embedder)
            seconds = time.perf_counter() - started
        if not workers:
            contention = f"{foreign.share:.0%}"
        assert report.generation is not None
        vectors[name] = report.generation.vectors().astype(np.float32)
        runs[name] = {"workers": workers, "passages": report.chunks, "texts": report.embedded_texts,
                      "seconds": round(seconds, 1), "ray_start_s": round(ray_up, 1) if workers else None,
                      "embed_s": round(report.timings["embed"], 1),
                      "passages_per_s": round(report.chunks / seconds, 2)}
    ray.shutdown()
    for name in runs:
        runs[name]["min_cosine_to_plain"] = round(float((vectors[name] * vectors["plain"]).sum(1).min()), 5)
        runs[name]["speedup"] = round(runs[name]["passages_per_s"] / runs["plain"]["passages_per_s"], 2)
    data = {"command": f"benchmarks/bench_ray.py --texts {args.texts}",
            "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "contention_plain_run": contention, "documents": args.texts, "runs": runs}
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
