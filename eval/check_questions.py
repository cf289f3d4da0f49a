"""Check a question set against the records it was written from (not against a built index).

For every answerable question: each relevant file is part of the evaluation corpus, every expected
answer string occurs verbatim (case-sensitive) in a relevant document, before and after ingestion
cleaning, and the question's direction (query language → language of the first relevant document)
is known. Prints one line per problem and a summary of directions; exit code 1 on problems.

Usage: python eval/check_questions.py [eval/questions.jsonl] [--data eval/data/records.jsonl.gz or a devaid folder]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_corpus  # noqa: E402

from aidsearch.evaluate import Question, direction, load_questions  # noqa: E402
from aidsearch.ingest import read_document  # noqa: E402

DEFAULT_QUESTIONS = build_corpus.ROOT / "eval" / "questions.jsonl"


@dataclass
class CheckReport:
    """Problems found, the direction of each question, and how many corpus files hold each answer."""

    problems: list[str] = field(default_factory=list)
    directions: dict[str, str] = field(default_factory=dict)
    spread: dict[str, int] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        return Counter(self.directions.values())


def corpus_texts(data_dir: Path = build_corpus.DEFAULT_DATA, cida: int = build_corpus.DEFAULT_CIDA,
                 seeds: Path = build_corpus.SEEDS) -> dict[str, str]:
    """Every evaluation-corpus file's text by its source path, rendered from the records (no files written)."""
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(seeds.glob("*.txt"))}
    for _, rec in build_corpus.select_records(data_dir, cida):
        texts[build_corpus.source_path(rec["id"])] = build_corpus.record_text(rec)
    return texts


def _ingested(source: str, text: str, scratch: Path) -> tuple[str, str]:
    """(cleaned text, detected language) of a file as the indexer would read it."""
    path = scratch / source
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    doc = read_document(path, scratch)
    return doc.text, doc.lang


def check(questions: list[Question], texts: dict[str, str]) -> CheckReport:
    """Check every question against the corpus texts."""
    report = CheckReport()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for q in questions:
            if not q.answerable:
                report.directions[q.id] = direction(q.lang, None)
                continue
            missing = [s for s in q.relevant if s not in texts]
            if missing:
                report.problems.append(f"{q.id}: relevant file not in the corpus: {', '.join(missing)}")
                continue
            ingested = {s: _ingested(s, texts[s], scratch) for s in q.relevant}
            report.directions[q.id] = direction(q.lang, ingested[q.relevant[0]][1])
            for answer in q.answers:
                if not any(answer in texts[s] for s in q.relevant):
                    report.problems.append(f"{q.id}: answer {answer!r} not in {', '.join(q.relevant)}")
                elif not any(answer in ingested[s][0] for s in q.relevant):
                    report.problems.append(f"{q.id}: answer {answer!r} lost by ingestion cleaning")
                report.spread[f"{q.id} {answer}"] = sum(answer in t for t in texts.values())
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="?", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--data", type=Path, default=build_corpus.DEFAULT_DATA)
    parser.add_argument("--cida", type=int, default=build_corpus.DEFAULT_CIDA)
    args = parser.parse_args(argv)
    questions = load_questions(args.questions)
    report = check(questions, corpus_texts(args.data, args.cida))
    for problem in report.problems:
        print(problem)
    common = {k: v for k, v in report.spread.items() if v > 1}
    for key, n in sorted(common.items()):
        print(f"note: {key!r} occurs in {n} corpus files")
    langs = Counter(q.lang for q in questions)
    print(f"{len(questions)} questions ({', '.join(f'{k} {v}' for k, v in sorted(langs.items()))}); "
          + ", ".join(f"{k} {v}" for k, v in sorted(report.counts().items()))
          + f"; {len(report.problems)} problems")
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
