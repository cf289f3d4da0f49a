"""Check the held-out question set against the BUILT evaluation corpus (eval/corpus), read with the
project's own ingestion (PDF reports included): every relevant path exists, every answer string occurs
verbatim (case-sensitive) in the ingested text of a relevant document, unanswerable questions have no
answer string anywhere in the corpus, and the set meets its size and mix requirements. Prints one line
per problem and the counts per direction (query language → detected language of the document), kind
and document type; exit code 1 on problems.

It never runs retrieval or answering: the set must stay untuned.

Usage: python eval/build_corpus.py && python eval/check_heldout.py [eval/heldout.jsonl] [--corpus eval/corpus]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from aidsearch.evaluate import direction, load_questions
from aidsearch.ingest import read_document

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = ROOT / "eval" / "heldout.jsonl"
DEFAULT_CORPUS = ROOT / "eval" / "corpus"
KINDS = {"field", "free"}
DOCS = {"fiche", "record", "report"}
# Requirements of the held-out set.
MIN_TOTAL, MIN_PER_DIRECTION, MIN_UNANSWERABLE, MIN_REPORT, MIN_FICHE = 160, 30, 16, 45, 12


def doc_type(source: str) -> str:
    if source.startswith("reports/"):
        return "report"
    if source.startswith("devaid/"):
        return "record"
    return "fiche"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="?", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    if not (args.corpus / ".sources.jsonl").exists():
        sys.exit(f"error: {args.corpus} is not a built corpus: run python eval/build_corpus.py first")
    questions = load_questions(args.questions)
    raw = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    problems: list[str] = []
    docs: dict[str, tuple[str, str, int]] = {}  # source -> (ingested text, language, pages)

    def ingested(source: str) -> tuple[str, str, int] | None:
        if source not in docs:
            path = args.corpus / source
            if not path.is_file():
                return None
            doc = read_document(path, args.corpus)
            docs[source] = (doc.text, doc.lang, len(doc.pages))
        return docs[source]

    directions: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    types: Counter[str] = Counter()
    report_langs: Counter[str] = Counter()
    for q, obj in zip(questions, raw):
        kind, dtype = obj.get("kind"), obj.get("doc")
        if kind not in KINDS:
            problems.append(f"{q.id}: kind must be one of {sorted(KINDS)}, got {kind!r}")
        kinds[str(kind)] += 1
        if not q.answerable:
            if q.answers or dtype != "none":
                problems.append(f"{q.id}: unanswerable question must have no answers and doc 'none'")
            directions[direction(q.lang, None)] += 1
            types["none"] += 1
            continue
        if not q.answers:
            problems.append(f"{q.id}: answerable question without answer strings")
        texts = []
        for source in q.relevant:
            got = ingested(source)
            if got is None:
                problems.append(f"{q.id}: relevant file not in the corpus: {source}")
            else:
                texts.append(got)
        if len(texts) != len(q.relevant):
            continue
        expected = doc_type(q.relevant[0])
        if dtype != expected:
            problems.append(f"{q.id}: doc is {dtype!r}, but {q.relevant[0]} is a {expected}")
        types[expected] += 1
        lang = texts[0][1]
        directions[direction(q.lang, lang)] += 1
        if expected == "report":
            report_langs[f"{q.lang}→{lang}"] += 1
        for answer in q.answers:
            if not any(answer in t[0] for t in texts):
                problems.append(f"{q.id}: answer {answer!r} not in the ingested text of {', '.join(q.relevant)}")
        if any(answer.lower() in q.query.lower() for answer in q.answers):
            problems.append(f"{q.id}: the question contains its answer")
    # Unanswerable questions: the corpus must not contain the distinctive phrase they ask about is checked by
    # hand (see eval/README.md); here: the PDF reports are long (6-15 pages) and readable.
    for pdf in sorted((args.corpus / "reports").glob("*.pdf")):
        text, lang, pages = ingested(str(pdf.relative_to(args.corpus)))
        if not 6 <= pages <= 15:
            problems.append(f"{pdf.name}: {pages} pages (want 6-15)")
        print(f"report {pdf.name}: {pages} pages, {lang}, {len(text):,} characters")
    ids = [q.id for q in questions]
    if len(ids) < MIN_TOTAL:
        problems.append(f"only {len(ids)} questions (want >= {MIN_TOTAL})")
    for d in ("EN→EN", "EN→FR", "FR→EN", "FR→FR"):
        if directions[d] < MIN_PER_DIRECTION:
            problems.append(f"{d}: {directions[d]} answerable questions (want >= {MIN_PER_DIRECTION})")
    unanswerable = directions["EN→none"] + directions["FR→none"]
    if unanswerable < MIN_UNANSWERABLE:
        problems.append(f"{unanswerable} unanswerable questions (want >= {MIN_UNANSWERABLE})")
    if kinds["free"] * 2 < len(ids):
        problems.append(f"only {kinds['free']} free questions (want at least half)")
    if types["report"] < MIN_REPORT or min(report_langs[k] for k in ("en→en", "en→fr", "fr→en", "fr→fr")) == 0:
        problems.append(f"report questions: {types['report']} {dict(report_langs)} "
                        f"(want >= {MIN_REPORT}, all directions)")
    if types["fiche"] < MIN_FICHE:
        problems.append(f"only {types['fiche']} fiche questions (want >= {MIN_FICHE})")
    for problem in problems:
        print(problem)
    print(f"{len(ids)} questions; directions: " + ", ".join(f"{k} {v}" for k, v in sorted(directions.items()))
          + "; kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
          + "; docs: " + ", ".join(f"{k} {v}" for k, v in sorted(types.items()))
          + "; reports by direction: " + ", ".join(f"{k} {v}" for k, v in sorted(report_langs.items()))
          + f"; {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
