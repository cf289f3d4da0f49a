from __future__ import annotations

import io
import logging
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import pytest

from aidsearch.config import load_settings
from aidsearch.embed import HashEmbedder
from aidsearch.errors import IngestError
from aidsearch.indexer import IndexReport, build_index
from aidsearch.ingest import (
    SUPPORTED,
    Skipped,
    clean_text,
    guess_title,
    is_boilerplate,
    iter_corpus,
    read_docx,
    read_document,
    read_html,
    repair_mojibake,
)
from aidsearch.ingest.clean import line_width, unwrap
from aidsearch.chunk import passage_sentences
from aidsearch.store import IndexStore
from aidsearch.types import Document, content_hash

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


# ---------------------------------------------------------------- fixture builders

def make_pdf(path: Path, pages: list[list[str]], title: str | None = "Health Programme Report") -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    if title:
        c.setTitle(title)
    for lines in pages:
        y = 800
        for line in lines:
            c.drawString(72, y, line)
            y -= 18
        c.showPage()
    c.save()
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def make_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Water Supply Programme in Senegal", level=1)
    d.add_paragraph("The programme improves access to drinking water in rural Senegal.")
    d.add_heading("Key facts", level=2)
    table = d.add_table(rows=3, cols=2)
    for row, (label, value) in zip(table.rows, [("Country", "Senegal"), ("Total budget", "12 500 000 EUR"),
                                                ("Status", "Ongoing")], strict=True):
        row.cells[0].text = label
        row.cells[1].text = value
    d.add_paragraph("Second paragraph after the table.")
    d.save(str(path))


HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rural Roads Project | Agency site</title>
<style>body { color: red; } .secret-style {}</style>
<script>var trackingSecret = "do-not-index";</script></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/login">Log in</a></li>\
<li><a href="/projects">Projects</a></li></ul></nav>
<div id="cookie-banner"><p>We use cookies to improve your experience on our website. By continuing you accept them.</p>
<button>Accept all</button></div>
<main><article>
<h1>Rural Roads Project</h1>
<p>The Rural Roads Project builds and maintains feeder roads in northern Burundi so that farmers can reach markets
all year round. It also trains local contractors and district engineers in labour-intensive methods.</p>
<h2>Key facts</h2>
<table><tr><td>Country</td><td>Burundi</td></tr><tr><td>Total budget</td><td>US$ 4,000,000</td></tr></table>
<p>Maintenance committees made of villagers are set up along every rehabilitated road section, and they receive
tools and a small budget managed together with the commune administration.</p>
</article></main>
<script>document.write("another script secret")</script>
<footer>Copyright 2024 Agency. All rights reserved.</footer>
</body></html>
"""


@pytest.fixture()
def mixed_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    make_pdf(root / "report.pdf", [["Health Programme Report", "First page about Laos"], ["Second page about Kosovo"]])
    make_docx(root / "fiche.docx")
    (root / "page.html").write_text(HTML_PAGE, encoding="utf-8")
    (root / "accents.txt").write_bytes("Durée totale\n156 mois\n\nLe projet à Bamako a été financé.\n".encode("cp1252"))
    good_pdf = (root / "report.pdf").read_bytes()
    (root / "truncated.pdf").write_bytes(good_pdf[: len(good_pdf) // 2])
    (root / "binary.pdf").write_bytes(random.Random(1).randbytes(3000))
    (root / "noise.txt").write_bytes(random.Random(2).randbytes(4096))
    (root / "empty.md").write_bytes(b"")
    (root / "broken.docx").write_bytes(b"PK\x03\x04 this is not really a zip file")
    with zipfile.ZipFile(root / "bomb.docx", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document>" + " " * 30_000_000 + "</w:document>")
    return root


# ---------------------------------------------------------------- formats

def test_pdf_pages_map_to_text(tmp_path: Path) -> None:
    make_pdf(
        tmp_path / "r.pdf",
        [["Health Programme Report", "Page one speaks about Laos"],
         ["Health Programme Report", "Page two speaks about Kosovo"], [],
         ["Page four speaks about Senegal"]],
    )
    doc = read_document(tmp_path / "r.pdf", tmp_path)
    assert doc.title == "Health Programme Report"
    assert [p.number for p in doc.pages] == [1, 2, 4]
    for page, word in zip(doc.pages, ["Laos", "Kosovo", "Senegal"], strict=True):
        assert word in doc.text[page.start:page.end]
        assert doc.page_at(doc.text.index(word)) == page.number
    assert doc.text[doc.pages[0].end: doc.pages[1].start] == "\n\n"
    assert doc.text.count("Health Programme Report") == 1
    assert doc.pages[-1].end == len(doc.text)
    assert doc.id == content_hash(doc.text)
    assert doc.source == "r.pdf" and doc.lang == "en"


WRAPPED = ("It assists local governments in Sulawesi in implementing transparent government administration practices "
           "in three areas: licensing and identification cards, performance incentives, and procurement, with the "
           "Corruption Eradication Commission acting as a catalyst for the reforms of each district.")


def make_report_pdf(path: Path) -> None:
    """A report laid out as agencies publish them: paragraphs the layout wraps over several lines, a field block,
    a heading and a numbered list (reportlab flowables)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    story = [Paragraph("Islands of Integrity Programme Review", styles["Title"]),
             Paragraph("Executing agency: SNC-Lavalin International", styles["Normal"]),
             Paragraph("Sector: Public sector policy and administrative management, Democratic participation and "
                       "civil society, Environmental policy and administrative management", styles["Normal"]),
             Paragraph("Period: 2009–2014", styles["Normal"]),
             Paragraph("Maximum CIDA contribution: 11,000,000 CAD", styles["Normal"]),
             Paragraph(WRAPPED, styles["Normal"]),
             Paragraph("Results", styles["Heading2"]), Spacer(1, 12)]
    story += [Paragraph(f"{n}. {item}", styles["Normal"]) for n, item in enumerate(
        ["Licensing offices opened in twelve districts", "Performance incentives paid to 300 civil servants"], 1)]
    SimpleDocTemplate(str(path), pagesize=A4).build(story)


