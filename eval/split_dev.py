"""Split the development questions (eval/questions.jsonl) once, by document, into eval/dev/train.jsonl and
eval/dev/validation.jsonl: a question goes where its first relevant document goes (an unanswerable one, where
its id goes), so no document has questions in both parts.

Usage: python eval/split_dev.py
"""
from __future__ import annotations

import json
from pathlib import Path

from aidsearch.evaluate import split_part

HERE = Path(__file__).resolve().parent


def main() -> None:
    parts: dict[str, list[str]] = {"train": [], "validation": []}
    for line in (HERE / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            parts[split_part(q["relevant"][0] if q["relevant"] else q["id"])].append(line)
    (HERE / "dev").mkdir(exist_ok=True)
    for part, lines in parts.items():
        (HERE / "dev" / f"{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(part, len(lines))


if __name__ == "__main__":
    main()
