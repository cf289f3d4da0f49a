"""One-document updates of a large index, the current code against an earlier revision, side by side in one run.

Usage: .venv/bin/python benchmarks/bench_update.py [--size 100000] [--baseline REV] [--repeats 3]
                                                  [--out docs/benchmarks/update.md]

- Corpus: the scale benchmark's documents at ``--size`` texts (data/devaid-large, with its overlapping windows above
  59,326 texts) and the evaluation corpus, as ``benchmarks/bench_scale.py`` writes them.
- Vectors: random unit vectors drawn from a hash of each text, so that building the index takes minutes instead of
  hours and an update embeds nothing: the figures are the cost of everything but embedding (walking the corpus,
  reading what changed, writing the new generation). Chunking counts the bundled model's real tokens.
- Each repeat runs the earlier revision (its ``src`` taken from git) and the current code, each in its own process
  holding the loaded index as a server does (each revision on its own copy of the index built once), alternating
  which goes first; each process adds one new document and updates once untimed (a revision writes what it records
  about the corpus), then adds and updates ``--updates`` times, timed. Figures are medians; peak memory is that of
  the updating process (index and model loaded).
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
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_scale  # noqa: E402

BASELINE = "2675c3e"  # the code before unchanged skipped files were remembered


class HashVectors:
    """The bundled model's tokenizer and dimension, with a random unit vector per text (seeded by its hash)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.info = inner, inner.info

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_passages(texts)

    def encode_passages(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        out = np.empty((len(texts), self.info.dimension), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.info.dimension)
            out[i] = v / np.linalg.norm(v)
        if progress and len(texts):
            progress(len(texts))
        return out


def random_embedder() -> HashVectors:
    """``HashVectors`` over the bundled model (its tokenizer and dimension)."""
    from aidsearch.config import load_settings
    from aidsearch.embed import load_embedder

    return HashVectors(load_embedder(load_settings()))


def _new_document(corpus: Path, text: dict[str, Any], label: str, n: int) -> None:
    """``text`` (a window no index holds) made unique, written as a new document of ``corpus``."""
    stamp = f"{label}-{n}-{time.time_ns()}"
    bench_scale.write_corpus([{**text, "id": f"{text['id']}@{stamp}", "text": f"{text['text']} ({stamp})"}], corpus)


def worker(src: str, label: str, corpus: str, index: str, updates: int) -> None:
    """With the aidsearch package in ``src``: load the index, update once untimed, then ``updates`` times, timed;
    print the seconds and the report's timings as JSON."""
    sys.path.insert(0, src)
    from aidsearch.config import load_settings
    from aidsearch.indexer import build_index
    from aidsearch.store import IndexStore

    settings = load_settings(corpus_dir=corpus, index_dir=index)
    embedder = random_embedder()
    from procstat import status_mib

    gen = IndexStore(Path(index)).load()
    text = bench_scale.update_text(bench_scale.load_texts())
    loaded = status_mib("VmHWM")
    runs = []
    for n in range(updates + 1):
        _new_document(Path(corpus), text, label, n)
        t0 = time.perf_counter()
        report = build_index(settings, embedder, loaded=gen)
        seconds = time.perf_counter() - t0
        gen = report.generation
        if n:
            runs.append({"seconds": seconds, **report.timings,
                         "passages": report.chunks, "documents": report.documents, "skipped": len(report.skipped)})
    for run in runs:
        run.update(loaded_peak_mib=loaded, peak_mib=status_mib("VmHWM"))
    print(json.dumps(runs))


def scale_corpus(work: Path, size: int) -> Path:
    """The scale benchmark's documents at ``size`` texts and the evaluation corpus, written to ``work``/corpus."""
    corpus = work / "corpus"
    bench_scale.write_corpus(bench_scale.select(bench_scale.load_texts(), size), corpus)
    shutil.copytree(bench_scale.evaluation_corpus(work / "evaluation"), corpus / "eval")
    return corpus


def build(work: Path, size: int) -> dict[str, Any]:
    from aidsearch.config import load_settings
    from aidsearch.indexer import build_index

    corpus, index = scale_corpus(work, size), work / "index"
    t0 = time.perf_counter()
    report = build_index(load_settings(corpus_dir=corpus, index_dir=index), random_embedder())
    return {"seconds": time.perf_counter() - t0, "passages": report.chunks, "documents": report.documents,
            "skipped": len(report.skipped),
            "skipped_as_copies": sum("same text as" in s.reason for s in report.skipped)}


def compare(work: Path, baseline: str, repeats: int, updates: int) -> dict[str, Any]:
    from procstat import revision_src

    old_src = revision_src(ROOT, baseline, work / "baseline")
    runs: dict[str, list[dict[str, Any]]] = {"earlier": [], "current": []}
    order = [("earlier", old_src), ("current", ROOT / "src")]
    for label, _ in order:  # each revision updates its own copy: a revision need not read what another wrote
        shutil.copytree(work / "index", work / f"index-{label}")
    for r in range(repeats):
        for label, src in order if r % 2 == 0 else order[::-1]:
            out = subprocess.run([sys.executable, __file__, "--worker", str(src), label, str(work / "corpus"),
                                  str(work / f"index-{label}"), str(updates)], check=True, capture_output=True,
                                 text=True,
                                 env={**os.environ, **bench_scale.ENV})
            runs[label] += json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{label}: {[round(x['seconds'], 2) for x in runs[label]]}", file=sys.stderr, flush=True)
    result: dict[str, Any] = {}
    for label, rows in runs.items():
        result[label] = {key: statistics.median(x[key] for x in rows)
                         for key in ("seconds", "chunk", "embed", "write", "loaded_peak_mib", "peak_mib")}
        result[label]["all_seconds"] = [x["seconds"] for x in rows]
        result[label]["passages"] = rows[-1]["passages"]
    result["speedup"] = result["earlier"]["seconds"] / result["current"]["seconds"]
    return result


def render(data: dict[str, Any]) -> str:
    b, e, c = data["build"], data["update"]["earlier"], data["update"]["current"]
    return "\n".join([
        "# One-document update of a large index", "",
        f"Generated by `{data['command']}` on {data['date']}; {data['machine']}; CPU used by other processes during "
        f"the run: {data['contention']:.0%}.", "",
        f"Index: {data['size']:,} devaid-large texts of the scale benchmark and its evaluation corpus, "
        f"{b['documents']:,} documents, {b['passages']:,} passages; {b['skipped']:,} files not indexed "
        f"({b['skipped_as_copies']:,} of them copies of another file's text). Vectors are random (drawn from a hash of "
        "each text): the update embeds nothing, and the figures are the cost of everything else. Each revision "
        f"updates {data['updates']} times in each of {data['repeats']} processes, alternating which goes first; "
        "medians.", "",
        "| code | update (s) | writing the new generation (s) | the rest: walking and reading the corpus (s) | "
        "peak memory, index loaded → after the updates (MiB) | all updates (s) |", "|---|---:|---:|---:|---|---|",
        *(f"| {label} | {r['seconds']:.2f} | {r['write']:.2f} | {r['seconds'] - r['write'] - r['embed']:.2f} | "
          f"{r.get('loaded_peak_mib', float('nan')):.0f} → {r.get('peak_mib', float('nan')):.0f} | "
          f"{', '.join(f'{s:.1f}' for s in r['all_seconds'])} |"
          for label, r in (("earlier (`" + data["baseline"] + "`)", e), ("current", c))),
        "", f"The current code updates {data['update']['speedup']:.1f}× as fast.", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=5, metavar=("SRC", "LABEL", "CORPUS", "INDEX", "UPDATES"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "update.md")
    args = parser.parse_args(argv)
    if args.worker:
        src, label, corpus, index, updates = args.worker
        worker(src, label, corpus, index, int(updates))
        return 0
    from procstat import ForeignCpu, run_header, save_report

    os.environ.update(bench_scale.ENV)
    with tempfile.TemporaryDirectory(prefix="aidsearch-update-") as tmp, ForeignCpu() as foreign:
        work = Path(tmp)
        data: dict[str, Any] = {
            **run_header("benchmarks/bench_update.py", argv), "size": args.size,
            "baseline": args.baseline, "repeats": args.repeats, "updates": args.updates,
            "build": build(work, args.size),
        }
        print(f"built: {data['build']}", file=sys.stderr, flush=True)
        data["update"] = compare(work, args.baseline, args.repeats, args.updates)
    data["contention"] = foreign.share
    save_report(args.out, data, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