def test_pdf_lines_wrapped_by_the_layout_are_joined_back(tmp_path: Path) -> None:
    make_report_pdf(tmp_path / "review.pdf")
    from pypdf import PdfReader

    raw = PdfReader(str(tmp_path / "review.pdf")).pages[0].extract_text()
    assert WRAPPED not in raw.split("\n") and WRAPPED.split()[-2] in raw  # the layout wrapped it
    doc = read_document(tmp_path / "review.pdf", tmp_path)
    lines = doc.text.split("\n")
    assert WRAPPED in lines
    assert ("Sector: Public sector policy and administrative management, Democratic participation and civil "
            "society, Environmental policy and administrative management") in lines
    for line in ("Executing agency: SNC-Lavalin International", "Period: 2009–2014",
                 "Maximum CIDA contribution: 11,000,000 CAD", "Results",
                 "1. Licensing offices opened in twelve districts"):
        assert line in lines
    sentences = [s.text for s in passage_sentences(doc.text)]
    assert any(s.startswith("It assists local governments") and s.endswith("each district.") for s in sentences)
    assert doc.metadata.get("partner") != WRAPPED


def test_unwrap_joins_cut_words_and_keeps_short_lines() -> None:
    text = ("The evaluation mission visited the provincial hospitals and the district health cen-\n"
            "tres of Savannakhet between March and May, then met the ministry\n"
            "of Health in Vientiane.\n"
            "Budget total\n"
            "29 110 000 EUR\n"
            "\n"
            "Partenaire\n"
            "ministère de la Santé")
    out = unwrap(text, 85)
    assert out.split("\n")[0] == ("The evaluation mission visited the provincial hospitals and the district health "
                                  "centres of Savannakhet between March and May, then met the ministry of Health in "
                                  "Vientiane.")
    assert out.split("\n")[1:] == ["Budget total", "29 110 000 EUR", "", "Partenaire", "ministère de la Santé"]
    assert unwrap(text, 40) == text  # short lines (a fiche) are not a wrapped layout
    assert unwrap(text, 400) == text  # nor is a paragraph per line
    assert line_width([text]) > 50 and line_width(["Budget total\n29 110 000 EUR\nPays : Kosovo"] * 2) == 0


