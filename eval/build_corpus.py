"""Build the evaluation corpus: the five seed pages, real aid-project records (one .txt file per record)
and long PDF reports assembled from other real records.

Usage: python eval/build_corpus.py [--out eval/corpus] [--data eval/data/records.jsonl.gz] [--cida 900]

By default the records come from the committed copy ``eval/data/records.jsonl.gz`` (written by
``eval/data/make_data.py``); ``--data`` may also name a folder of the original devaid ``*.jsonl`` files.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "eval" / "corpus"
DEFAULT_DATA = ROOT / "eval" / "data" / "records.jsonl.gz"
SEEDS = ROOT / "corpus"
SUBDIR = "devaid"
MIN_CHARS = 200
DEFAULT_CIDA = 900
MARKER = ".sources.jsonl"
REPORTS_DIR = "reports"
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
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def committed_records(path: Path = DEFAULT_DATA) -> list[dict[str, Any]]:
    """All lines of the committed data file: ``{"use": "corpus"|"report", "dataset": stem, "record": {…}}``."""
    return list(_read(path))


def _records_of(data: Path, stem: str) -> Iterator[dict[str, Any]]:
    """The records of one source: a ``<stem>.jsonl`` file of a data folder, or the corpus records of
    that dataset in the committed file (kept in the order of their original file)."""
    if data.is_dir():
        yield from _read(data / f"{stem}.jsonl")
        return
    for row in _read(data):
        if row["use"] == "corpus" and row["dataset"] == stem:
            yield row["record"]


def eligible(path: Path, min_chars: int = MIN_CHARS, stem: str | None = None) -> list[dict[str, Any]]:
    """Records of one file (or of dataset ``stem`` of the committed file) with at least ``min_chars``
    of text, first of each id and of each text."""
    ids: set[str] = set()
    texts: set[str] = set()
    out = []
    for rec in (_records_of(path, stem) if stem else _read(path)):
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
        records = eligible(data_dir, min_chars, stem=stem)
        if stem.startswith("cida"):
            records = evenly(records, cida)
        for rec in records:
            name = file_name(rec["id"])
            if name in names:
                raise SystemExit(f"error: two records map to the file name {name}")
            names.add(name)
            chosen.append((stem, rec))
    return chosen


# ---------------------------------------------------------------- long PDF reports
# Each report gathers real records that are not among the corpus records; the only added words are
# headings and field labels. Records come from the committed data file (rows with "use": "report").
REPORTS: tuple[dict[str, Any], ...] = (
    {"file": "cida_indonesia_portfolio_2009.pdf", "lang": "en", "dataset": "cida_projects_2009",
     "title": "Indonesia: CIDA Project Portfolio Review 2009",
     "subtitle": "Canadian International Development Agency (CIDA). Project abstracts as published in the "
                 "CIDA Project Browser, March 2009.",
     "ids": ["CIDA-A033493-001", "CIDA-A034380-001", "CIDA-A034178-001", "CIDA-A031866-001",
             "CIDA-A034177-001", "CIDA-A033040-001", "CIDA-A033181-001", "CIDA-A033163-001",
             "CIDA-A033048-001", "CIDA-A033104-001", "CIDA-A033106-001", "CIDA-A032768-001",
             "CIDA-A032936-001", "CIDA-A032800-001", "CIDA-A030584-002", "CIDA-A032683-002"]},
    {"file": "cida_hiv_aids_africa_review_2009.pdf", "lang": "en", "dataset": "cida_projects_2009",
     "title": "HIV/AIDS in Africa: CIDA Portfolio Review 2009",
     "subtitle": "Canadian International Development Agency (CIDA). Project abstracts as published in the "
                 "CIDA Project Browser, March 2009.",
     "ids": ["CIDA-A032294-001", "CIDA-A031934-002", "CIDA-A030136-001", "CIDA-A030139-001",
             "CIDA-A032228-001", "CIDA-A032227-001", "CIDA-A031523-003", "CIDA-A033520-001",
             "CIDA-A032499-001", "CIDA-A032643-001", "CIDA-A032419-001", "CIDA-A032820-001",
             "CIDA-A031070-001", "CIDA-M012550-001"]},
    {"file": "pnud_haiti_rapport_projets.pdf", "lang": "fr", "dataset": "undp-2014", "country": "Haïti",
     "title": "Haïti : portefeuille de projets du PNUD",
     "subtitle": "Programme des Nations Unies pour le développement (PNUD). Descriptions des projets et de "
                 "leurs produits publiées sur open.undp.org (2012-2014).",
     "ids": ["00040860", "00041820", "00046927", "00047220", "00047774", "00049994", "00050968",
             "00057023", "00057026", "00059200", "00059235", "00060216", "00060787", "00060789",
             "00060857", "00061251", "00069083", "00071231", "00076471", "00078703", "00078903",
             "00078904", "00079220"]},
    {"file": "pnud_madagascar_rapport_projets.pdf", "lang": "fr", "dataset": "undp-2014", "country": "Madagascar",
     "title": "Madagascar : portefeuille de projets du PNUD",
     "subtitle": "Programme des Nations Unies pour le développement (PNUD). Descriptions des projets et de "
                 "leurs produits publiées sur open.undp.org (2012-2014).",
     "ids": ["00046973", "00049755", "00049756", "00049833", "00050000", "00050237", "00050441",
             "00056997", "00058335", "00059652", "00059663", "00059664", "00059673", "00060040",
             "00060679", "00061027", "00063836", "00064808", "00064861", "00064869", "00068763",
             "00072065", "00072164"]},
)
_LABELS = {
    "en": {"summary": "Summary", "projects": "Projects", "intro": "This review covers {n} projects.",
           "country": "Country", "agency": "Executing agency", "sector": "Sector", "period": "Period",
           "budget": "Maximum CIDA contribution", "status": "Status", "donor": "Donor", "page": "Page"},
    "fr": {"summary": "Résumé", "projects": "Projets", "intro": "Ce rapport présente {n} projets.",
           "number": "Numéro de projet", "country": "Pays", "org": "Agence", "description": "Description du projet",
           "outputs": "Produits", "page": "Page"},
}


def _report_records(data: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of one report, in the order of its ``ids`` (UNDP: the project with its ``outputs``)."""
    rows = [r["record"] for r in _read(data) if r["use"] == "report" and r["dataset"] == spec["dataset"]]
    by_id = {r["id"]: r for r in rows}
    out = []
    for rid in spec["ids"]:
        if spec["dataset"] == "undp-2014":
            outputs = sorted((r for r in rows if r["id"].startswith(rid + "/out-")), key=lambda r: r["id"])
            project = by_id.get(rid)
            title = (project or outputs[0])["title"]
            out.append({"id": rid, "title": title, "text": project["text"] if project else "",
                        "org": (project or outputs[0]).get("org"), "outputs": [o["text"] for o in outputs]})
        else:
            out.append(by_id[rid])
    return out


