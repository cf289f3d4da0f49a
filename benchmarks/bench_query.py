"""Questions embedded and answers read with ONNX Runtime against PyTorch (``query_runtime``: the model's encoder
layers and the answer reader's), side by side in one run.

Usage: .venv/bin/python benchmarks/bench_query.py [--index LABEL=DIR ...] [--random-size 100000] [--repeats 2]
                                                 [--questions N] [--users 50] [--seconds 30]
                                                 [--out docs/benchmarks/query.md]

- Indexes: the evaluation index (``make eval-data``) by default, and with ``--random-size N`` the update
  benchmark's index of the scale benchmark's N texts and the evaluation corpus with random vectors drawn from a
  hash of each text (built under ``benchmarks/out/query-N`` once and kept): its answers are not meaningful, its
  timings are those of an index of that size (search, keyword scores, the reader over passages of real text), but
  with passages unrelated to the question the answer stage reads more of them than on a real index.
- Questions: the scale benchmark's distinct real questions (the development, held-out and public validation sets;
  the first ``--questions`` of them).
- Each repeat runs one process per runtime on each index, alternating which goes first; a process opens the index,
  answers one question untimed, then times ``search`` (k=10) and ``ask`` on every question; then ``app.py`` serves
  the index with each runtime in turn and ``--users`` clients on loopback ask question after question for
  ``--seconds`` (the scale benchmark's load; 0 users: none). Figures are medians
  over the repeats' questions; "same first passage / answer" compares the runtimes question by question.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_scale  # noqa: E402

RUNTIMES = ("torch", "onnx")
ON_ONNX = "questions embedded and answers read"  # what query_runtime moves: the model's and the reader's layers


def _questions(count: int) -> list[str]:
    questions = bench_scale.load_questions()
    return questions[:count] if count > 0 else questions


def worker(runtime: str, index: str, out: str, count: str) -> None:
    from procstat import status_mib

    from aidsearch.api import open_index

    questions = _questions(int(count))
    t0 = time.perf_counter()
    ix = open_index(index, query_runtime=runtime)
    ix.ask(questions[0])
    result: dict[str, Any] = {"first_answer_s": time.perf_counter() - t0, "rss_loaded_mib": status_mib("VmRSS"),
                              "search_ms": [], "ask_ms": [], "embed_ms": [], "first": [], "answers": []}
    for q in questions:
        took, hits = bench_scale._timed_ms(ix.search, q, k=10)
        result["search_ms"].append(took)
        result["first"].append(hits.hits[0].chunk.id if hits.hits else "")
    for q in questions:
        took, answer = bench_scale._timed_ms(ix.ask, q)
        result["ask_ms"].append(took)
        result["embed_ms"].append(answer.timings_ms.get("embed", 0.0))
        result["answers"].append(answer.text)
    result["peak_mib"] = status_mib("VmHWM")
    Path(out).write_text(json.dumps(result), encoding="utf-8")


def _run(runtime: str, index: Path, out: Path, count: int) -> dict[str, Any]:
    subprocess.run([sys.executable, __file__, "--worker", runtime, str(index), str(out), str(count)], check=True,
                   env={**os.environ, **bench_scale.ENV})
    return json.loads(out.read_text(encoding="utf-8"))


def _manifest(index: Path) -> dict[str, Any]:
    from aidsearch.store import IndexStore

    return IndexStore(index).read_manifest()


def compare(index: Path, repeats: int, work: Path, count: int, users: int, seconds: float) -> dict[str, Any]:
    corpus = Path(_manifest(index)["corpus"])
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in RUNTIMES}
    loads: dict[str, list[dict[str, Any]]] = {r: [] for r in RUNTIMES}
    for repeat in range(repeats):
        order = RUNTIMES if repeat % 2 == 0 else RUNTIMES[::-1]
        for runtime in order:
            print(f"{index.name}: repeat {repeat + 1}, {runtime}", file=sys.stderr, flush=True)
            runs[runtime].append(_run(runtime, index, work / f"{runtime}-{repeat}.json", count))
        for runtime in order if users else ():
            env = {"AIDSEARCH_QUERY_RUNTIME": runtime}
            with bench_scale.app(index, corpus, env, work / f"server-{runtime}-{repeat}.log") as url:
                loads[runtime].append(bench_scale.load(url, _questions(count), users, seconds))
    out: dict[str, Any] = {}
    for runtime, results in runs.items():
        def pooled(key: str, results: list[dict[str, Any]] = results) -> list[float]:
            return [v for r in results for v in r[key]]
        out[runtime] = {
            "embed_p50_ms": statistics.median(pooled("embed_ms")),
            "search_p50_ms": bench_scale._pct(pooled("search_ms"), 50),
            "search_p95_ms": bench_scale._pct(pooled("search_ms"), 95),
            "ask_p50_ms": bench_scale._pct(pooled("ask_ms"), 50), "ask_p95_ms": bench_scale._pct(pooled("ask_ms"), 95),
            "rss_loaded_mib": statistics.median(r["rss_loaded_mib"] for r in results),
            "peak_mib": statistics.median(r["peak_mib"] for r in results),
            "first_answer_s": statistics.median(r["first_answer_s"] for r in results),
        }
        if loads[runtime]:
            out[runtime]["load"] = {
                "runs": loads[runtime], "answered": statistics.median(r["answered"] for r in loads[runtime]),
                "errors": sum(r["errors"] for r in loads[runtime]),
                "p50_s": statistics.median(r["p50_s"] for r in loads[runtime]),
                "p95_s": statistics.median(r["p95_s"] for r in loads[runtime]),
            }
    a, b = runs["torch"][0], runs["onnx"][0]
    out["same_first_passage"] = sum(x == y for x, y in zip(a["first"], b["first"])) / len(a["first"])
    out["same_answer"] = sum(x == y for x, y in zip(a["answers"], b["answers"])) / len(a["answers"])
    out["questions"] = len(a["first"])
    return out


def render(data: dict[str, Any]) -> str:
    lines = [
        f"# {data.get('on_onnx', 'questions embedded').capitalize()} with ONNX Runtime against PyTorch", "",
        f"Command: `{data['command']}`; {data['date']}; {data['machine']}; CPU used by other processes during the "
        f"run: {data['contention']:.0%}. {data['repeats']} processes per runtime and index, alternating which goes "
        f"first; {data['questions']} distinct real questions, each timed once per process with `search` (k=10) and "
        "once with `ask`. *embed*: the `ask` part that embeds the question. On an index of random vectors the "
        "answers mean nothing and the answer stage reads more passages than on a real index: its `ask` times are "
        "those of that harder case.", "",
        "| index | passages | runtime | embed p50 (ms) | search p50 / p95 (ms) | ask p50 / p95 (ms) | RSS loaded (MiB) "
        "| peak (MiB) | open and first answer (s) | same first passage / answer as PyTorch |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in data["indexes"]:
        for runtime in RUNTIMES:
            r = row["result"][runtime]
            same = (f"{row['result']['same_first_passage']:.1%} / {row['result']['same_answer']:.1%}"
                    if runtime == "onnx" else "–")
            lines.append(f"| {row['label']} | {row['passages']:,} | {runtime} | {r['embed_p50_ms']:.1f} | "
                         f"{r['search_p50_ms']:.1f} / {r['search_p95_ms']:.1f} | {r['ask_p50_ms']:.1f} / "
                         f"{r['ask_p95_ms']:.1f} | {r['rss_loaded_mib']:.0f} | {r['peak_mib']:.0f} | "
                         f"{r['first_answer_s']:.1f} | {same} |")
    if any("load" in row["result"]["torch"] for row in data["indexes"]):
        lines += ["", f"`app.py` serving each index with each runtime in turn: {data['users']} users on loopback, each "
                  f"asking the next question as soon as it has its answer, for {data['seconds']:.0f} s (medians of "
                  f"{data['repeats']} runs).", "",
                  "| index | runtime | answers in the time | errors | p50 (s) | p95 (s) |",
                  "|---|---|---:|---:|---:|---:|"]
        for row in data["indexes"]:
            for runtime in RUNTIMES:
                load = row["result"][runtime]["load"]
                lines.append(f"| {row['label']} | {runtime} | {load['answered']:.0f} | {load['errors']} | "
                             f"{load['p50_s']:.2f} | {load['p95_s']:.2f} |")
    lines.append("")
    for row in data["indexes"]:
        t, o = row["result"]["torch"], row["result"]["onnx"]
        lines.append(f"- {row['label']}: embedding a question {t['embed_p50_ms'] / o['embed_p50_ms']:.2f}× faster, "
                     f"search p50 {t['search_p50_ms']:.1f} → {o['search_p50_ms']:.1f} ms, ask p50 "
                     f"{t['ask_p50_ms']:.1f} → {o['ask_p50_ms']:.1f} ms, RSS loaded "
                     f"{o['rss_loaded_mib'] - t['rss_loaded_mib']:+.0f} MiB with ONNX Runtime.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=4, metavar=("RUNTIME", "INDEX", "OUT", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--index", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--random-size", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--questions", type=int, default=0, help="the first N questions (default: all)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "query.md")
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    import tempfile

    import bench_update
    from procstat import ForeignCpu, save_report

    os.environ.update(bench_scale.ENV)
    indexes = [tuple(spec.split("=", 1)) for spec in args.index] or [("evaluation", str(ROOT / "eval" / "index-e5"))]
    with tempfile.TemporaryDirectory(prefix="aidsearch-query-") as tmp, ForeignCpu() as foreign:
        if args.random_size:
            work = ROOT / "benchmarks" / "out" / f"query-{args.random_size}"
            if not (work / "index" / "CURRENT").is_file():
                bench_update.build(work, args.random_size)
            indexes.append((f"{args.random_size:,} texts, random vectors", str(work / "index")))
        data: dict[str, Any] = {
            "command": " ".join([".venv/bin/python benchmarks/bench_query.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
            "repeats": args.repeats, "questions": len(_questions(args.questions)), "users": args.users,
            "seconds": args.seconds, "indexes": [], "on_onnx": ON_ONNX,
        }
        for n, (label, folder) in enumerate(indexes):
            run_dir = Path(tmp) / str(n)
            run_dir.mkdir()
            data["indexes"].append({"label": label, "passages": _manifest(Path(folder))["chunks"],
                                    "result": compare(Path(folder), args.repeats, run_dir, args.questions, args.users,
                                                      args.seconds)})
    data["contention"] = foreign.share
    save_report(args.out, data, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
