"""The evaluation on both search backends over the same indexes, on the validation parts and the held-out set
(``make eval-data`` builds the indexes), side by side in one run: FAISS with the index's BM25; Milvus Lite with its
own full-text search (the default where the server has it); Milvus Lite with the index's BM25. Retrieval, answer
and abstention figures, and how many questions get the same first document and the same answer as FAISS.

Usage: .venv/bin/python benchmarks/bench_backend_eval.py [--limit N] [--out docs/benchmarks/backends-eval.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_answers import SETS  # noqa: E402
from procstat import ForeignCpu  # noqa: E402

FIGURES = ("recall_1", "recall_5", "cited_first", "accuracy")
CONFIGS = {"faiss": {"index_backend": "faiss"},  # name: settings
           "milvus": {"index_backend": "milvus", "milvus_full_text": "on"},
           "milvus, index BM25": {"index_backend": "milvus", "milvus_full_text": "off"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "backends-eval.json")
    args = parser.parse_args()
    from aidsearch.api import Aidsearch, open_index
    from aidsearch.evaluate import evaluate, load_questions

    sets = {}
    embedder = None
    with ForeignCpu() as foreign, tempfile.TemporaryDirectory() as scratch:
        for n, s in enumerate(SETS):
            questions = load_questions(ROOT / s.questions)[:args.limit]
            base = open_index(ROOT / s.index, embedder=embedder)
            embedder = base.embedder
            reports = {}
            for name, config in CONFIGS.items():
                settings = replace(base.settings, milvus_uri=f"{scratch}/milvus-{n}.db", **config)
                reports[name] = evaluate(Aidsearch(settings, embedder), questions, questions_file=s.questions,
                                         index_dir=s.index)
            row: dict = {"questions": len(questions)}
            for name, report in reports.items():
                g = report.group("overall")
                row[name] = {"recall_1": g.recall_1, "recall_5": g.recall_5, "cited_first": g.cited_first,
                             "accuracy": g.accuracy, "no_answer_precision": g.no_answer.precision,
                             "no_answer_recall": g.no_answer.recall}
                if name != "faiss":
                    pairs = list(zip(reports["faiss"].results, report.results))
                    row[name].update({
                        "same_first_document": sum(a.ranked[:1] == b.ranked[:1] for a, b in pairs) / len(pairs),
                        "same_answer": sum(a.answer == b.answer for a, b in pairs) / len(pairs),
                        "largest_gap_points": round(100 * max(abs((row["faiss"][k] or 0) - (row[name][k] or 0))
                                                              for k in FIGURES), 2)})
            sets[s.name] = row
            print(s.name, json.dumps(sets[s.name]), file=sys.stderr, flush=True)
    data = {"command": "benchmarks/bench_backend_eval.py" + (f" --limit {args.limit}" if args.limit else ""),
            "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "contention": f"{foreign.share:.0%}", "sets": sets}
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