def _years(rec: dict[str, Any]) -> str:
    start, end = rec.get("start_year"), rec.get("end_year")
    return f"{start}–{end}" if start and end else str(start or end or "")


def _esc(text: str) -> str:
    return " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_report(spec: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    """The PDF bytes of one report (reportlab, invariant mode: the same input gives the same bytes)."""
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import ListFlowable, ListItem, PageBreak, Paragraph, SimpleDocTemplate, Spacer

    lab = _LABELS[spec["lang"]]
    styles = getSampleStyleSheet()
    body, h1, h2 = styles["BodyText"], styles["Heading1"], styles["Heading2"]
    story: list[Any] = [Spacer(1, 6 * cm), Paragraph(_esc(spec["title"]), styles["Title"]), Spacer(1, 1 * cm),
                        Paragraph(_esc(spec["subtitle"]), body), PageBreak()]
    story += [Paragraph(lab["summary"], h1), Paragraph(lab["intro"].format(n=len(records)), body)]
    items = []
    for rec in records:
        if spec["lang"] == "en":
            parts = [_esc(rec["title"])]
            budget = rec.get("budget")
            if isinstance(budget, (int, float)) and budget > 0:
                parts.append(f"{lab['budget']}: {round(budget):,} {rec.get('currency') or ''}".rstrip())
            if rec.get("donor"):
                parts.append(f"{lab['donor']}: {_esc(rec['donor'])}")
            if _years(rec):
                parts.append(f"{lab['period']}: {_years(rec)}")
            line = "; ".join(parts)
        else:
            line = f"{_esc(rec['title'])} ({lab['number'].lower()} {rec['id']})"
        items.append(ListItem(Paragraph(line, body)))
    story += [ListFlowable(items, bulletType="1"), PageBreak(), Paragraph(lab["projects"], h1)]
    for n, rec in enumerate(records, 1):
        story.append(Paragraph(f"{n}. {_esc(rec['title'])}", h2))
        if spec["lang"] == "en":
            fields = [("country", rec.get("country")), ("agency", rec.get("executing_agency")),
                      ("sector", rec.get("sectors")), ("period", _years(rec)), ("status", rec.get("status"))]
            budget = rec.get("budget")
            if isinstance(budget, (int, float)) and budget > 0:
                fields.append(("budget", f"{round(budget):,} {rec.get('currency') or ''}".rstrip()))
            for key, value in fields:
                if value:
                    story.append(Paragraph(f"<b>{lab[key]}:</b> {_esc(value)}", body))
            story.append(Spacer(1, 0.2 * cm))
            for para in str(rec["text"]).split("\n"):
                if para.strip():
                    story.append(Paragraph(_esc(para), body))
        else:
            story.append(Paragraph(f"<b>{lab['number']} :</b> {rec['id']}", body))
            story.append(Paragraph(f"<b>{lab['country']} :</b> {_esc(spec['country'])}", body))
            if rec.get("org"):
                story.append(Paragraph(f"<b>{lab['org']} :</b> {_esc(rec['org'])}", body))
            if rec["text"].strip():
                story += [Paragraph(f"<b>{lab['description']}</b>", body), Paragraph(_esc(rec["text"]), body)]
            if rec["outputs"]:
                story.append(Paragraph(f"<b>{lab['outputs']}</b>", body))
                story.append(ListFlowable([ListItem(Paragraph(_esc(o), body)) for o in rec["outputs"]],
                                          bulletType="bullet", start="•"))
        story.append(Spacer(1, 0.4 * cm))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 9)
        canvas.drawCentredString(A4[0] / 2, 1.2 * cm, f"{lab['page']} {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, title=spec["title"], author="", subject="",
                            creator="eval/build_corpus.py", invariant=1, leftMargin=2.2 * cm, rightMargin=2.2 * cm,
                            topMargin=2 * cm, bottomMargin=2.2 * cm)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def build_reports(out: Path, data: Path = DEFAULT_DATA) -> list[dict[str, Any]]:
    """Write ``out/reports/*.pdf``; returns their provenance rows."""
    (out / REPORTS_DIR).mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in REPORTS:
        records = _report_records(data, spec)
        rel = f"{REPORTS_DIR}/{spec['file']}"
        (out / rel).write_bytes(render_report(spec, records))
        rows.append({"file": rel, "id": spec["file"], "dataset": spec["dataset"],
                     "records": [r["id"] for r in records]})
    return rows


def build(out: Path = DEFAULT_OUT, data_dir: Path = DEFAULT_DATA, cida: int = DEFAULT_CIDA,
          min_chars: int = MIN_CHARS, seeds: Path = SEEDS, reports: bool = True) -> dict[str, int]:
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
    if reports:
        report_rows = build_reports(out, data_dir if data_dir.is_file() else DEFAULT_DATA)
        counts["reports"] = len(report_rows)
        provenance += report_rows
    with (out / MARKER).open("w", encoding="utf-8") as fh:
        for row in provenance:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder to write (replaced)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="committed records file (default) or a folder of the devaid *.jsonl files")
    parser.add_argument("--cida", type=int, default=DEFAULT_CIDA, help="number of CIDA records to sample")
    parser.add_argument("--min-chars", type=int, default=MIN_CHARS, help="shortest record text kept")
    parser.add_argument("--no-reports", action="store_true", help="do not write the PDF reports")
    args = parser.parse_args(argv)
    if not args.data.exists():
        sys.exit(f"error: data not found: {args.data}")
    counts = build(args.out, args.data, args.cida, args.min_chars, reports=not args.no_reports)
    total = sum(counts.values())
    detail = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"wrote {total} documents to {args.out} ({detail})")


if __name__ == "__main__":
    main()