def test_pdf_errors(tmp_path: Path) -> None:
    data = make_pdf(tmp_path / "ok.pdf", [["Some text on a page about water"]])
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 2])
    (tmp_path / "fake.pdf").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt("secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    (tmp_path / "locked.pdf").write_bytes(buf.getvalue())
    make_pdf(tmp_path / "blank.pdf", [[], []], title=None)
    expected = {"cut.pdf": "not a valid PDF", "fake.pdf": "not a valid PDF", "locked.pdf": "encrypted",
                "blank.pdf": "no extractable text"}
    for name, fragment in expected.items():
        with pytest.raises(IngestError) as err:
            read_document(tmp_path / name, tmp_path)
        message = str(err.value)
        assert message.startswith(f"cannot read {name}: ") and fragment in message
        assert "\n" not in message


def test_docx_heading_paragraphs_table(tmp_path: Path) -> None:
    make_docx(tmp_path / "f.docx")
    doc = read_document(tmp_path / "f.docx", tmp_path)
    assert doc.title == "Water Supply Programme in Senegal"
    lines = doc.text.splitlines()
    assert "Key facts" in lines
    assert "Country | Senegal" in lines and "Total budget | 12 500 000 EUR" in lines
    assert doc.text.index("drinking water") < doc.text.index("Country | Senegal") < doc.text.index("Second paragraph")
    assert doc.metadata["country"] == "Senegal"
    assert doc.metadata["budget"] == 12500000.0 and doc.metadata["currency"] == "EUR"
    assert doc.metadata["status"] == "active"


def test_docx_zip_bomb_and_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with zipfile.ZipFile(tmp_path / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", "<w:document>" + "a" * 20_000_000 + "</w:document>")
    with pytest.raises(IngestError, match="zip bomb"):
        read_document(tmp_path / "bomb.docx", tmp_path)
    make_docx(tmp_path / "ok.docx")
    monkeypatch.setattr(read_docx, "MAX_UNCOMPRESSED", 1000)
    with pytest.raises(IngestError, match="expands to"):
        read_document(tmp_path / "ok.docx", tmp_path)


def test_html_drops_scripts_nav_and_cookie_banner(tmp_path: Path) -> None:
    (tmp_path / "p.html").write_text(HTML_PAGE, encoding="utf-8")
    doc = read_document(tmp_path / "p.html", tmp_path)
    assert doc.title == "Rural Roads Project"
    for junk in ("trackingSecret", "another script secret", "color: red", "cookies", "Accept all", "Log in",
                 "All rights reserved"):
        assert junk not in doc.text
    assert "feeder roads in northern Burundi" in doc.text
    assert "Maintenance committees" in doc.text
    assert "Country | Burundi" in doc.text.splitlines()
    assert doc.metadata["country"] == "Burundi"
    assert doc.metadata["budget"] == 4000000.0 and doc.metadata["currency"] == "USD"


def test_html_fallback_parser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_html, "_trafilatura_text", lambda html: "")
    (tmp_path / "p.htm").write_text(HTML_PAGE, encoding="utf-8")
    doc = read_document(tmp_path / "p.htm", tmp_path)
    assert "feeder roads" in doc.text and "Maintenance committees" in doc.text
    for junk in ("trackingSecret", "another script secret", "color: red", "We use cookies", "Log in", "Copyright"):
        assert junk not in doc.text
    assert "Country | Burundi" in doc.text.splitlines()
    assert doc.title == "Rural Roads Project"


def test_text_encodings(tmp_path: Path) -> None:
    (tmp_path / "cp.txt").write_bytes("Période d'exécution – été 2016\nLe coût total à Bamako.\n".encode("cp1252"))
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + "Programme santé Kosovo\nBudget total\n1 000 EUR\n".encode())
    (tmp_path / "u16.txt").write_bytes("Projet d'eau potable au Niger\n".encode("utf-16"))
    cp = read_document(tmp_path / "cp.txt", tmp_path)
    assert "Période d'exécution – été 2016" in cp.text and "coût total à Bamako" in cp.text
    bom = read_document(tmp_path / "bom.txt", tmp_path)
    assert not bom.text.startswith("\ufeff") and bom.title == "Programme santé Kosovo"
    assert bom.metadata["budget"] == 1000.0
    assert read_document(tmp_path / "u16.txt", tmp_path).text == "Projet d'eau potable au Niger"


