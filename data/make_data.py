"""Refresh the committed data copies in ``data/`` that the tests and benchmarks read.

Maintainer script: with ``eval/data/make_data.py``, the only code that reads the shared data folder
(``../shared/data`` beside the repository). Tests and benchmarks read the copies written here, so a
clone of the repository needs nothing outside it.

Usage: python data/make_data.py [--shared ../shared/data] [--out data]

Writes (gzip, mtime 0, no file name in the header, so a rerun on the same inputs gives the same bytes):

- ``devaid/devaid_corpus_sample.jsonl.gz``: the whole source file, byte for byte (tests/helpers.py,
  benchmarks/bench_model.py);
- ``tatoeba/tatoeba.fra-eng.fra.gz`` and ``tatoeba/tatoeba.fra-eng.eng.gz``: the whole source files,
  byte for byte (benchmarks/bench_model.py);
- ``devaid/scale_records.jsonl.gz``: every record whose text has at least ``SCALE_MIN_CHARS`` characters
  from the ``SCALE_FILES`` (benchmarks/bench_scale.py takes its base records from these and nothing else),
  in source-file order, then line order. One line per record: ``{"dataset": <source file stem>,
  "record": {…}}``, the record as in its source file (same keys, same key order).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parent.parent / "shared" / "data"
SCALE_FILES = ("cida_projects_2009", "senegal_aims_projects", "burundi_aims_projects", "dportal_iati_activities_sample")
SCALE_MIN_CHARS = 300
VERBATIM = ("devaid/devaid_corpus_sample.jsonl", "tatoeba/tatoeba.fra-eng.fra", "tatoeba/tatoeba.fra-eng.eng")


def _gzip(data: bytes) -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return raw.getvalue()


def scale_rows(devaid: Path) -> list[dict]:
    """The records bench_scale can use, with the file they come from, in the order it reads them."""
    rows: list[dict] = []
    for stem in SCALE_FILES:
        with open(devaid / f"{stem}.jsonl", encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh]
        rows += [{"dataset": stem, "record": r} for r in records if len(r.get("text") or "") >= SCALE_MIN_CHARS]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the copies")
    args = parser.parse_args(argv)
    if not (args.shared / "devaid").is_dir() or not (args.shared / "tatoeba").is_dir():
        sys.exit(f"error: shared data folder not found: {args.shared}")
    outputs: dict[str, bytes] = {f"{rel}.gz": (args.shared / rel).read_bytes() for rel in VERBATIM}
    rows = scale_rows(args.shared / "devaid")
    outputs["devaid/scale_records.jsonl.gz"] = "".join(
        json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    for rel, data in outputs.items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_gzip(data))
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    counts = {stem: sum(r["dataset"] == stem for r in rows) for stem in SCALE_FILES}
    print("scale records: " + ", ".join(f"{stem} {n}" for stem, n in counts.items()))


if __name__ == "__main__":
    main()
