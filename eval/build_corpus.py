"""Build the evaluation corpus: the five seed pages plus real aid-project records, one .txt file per record.

Usage: python eval/build_corpus.py [--out eval/corpus] [--data ../shared/data/devaid] [--cida 900]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "eval" / "corpus"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "devaid"
SEEDS = ROOT / "corpus"
SUBDIR = "devaid"
MIN_CHARS = 200
DEFAULT_CIDA = 900
MARKER = ".sources.jsonl"
# Files read in this order; CIDA is sampled (evenly over its ids), the others are taken whole.
SOURCES = ("senegal_aims_projects", "burundi_aims_projects", "drc_aims_projects",
           "dportal_iati_activities_sample", "cida_projects_2009")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(record_id: str) -> str:
    """File name of a record: its id with unsafe characters replaced by ``_``."""
    return _UNSAFE.sub("_", record_id).strip("._")[:120] + ".txt"


def source_path(record_id: str) -> str:
    """Path of a record's file relative to the corpus root, as the index reports it."""
    return f"{SUBDIR}/{file_name(record_id)}"


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split("|")
    return [str(v).strip() for v in items if str(v).strip()]


def record_text(rec: dict[str, Any]) -> str:
    """The file text of a record: title, blank line, text, then Country/Donor/Budget lines when known."""
    lines = [" ".join(str(rec.get("title") or "").split()), "", str(rec.get("text") or "").strip(), ""]
    countries = _as_list(rec.get("country"))
    if countries:
        lines.append("Country: " + ", ".join(countries))
    donors = _as_list(rec.get("donor"))
    if donors:
        lines.append("Donor: " + ", ".join(donors))
    budget = rec.get("budget")
    if isinstance(budget, (int, float)) and budget > 0:
        currency = str(rec.get("currency") or "").strip()
        lines.append(f"Budget: {round(budget):,} {currency}".rstrip())
    return "\n".join(lines).rstrip() + "\n"


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def eligible(path: Path, min_chars: int = MIN_CHARS) -> list[dict[str, Any]]:
    """Records of one file with at least ``min_chars`` of text, first of each id and of each text."""
    ids: set[str] = set()
    texts: set[str] = set()
    out = []
    for rec in _read(path):
        text = str(rec.get("text") or "").strip()
        if len(text) < min_chars or rec["id"] in ids or text in texts:
            continue
        ids.add(rec["id"])
        texts.add(text)
        out.append(rec)
    return out


def evenly(records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` records spread evenly over the list sorted by id (all of them when ``n`` is larger)."""
    ordered = sorted(records, key=lambda r: r["id"])
    if n >= len(ordered):
        return ordered
    return [ordered[i * len(ordered) // n] for i in range(n)]


def select_records(data_dir: Path = DEFAULT_DATA, cida: int = DEFAULT_CIDA,
                   min_chars: int = MIN_CHARS) -> list[tuple[str, dict[str, Any]]]:
    """The deterministic record mix of the evaluation corpus, as (source file stem, record) pairs."""
    chosen: list[tuple[str, dict[str, Any]]] = []
    names: set[str] = set()
    for stem in SOURCES:
        records = eligible(data_dir / f"{stem}.jsonl", min_chars)
        if stem.startswith("cida"):
            records = evenly(records, cida)
        for rec in records:
            name = file_name(rec["id"])
            if name in names:
                raise SystemExit(f"error: two records map to the file name {name}")
            names.add(name)
            chosen.append((stem, rec))
    return chosen


def build(out: Path = DEFAULT_OUT, data_dir: Path = DEFAULT_DATA, cida: int = DEFAULT_CIDA,
          min_chars: int = MIN_CHARS, seeds: Path = SEEDS) -> dict[str, int]:
    """Write the corpus folder (replacing one this script wrote before); returns counts per origin."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise SystemExit(f"error: {out} exists and was not written by this script; choose another --out")
    if out.exists():
        shutil.rmtree(out)
    (out / SUBDIR).mkdir(parents=True)
    counts: dict[str, int] = {"seed": 0}
    provenance = []
    for path in sorted(seeds.glob("*.txt")):
        shutil.copyfile(path, out / path.name)
        counts["seed"] += 1
        provenance.append({"file": path.name, "id": path.stem, "source": "corpus/ (seed page)"})
    for stem, rec in select_records(data_dir, cida, min_chars):
        rel = source_path(rec["id"])
        (out / rel).write_text(record_text(rec), encoding="utf-8")
        counts[stem] = counts.get(stem, 0) + 1
        provenance.append({"file": rel, "id": rec["id"], "dataset": stem, "source": rec.get("source", "")})
    with (out / MARKER).open("w", encoding="utf-8") as fh:
        for row in provenance:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder to write (replaced)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the devaid *.jsonl files")
    parser.add_argument("--cida", type=int, default=DEFAULT_CIDA, help="number of CIDA records to sample")
    parser.add_argument("--min-chars", type=int, default=MIN_CHARS, help="shortest record text kept")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        sys.exit(f"error: data folder not found: {args.data}")
    counts = build(args.out, args.data, args.cida, args.min_chars)
    total = sum(counts.values())
    detail = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"wrote {total} documents to {args.out} ({detail})")


if __name__ == "__main__":
    main()