def test_typographic_marks_that_lost_their_high_byte(tmp_path: Path) -> None:
    text = ("Drawing on Egypt\x19s priority areas, a \x1cCairo Agenda for Action\x1d would follow \x13 "
            "the donors\x19 and the government\x19s \x18views\x19 \x14 in 2011.\n")
    (tmp_path / "undp.txt").write_bytes(text.encode("utf-8"))
    doc = read_document(tmp_path / "undp.txt", tmp_path)
    assert "Egypt’s priority areas, a “Cairo Agenda for Action” would follow – the donors’" in doc.text
    assert "‘views’ — in 2011" in doc.text
    (tmp_path / "ctl.txt").write_bytes(b"Some text\x01\x02\x03\x04\x05 with other controls\x06\x07\x0e\x0f")
    with pytest.raises(IngestError, match="binary or undecodable content"):
        read_document(tmp_path / "ctl.txt", tmp_path)


def test_mojibake_repaired_or_dropped(tmp_path: Path) -> None:
    text = (
        "Le projet a Ã©tÃ© financÃ© par le Luxembourg.\n"
        "Câ€™est une rÃ©ussite â€“ selon lâ€™Ã©valuation.\n"
        "Ligne cassÃ\x83Â\x83 \ufffd\ufffd irrÃ©cupÃ\n"
        "Une ligne normale, déjà correcte.\n"
    )
    (tmp_path / "m.txt").write_text(text, encoding="utf-8")
    doc = read_document(tmp_path / "m.txt", tmp_path)
    assert "Le projet a été financé par le Luxembourg." in doc.text
    assert "C’est une réussite – selon l’évaluation." in doc.text
    assert "Une ligne normale, déjà correcte." in doc.text
    assert "Ã" not in doc.text and "â€" not in doc.text and "cass" not in doc.text
    for legit in ("déjà vu", "la santé\u00a0» et «\u00a0l’accès", "à\u00a0«\u00a0Santé\u00a0»", "São Tomé"):
        assert repair_mojibake(legit) == legit


