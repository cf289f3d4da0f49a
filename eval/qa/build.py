"""Turn the public QA sets shipped here (PIAF, French; XQuAD, English) into a corpus and question files
that ``aidsearch index`` and ``aidsearch eval`` read as they are.

Usage: python eval/qa/build.py [--out eval/qa/build] [--set piaf|xquad ...]

For each set it writes ``<out>/<set>/corpus/<para_id>.txt`` (title line, blank line, paragraph) and, in the
question format of ``eval/questions.jsonl``, ``<out>/<set>/train.jsonl`` and ``<out>/<set>/validation.jsonl``.
The split is by article, never by question, and fixed: an article goes to validation when the first byte of
the SHA-256 of its id is below ``VALIDATION_SHARE`` × 256. The corpus holds every paragraph of the set, so
validation questions are searched among train paragraphs too.
"""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any, Iterator

from aidsearch.evaluate import split_part

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "build"
SETS = {"piaf": "piaf_dev", "xquad": "xquad_en_dev"}
VALIDATION_SHARE = 0.4
PARTS = ("train", "validation")


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def article(para_id: str) -> str:
    """``piaf-a012-p03`` → ``piaf-a012``."""
    return para_id.rsplit("-p", 1)[0]


def paragraph_file(para_id: str) -> str:
    return f"{para_id}.txt"


def build(name: str, out: Path) -> dict[str, Any]:
    """Write one set's corpus and question files; returns counts."""
    prefix = SETS[name]
    paragraphs = {p["para_id"]: p for p in _read(HERE / f"{prefix}_paragraphs.jsonl.gz")}
    folder = out / name
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for pid, p in paragraphs.items():
        path = corpus / paragraph_file(pid)
        text = f"{' '.join(p['title'].split())}\n\n{p['text'].strip()}\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    rows: dict[str, list[str]] = {part: [] for part in PARTS}
    for q in _read(HERE / f"{prefix}_questions.jsonl.gz"):
        answers = list(dict.fromkeys(a.strip() for a in q["answers"] if a.strip()))
        if not answers or q["para_id"] not in paragraphs:
            continue
        row = {"id": q["qid"], "query": q["question"].strip(), "lang": q["lang"],
               "relevant": [paragraph_file(q["para_id"])], "answers": answers}
        rows[split_part(article(q["para_id"]), VALIDATION_SHARE)].append(json.dumps(row, ensure_ascii=False))
    for part, lines in rows.items():
        (folder / f"{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    articles = {article(pid) for pid in paragraphs}
    return {"set": name, "paragraphs": len(paragraphs), "articles": len(articles),
            "validation_articles": sum(split_part(a, VALIDATION_SHARE) == "validation" for a in articles),
            **{f"{part}_questions": len(lines) for part, lines in rows.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--set", dest="sets", action="append", choices=sorted(SETS))
    args = parser.parse_args()
    for name in args.sets or sorted(SETS):
        print(json.dumps(build(name, args.out)))


if __name__ == "__main__":
    main()
