"""Building an index from scratch, everything but embedding: the current code against an earlier revision, and the
current code reading the files in this process only (``read_workers`` 1), side by side in one run.

Usage: .venv/bin/python benchmarks/bench_build.py [--size 10000] [--baseline REV] [--repeats 3]
                                                 [--out docs/benchmarks/build.md]

- Corpus: the scale benchmark's documents at ``--size`` texts (data/devaid-large) and the evaluation corpus (aid
  records, the five seed pages, four multi-page PDF reports), as ``benchmarks/bench_scale.py`` writes them.
- Vectors: random unit vectors drawn from a hash of each text (as in ``bench_update.py``): the figures are walking
  and reading the corpus, chunking with the bundled model's real tokens (by the processes that read, in the current
  code), and writing the index.
- Each repeat builds a new index with each configuration, each in its own process, the first going first in turn;
  medians. The builds' documents (paths and text hashes) and passages are checked to be the same.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_scale  # noqa: E402

BASELINE = "72788a2"  # the code before files were read by worker processes
CONFIGS = ("earlier", "current, read in this process", "current")


def worker(src: str, corpus: str, index: str) -> None:
    """With the aidsearch package in ``src``: build ``index`` from ``corpus``; print seconds, the report's timings
    and a fingerprint of what the index holds as JSON."""
    sys.path.insert(0, src)
    from bench_update import random_embedder

    from aidsearch.config import load_settings
    from aidsearch.indexer import build_index
    from aidsearch.store import IndexStore

    settings = load_settings(corpus_dir=corpus, index_dir=index)
    embedder = random_embedder()
    embedder.count_tokens(["warm-up"])
    t0 = time.perf_counter()
    report = build_index(settings, embedder)
    seconds = time.perf_counter() - t0
    documents = IndexStore(Path(index)).read_manifest()["documents"]
    held = hashlib.blake2b(json.dumps(sorted((s, e["id"]) for s, e in documents.items())).encode(),
                           digest_size=8).hexdigest()
    print(json.dumps({"seconds": seconds, **report.timings, "documents": report.documents,
                      "passages": report.chunks, "skipped": len(report.skipped), "held": held,
                      "read_workers": getattr(settings, "read_workers", 1)}))


def compare(work: Path, baseline: str, repeats: int) -> dict[str, Any]:
    from procstat import revision_src

    old_src = revision_src(ROOT, baseline, work / "baseline")
    env = {**os.environ, **bench_scale.ENV}
    setups = {"earlier": (old_src, env), "current": (ROOT / "src", env),
              "current, read in this process": (ROOT / "src", {**env, "AIDSEARCH_READ_WORKERS": "1"})}
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in CONFIGS}
    for r in range(repeats):
        order = list(CONFIGS[r % 3:] + CONFIGS[:r % 3])  # each goes first in turn
        for label in order:
            src, run_env = setups[label]
            index = work / f"index-{label.replace(' ', '-').replace(',', '')}"
            shutil.rmtree(index, ignore_errors=True)
            out = subprocess.run([sys.executable, __file__, "--worker", str(src), str(work / "corpus"), str(index)],
                                 check=True, capture_output=True, text=True, env=run_env)
            runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{label}: {runs[label][-1]}", file=sys.stderr, flush=True)
    held = {x["held"] for rows in runs.values() for x in rows}
    passages = {x["passages"] for rows in runs.values() for x in rows}
    if len(held) != 1 or len(passages) != 1:
        raise SystemExit(f"error: the builds differ: documents {sorted(held)}, passages {sorted(passages)}")
    result: dict[str, Any] = {}
    for label, rows in runs.items():
        row = {key: statistics.median(x[key] for x in rows) for key in ("seconds", "write")}
        row["read"] = statistics.median(x["seconds"] - x["embed"] - x["write"] for x in rows)
        row.update(all_seconds=[x["seconds"] for x in rows], read_workers=rows[0]["read_workers"],
                   documents=rows[0]["documents"], passages=rows[0]["passages"], skipped=rows[0]["skipped"])
        result[label] = row
    result["speedup"] = result["earlier"]["seconds"] / result["current"]["seconds"]
    result["read_speedup"] = result["current, read in this process"]["read"] / result["current"]["read"]
    return result


def render(data: dict[str, Any]) -> str:
    r = data["builds"]
    c = r["current"]
    return "\n".join([
        "# Building an index from scratch, everything but embedding", "",
        f"Generated by `{data['command']}` on {data['date']}; {data['machine']}; CPU used by other processes during "
        f"the run: {data['contention']:.0%}.", "",
        f"Corpus: {data['size']:,} devaid-large texts of the scale benchmark and its evaluation corpus, "
        f"{c['documents']:,} documents indexed, {c['passages']:,} passages ({c['skipped']:,} files not indexed, the "
        "same in every build). Vectors are random (drawn from a hash of each text): the figures are walking and "
        "reading the files, chunking them (the bundled model's tokens) and writing the index. Each configuration "
        f"builds {data['repeats']} times, each in its own process, each going first in turn; medians.", "",
        "| code | processes reading | build (s) | walking, reading and chunking (s) | writing (s) | all builds (s) |",
        "|---|---:|---:|---:|---:|---|",
        *(f"| {label if label != 'earlier' else 'earlier (`' + data['baseline'] + '`)'} | {row['read_workers']} | "
          f"{row['seconds']:.1f} | {row['read']:.1f} | {row['write']:.1f} | "
          f"{', '.join(f'{s:.1f}' for s in row['all_seconds'])} |"
          for label, row in ((label, r[label]) for label in CONFIGS)),
        "", f"The current code builds {r['speedup']:.2f}× as fast as the earlier; reading with "
        f"{c['read_workers']} worker processes (which chunk what they read) reads and chunks "
        f"{r['read_speedup']:.2f}× as fast as the indexing process alone.", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=3, metavar=("SRC", "CORPUS", "INDEX"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "build.md")
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    from bench_update import scale_corpus
    from procstat import ForeignCpu, run_header, save_report

    os.environ.update(bench_scale.ENV)
    with tempfile.TemporaryDirectory(prefix="aidsearch-build-") as tmp, ForeignCpu() as foreign:
        work = Path(tmp)
        data: dict[str, Any] = {**run_header("benchmarks/bench_build.py", argv), "size": args.size,
                                "baseline": args.baseline, "repeats": args.repeats}
        scale_corpus(work, args.size)
        data["builds"] = compare(work, args.baseline, args.repeats)
    data["contention"] = foreign.share
    save_report(args.out, data, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
