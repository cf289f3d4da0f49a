"""Refresh ``eval/data/records.jsonl.gz``, the committed copy of every record the evaluation corpus uses.

This is the only script that reads the shared data folder (``../shared/data`` beside the repository);
a maintainer runs it once after changing the record mix or the reports of ``eval/build_corpus.py``.
Everything else (``build_corpus.py``, ``check_questions.py``, ``check_heldout.py``) reads the committed file.

Usage: python eval/data/make_data.py [--shared ../shared/data] [--out eval/data/records.jsonl.gz]

Each line is ``{"use": …, "dataset": …, "record": {…}}``: ``use`` is "corpus" (a record of
``eval/corpus/devaid/``) or "report" (a record of one of the PDF reports), ``dataset`` the source file
stem (or ``undp-2014`` for devaid-large texts), ``record`` the record exactly as in the source.
Corpus records come first, in the order ``build_corpus.select_records`` takes them from the original
files; report records follow, sorted by dataset and id. The file is gzip with mtime 0, so a rerun on
the same inputs gives the same bytes.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import build_corpus  # noqa: E402

DEFAULT_SHARED = build_corpus.ROOT.parent / "shared" / "data"


def corpus_rows(devaid: Path) -> list[dict]:
    """The corpus records, selected from the original files exactly as build_corpus does."""
    return [{"use": "corpus", "dataset": stem, "record": rec} for stem, rec in build_corpus.select_records(devaid)]


def report_rows(shared: Path) -> list[dict]:
    """The records of the PDF reports: CIDA records by id; UNDP projects with their French outputs."""
    rows: list[dict] = []
    cida_ids = {i for spec in build_corpus.REPORTS if spec["dataset"] != "undp-2014" for i in spec["ids"]}
    undp_ids = {i for spec in build_corpus.REPORTS if spec["dataset"] == "undp-2014" for i in spec["ids"]}
    found: set[str] = set()
    for rec in build_corpus._read(shared / "devaid" / "cida_projects_2009.jsonl"):
        if rec["id"] in cida_ids and rec["id"] not in found:
            found.add(rec["id"])
            rows.append({"use": "report", "dataset": "cida_projects_2009", "record": rec})
    with gzip.open(shared / "devaid-large" / "texts.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["source"] != "undp-2014" or "~" in rec["id"] or rec["lang"] != "fr":
                continue
            if rec["id"].split("/out-")[0] in undp_ids:
                found.add(rec["id"].split("/out-")[0])
                rows.append({"use": "report", "dataset": "undp-2014", "record": rec})
    missing = (cida_ids | undp_ids) - found
    if missing:
        raise SystemExit(f"error: report records not found: {', '.join(sorted(missing))}")
    return sorted(rows, key=lambda r: (r["dataset"], r["record"]["id"]))


def write(rows: list[dict], out: Path) -> None:
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    out.write_bytes(raw.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=HERE / "records.jsonl.gz")
    args = parser.parse_args(argv)
    if not (args.shared / "devaid").is_dir():
        sys.exit(f"error: shared data folder not found: {args.shared}")
    rows = corpus_rows(args.shared / "devaid") + report_rows(args.shared)
    write(rows, args.out)
    n_corpus = sum(r["use"] == "corpus" for r in rows)
    print(f"wrote {len(rows)} records to {args.out} ({n_corpus} corpus, {len(rows) - n_corpus} report; "
          f"{args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
