"""Builders of real test files (PDF, DOCX, HTML) and small corpora."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

from conftest import ROOT


def copy_seeds(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "corpus").glob("*.txt")):
        shutil.copy(path, dest / path.name)
        (dest / path.name).chmod(0o644)
    return dest


def make_pdf(path: Path, pages: list[str]) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for text in pages:
        y = 800
        for line in text.split("\n"):
            c.drawString(60, y, line)
            y -= 16
        c.showPage()
    c.save()
    return path


def make_docx(path: Path, title: str, paragraphs: list[str]) -> Path:
    import docx

    d = docx.Document()
    d.core_properties.title = title
    d.add_heading(title, level=1)
    for p in paragraphs:
        d.add_paragraph(p)
    d.save(str(path))
    return path


def devaid_records(n: int, lang: str | None = None) -> list[dict]:
    out = []
    with gzip.open(ROOT / "data" / "devaid" / "devaid_corpus_sample.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if len(rec.get("text") or "") > 300 and (lang is None or rec.get("lang") == lang):
                out.append(rec)
            if len(out) == n:
                break
    return out


def write_records(folder: Path, records: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for rec in records:
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in rec["id"])[:60]
        (folder / f"{name}.txt").write_text(f"{rec['title']}\n\n{rec['text']}\n", encoding="utf-8")
