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
- ``devaid-large/texts.jsonl.xz``: the whole source file ``devaid-large/texts.jsonl.gz``, unchanged once
  decompressed, compressed again with xz (preset 9e: under 5 MB) (benchmarks/bench_scale.py).
"""
from __future__ import annotations

import argparse
import gzip
import io
import lzma
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parent.parent / "shared" / "data"
VERBATIM = ("devaid/devaid_corpus_sample.jsonl", "tatoeba/tatoeba.fra-eng.fra", "tatoeba/tatoeba.fra-eng.eng")
RECOMPRESSED = {"devaid-large/texts.jsonl.xz": "devaid-large/texts.jsonl.gz"}


def _gzip(data: bytes) -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return raw.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the copies")
    args = parser.parse_args(argv)
    if not (args.shared / "devaid").is_dir() or not (args.shared / "tatoeba").is_dir():
        sys.exit(f"error: shared data folder not found: {args.shared}")
    outputs = {f"{rel}.gz": _gzip((args.shared / rel).read_bytes()) for rel in VERBATIM}
    outputs.update({rel: lzma.compress(gzip.decompress((args.shared / source).read_bytes()),
                                       preset=9 | lzma.PRESET_EXTREME) for rel, source in RECOMPRESSED.items()})
    for rel, data in outputs.items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