def test_markdown(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(
        "# Vocational Training in Cabo Verde\n\n## Country\nCabo Verde\n\n**Total budget**\n"
        "[see fiche](http://x.org) 2 000 000 EUR\n",
        encoding="utf-8",
    )
    doc = read_document(tmp_path / "n.md", tmp_path)
    assert doc.title == "Vocational Training in Cabo Verde"
    assert "#" not in doc.text and "**" not in doc.text and "http" not in doc.text
    assert doc.metadata["country"] == "Cabo Verde" and doc.metadata["budget"] == 2000000.0


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("empty.txt", b"", "empty file"),
        ("noise.txt", random.Random(3).randbytes(2048), "binary"),
        ("nul.txt", b"some text\x00\x00\x00more", "binary"),
        ("junk.txt", b"Intranet access\nConnect with Google\n\n/\n", "no text after cleaning"),
        ("x.docx", b"not a zip at all", "not a valid DOCX"),
    ],
)
def test_unreadable_text_files(tmp_path: Path, name: str, content: bytes, fragment: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(IngestError, match=fragment):
        read_document(tmp_path / name, tmp_path)


def test_max_bytes(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("Health programme in Laos.\n" * 100, encoding="utf-8")
    with pytest.raises(IngestError, match="too large"):
        read_document(tmp_path / "big.txt", tmp_path, max_bytes=1000)
    assert read_document(tmp_path / "big.txt", tmp_path).text.startswith("Health programme")


# ---------------------------------------------------------------- corpus walking

def read_folder(root: Path) -> list[Document]:
    """Every corpus file under ``root`` read as the indexer reads it; none may be skipped."""
    skipped: list[Skipped] = []
    docs = [read_document(path, root) for path in iter_corpus(root, skipped=skipped)]
    assert skipped == []
    return docs


def index_folder(root: Path, index_dir: Path, read_workers: int = 1) -> tuple[IndexReport, list[Document]]:
    """The folder indexed (with the hashing embedder) and the documents the index holds."""
    settings = load_settings(corpus_dir=root, index_dir=index_dir, read_workers=read_workers)
    report = build_index(settings, HashEmbedder())
    return report, list(IndexStore(index_dir).load().documents.values())


def test_indexing_skips_bad_files(mixed_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aidsearch"):
        report, docs = index_folder(mixed_corpus, tmp_path / "index")
    skipped = report.skipped
    assert sorted(d.source for d in docs) == ["accents.txt", "fiche.docx", "page.html", "report.pdf"]
    reasons = {s.source: s.reason for s in skipped}
    assert set(reasons) == {"truncated.pdf", "binary.pdf", "noise.txt", "empty.md", "broken.docx", "bomb.docx"}
    assert "zip bomb" in reasons["bomb.docx"] and "empty file" in reasons["empty.md"]
    assert "binary" in reasons["noise.txt"] and "not a valid PDF" in reasons["binary.pdf"]
    for s in skipped:
        assert isinstance(s, Skipped) and "\n" not in s.reason and s.reason.startswith(f"cannot read {s.source}")
    warnings = [r.getMessage() for r in caplog.records if r.name == "aidsearch"]
    assert len(warnings) == len(skipped) and all("\n" not in w for w in warnings)
    accents = next(d for d in docs if d.source == "accents.txt")
    assert "a été financé" in accents.text and accents.lang == "fr"
    assert accents.metadata["duration_months"] == 156


def _reading_pids(monkeypatch: pytest.MonkeyPatch, folder: Path, die_on: str = "") -> None:
    """Each file read leaves the reading process's id in ``folder``, each document chunked "chunked-" and the id; a
    worker process reading ``die_on`` dies."""
    import aidsearch.indexer as indexer
    from aidsearch.ingest import corpus

    folder.mkdir()
    here, real, real_chunk = os.getpid(), corpus.read_document, indexer.chunk_document

    def read(path: Path, root: Path) -> Document:
        (folder / str(os.getpid())).touch()
        if path.name == die_on and os.getpid() != here:
            os._exit(1)
        return real(path, root)

    def chunk(doc: Document, *args: Any, **kwargs: Any) -> Any:
        (folder / f"chunked-{os.getpid()}").touch()
        return real_chunk(doc, *args, **kwargs)

    monkeypatch.setattr(corpus, "read_document", read)
    monkeypatch.setattr(indexer, "chunk_document", chunk)


def _pids(folder: Path) -> tuple[set[str], set[str]]:
    """The ids of the processes that read files and of those that chunked documents, then forgotten."""
    names = [p.name for p in folder.iterdir()]
    for p in folder.iterdir():
        p.unlink()
    return {n for n in names if n.isdigit()}, {n.split("-")[1] for n in names if n.startswith("chunked-")}


def _many_files(root: Path) -> None:
    for n in range(12):
        (root / f"record-{n:02d}.txt").write_text(f"Project {n}: {n * 7} wells dug in Mali in {2000 + n}.\n"
                                                  f"Le projet {n} a creusé {n * 7} puits au Mali.\n", encoding="utf-8")


def test_many_files_are_read_by_worker_processes_as_they_are_one_at_a_time(
        mixed_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aidsearch.ingest import corpus

    _many_files(mixed_corpus)
    (mixed_corpus / "zz-copy.txt").write_bytes((mixed_corpus / "record-03.txt").read_bytes())
    monkeypatch.setattr(corpus, "PARALLEL_FROM", 5)
    _reading_pids(monkeypatch, tmp_path / "pids")
    here = str(os.getpid())
    alone, alone_docs = index_folder(mixed_corpus, tmp_path / "alone", read_workers=1)
    assert _pids(tmp_path / "pids") == ({here}, {here})
    workers, worker_docs = index_folder(mixed_corpus, tmp_path / "workers", read_workers=2)
    read_by, chunked_by = _pids(tmp_path / "pids")
    assert here not in read_by and 1 <= len(read_by) <= 2 and chunked_by == read_by  # all in the two workers
    assert len(worker_docs) == 16 and worker_docs == alone_docs  # same texts, languages, metadata, pages, order
    assert workers.skipped == alone.skipped and len(workers.skipped) == 7
    assert "same text as record-03.txt" in {s.reason for s in workers.skipped}
    assert workers.added == alone.added and workers.chunks == alone.chunks
    assert IndexStore(tmp_path / "workers").load().chunks == IndexStore(tmp_path / "alone").load().chunks


def test_a_reading_process_that_dies_leaves_its_files_to_the_indexing_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from aidsearch.ingest import corpus

    root = tmp_path / "corpus"
    root.mkdir()
    _many_files(root)
    monkeypatch.setattr(corpus, "PARALLEL_FROM", 5)
    _reading_pids(monkeypatch, tmp_path / "pids", die_on="record-07.txt")
    with caplog.at_level(logging.WARNING, logger="aidsearch"):
        report, docs = index_folder(root, tmp_path / "index", read_workers=2)
    assert sorted(d.source for d in docs) == [f"record-{n:02d}.txt" for n in range(12)] and not report.skipped
    read_by, chunked_by = _pids(tmp_path / "pids")
    assert str(os.getpid()) in read_by and str(os.getpid()) in chunked_by
    assert any("processes reading the corpus stopped" in r.getMessage() for r in caplog.records)


def test_few_large_files_are_read_by_worker_processes_from_the_sizes_the_indexer_listed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aidsearch.ingest import corpus

    root = tmp_path / "corpus"
    root.mkdir()
    for n in range(3):
        (root / f"report-{n}.txt").write_text(f"Evaluation report {n}.\n" + f"Wells dug in region {n}. " * 40,
                                              encoding="utf-8")
    monkeypatch.setattr(corpus, "PARALLEL_FROM_BYTES", 2000)

    def no_stat(paths: Any) -> int:
        raise AssertionError("the indexer knows the sizes")

    monkeypatch.setattr(corpus, "_size", no_stat)
    _reading_pids(monkeypatch, tmp_path / "pids")
    report, docs = index_folder(root, tmp_path / "index", read_workers=2)
    read_by, chunked_by = _pids(tmp_path / "pids")
    assert len(docs) == 3 and not report.skipped
    assert str(os.getpid()) not in read_by and chunked_by == read_by
    monkeypatch.setattr(corpus, "PARALLEL_FROM_BYTES", 10**9)
    report, docs = index_folder(root, tmp_path / "small", read_workers=2)
    assert len(docs) == 3 and _pids(tmp_path / "pids") == ({str(os.getpid())}, {str(os.getpid())})


def test_duplicates_unsupported_and_missing_files(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text("Water and sanitation in Burundi.\n", encoding="utf-8")
    (root / "b.txt").write_text("Water and sanitation in Burundi.\n", encoding="utf-8")
    (root / "c.xyz").write_text("whatever", encoding="utf-8")
    report, docs = index_folder(root, tmp_path / "index")
    assert [d.source for d in docs] == ["a.txt"]
    assert {s.source: s.reason for s in report.skipped} == {"b.txt": "same text as a.txt"}
    with pytest.raises(IngestError, match="cannot read c.xyz: unsupported file type .xyz"):
        read_document(root / "c.xyz", root)
    with pytest.raises(IngestError, match="cannot read missing.txt: No such file"):
        read_document(root / "missing.txt", root)


def test_unchanged_skipped_files_are_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aidsearch.ingest import corpus

    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text("Water and sanitation in Burundi.\n", encoding="utf-8")
    (root / "b.txt").write_text("Water and sanitation in Burundi.\n", encoding="utf-8")
    (root / "c.txt").write_bytes(bytes(range(256)) * 8)
    first, _ = index_folder(root, tmp_path / "index")
    reasons = {s.source: s.reason for s in first.skipped}
    assert set(reasons) == {"b.txt", "c.txt"} and "binary" in reasons["c.txt"]
    read: list[str] = []
    real = corpus.read_document
    monkeypatch.setattr(corpus, "read_document", lambda path, root: read.append(path.name) or real(path, root))
    (root / "d.txt").write_text("Roads in Haiti.\n", encoding="utf-8")
    report, docs = index_folder(root, tmp_path / "index")
    assert read == ["d.txt"] and report.added == ("d.txt",)
    assert {s.source: s.reason for s in report.skipped} == reasons  # still reported, with the same reasons
    assert sorted(d.source for d in docs) == ["a.txt", "d.txt"]
    report, _ = index_folder(root, tmp_path / "index")
    assert read == ["d.txt"] and not report.written
    (root / "c.txt").chmod(0o600)  # a change of the file's status (not of its content) reads it again
    (root / "a.txt").unlink()  # b.txt is no longer a copy of an indexed file: it is read and indexed
    report, docs = index_folder(root, tmp_path / "index")
    assert sorted(read) == ["b.txt", "c.txt", "d.txt"]
    assert sorted(d.source for d in docs) == ["b.txt", "d.txt"] and report.embedded_chunks == 0
    assert {s.source for s in report.skipped} == {"c.txt"}


def test_files_read_by_an_earlier_reader_are_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aidsearch.ingest import corpus

    root = tmp_path / "corpus"
    root.mkdir()
    make_report_pdf(root / "review.pdf")
    (root / "a.txt").write_text("Water and sanitation in Burundi.\n", encoding="utf-8")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 not really a PDF")
    first, docs = index_folder(root, tmp_path / "index")
    assert {s.source for s in first.skipped} == {"broken.pdf"}
    entries = IndexStore(tmp_path / "index").read_manifest()["documents"]
    assert entries["review.pdf"]["read"] == corpus.reading_version(root / "review.pdf") >= 2
    assert "read" not in entries["a.txt"]
    read: list[str] = []
    real = corpus.read_document
    monkeypatch.setattr(corpus, "read_document", lambda path, root: read.append(path.name) or real(path, root))
    report, _ = index_folder(root, tmp_path / "index")
    assert read == [] and not report.written
    monkeypatch.setitem(corpus._VERSIONS, ".pdf", corpus._VERSIONS[".pdf"] + 1)  # a new way of reading PDFs
    report, docs = index_folder(root, tmp_path / "index")
    assert sorted(read) == ["broken.pdf", "review.pdf"]  # the text file is not read again
    assert report.embedded_chunks == 0  # the same text as before: nothing to embed
    assert {s.source for s in report.skipped} == {"broken.pdf"} and len(docs) == 2


def test_iter_corpus(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("outside", encoding="utf-8")
    for rel in ["b.txt", "a.PDF", "sub/c.docx", "sub/d.html", "notes.rtf", ".secret.txt", ".hidden/e.txt",
                "~$lock.docx"]:
        (root / rel).write_text("x", encoding="utf-8")
    (root / "link_out.txt").symlink_to(outside)
    (root / "link_in.md").symlink_to(root / "b.txt")
    found = [p.relative_to(root).as_posix() for p in iter_corpus(root)]
    assert found == ["a.PDF", "b.txt", "link_in.md", "sub/c.docx", "sub/d.html"]
    assert SUPPORTED == {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}


# ---------------------------------------------------------------- cleaning rules

@pytest.mark.parametrize(
    "line",
    ["Intranet access", "Connect with Google", "If you don't have a LuxDev email account", "I forgot my password",
     "JavaScript requis", "Mot de passe oublié ?", "Se connecter", "Partager sur Facebook", "Menu", "Share",
     "Skip to main content", "Aller au contenu principal", "S'abonner à la newsletter", "https://www.luxdev.lu/en",
     "/", "  • Luxaid logo", "Logo LuxDev", "Home › Projects › Laos", "Facebook | Twitter | LinkedIn",
     "Facebook Twitter LinkedIn", "Read more", "Lire la suite", "Accept all", "EN | FR", "Contact us",
     "Nous utilisons des cookies pour améliorer votre expérience de navigation.",
     "Le site web de P4H est conçu pour fonctionner au mieux avec Javascript activé. Veuillez l'activer dans votre "
     "navigateur. Si vous avez besoin d'aide, consultez https://www.enable-javascript.com/", "-", "•"],
)
def test_boilerplate_lines(line: str) -> None:
    assert is_boilerplate(line)


@pytest.mark.parametrize(
    "line",
    ["Total budget", "28,400,000 EUR", "Laos", "- Laos", "Contribution breakdown", "Objectifs", "- Country",
     "Take into account the needs of women", "Accueil des réfugiés au Tchad", "Budget total", "En exécution",
     "Status", "Partners", "Market share of local producers has grown steadily since the start of the programme.",
     "Continue with phase II activities", "Identifiant : LAO/027", "Work plan", "US", "Share of women",
     "Les axes « Accès » et « Qualité » du programme", "Connexion au réseau électrique rural"],
)
def test_content_lines_kept(line: str) -> None:
    assert not is_boilerplate(line)


def test_clean_text_structure() -> None:
    raw = ("Title of the Project\r\nProjets\r\n\r\n\r\n\r\nTitle of the Project\n"
           "Total budget   \n28\u00a0400\u00a0000 EUR\n\n\n\nSecond para\u200b.\nTitle of the Project\n")
    assert clean_text(raw) == "Title of the Project\nProjets\n\nTotal budget\n28 400 000 EUR\n\nSecond para."
    assert clean_text("Cafe\u0301 au Sénégal") == "Café au Sénégal"
    assert guess_title("Intranet access\n- Country\nTotal budget\nProject Title Here\n") == "Project Title Here"


# ---------------------------------------------------------------- seed corpus

@pytest.fixture(scope="module")
def seed_docs() -> dict[str, object]:
    return {d.source[:3]: d for d in read_folder(CORPUS)}


def test_seed_boilerplate_removed_content_kept(seed_docs: dict) -> None:
    all_text = "\n".join(d.text for d in seed_docs.values())
    for junk in ("Intranet access", "Connect with Google", "If you don't have a LuxDev email account",
                 "I forgot my password", "JavaScript requis", "enable-javascript", "Luxaid logo"):
        assert junk not in all_text
    lines001 = seed_docs["001"].text.splitlines()
    for kept in ("Total budget", "28,400,000 EUR", "Contribution breakdown", "Implementation period"):
        assert kept in lines001
    assert "- Country" in seed_docs["000"].text.splitlines() and "- Laos" in seed_docs["000"].text.splitlines()
    lines002 = seed_docs["002"].text.splitlines()
    assert "Objectifs" in lines002 and "/" not in lines002
    assert lines002.count("Appui au secteur de la santé du Kosovo - Phase II") == 1
    assert "\n\n\n" not in all_text
    assert all(line == line.rstrip() for line in all_text.splitlines())


def test_seed_titles_languages_metadata(seed_docs: dict) -> None:
    assert seed_docs["001"].title == "Lao-Luxembourg Health Sector Support Programme - Phase II"
    assert seed_docs["002"].title == "Appui au secteur de la santé du Kosovo - Phase II"
    assert seed_docs["004"].title == "Strengthening Capacity and Service Delivery of Local Administrations"
    assert seed_docs["003"].title.startswith("Mission d'expertise pour soutenir")
    assert {k: d.lang for k, d in seed_docs.items()} == {"000": "en", "001": "en", "002": "fr", "003": "fr",
                                                         "004": "en"}
    m = seed_docs["001"].metadata
    assert (m["country"], m["budget"], m["currency"]) == ("Laos", 28400000.0, "EUR")
    assert seed_docs["000"].metadata["status"] == "closed"
    assert seed_docs["002"].metadata["status"] == "active"
    assert seed_docs["003"].metadata["country"] == "Cambodia"
    assert seed_docs["004"].metadata["start"] == "2012-02"
    for d in seed_docs.values():
        assert d.id == content_hash(d.text) and d.pages == ()


def test_reading_is_deterministic() -> None:
    a, b = read_folder(CORPUS), read_folder(CORPUS)
    assert [(d.id, d.lang, d.title, d.metadata) for d in a] == [(d.id, d.lang, d.title, d.metadata) for d in b]


def test_read_error_is_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="unsupported file type"):
        read_document(tmp_path / "x.rtf", tmp_path)
    with pytest.raises(IngestError, match="cannot read missing.txt"):
        read_document(tmp_path / "missing.txt", tmp_path)
