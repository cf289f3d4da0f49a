"""Nothing lost, nothing let in: bad files, bad questions, damaged indexes, crashes, full disks, two writers.

Fast parts use the deterministic ``HashEmbedder``; parts whose behaviour depends on the model or that drive the
real ``aidsearch`` command use the bundled model. Long forms are marked ``full`` (``make test-all``).
Measured figures are written to ``test-output/reliability/*.json`` (they feed docs/RELIABILITY.md).
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings as hsettings, strategies as st

from dataclasses import replace

from aidsearch.answer import MESSAGES, AnswerModels, AnswerPolicy, compose
from aidsearch.api import Aidsearch, open_index
from aidsearch.chunk import passage_sentences
from aidsearch.config import load_settings
from aidsearch.embed import HashEmbedder
from aidsearch.errors import AidsearchError, IndexCorruptError, IndexMismatchError, IndexMissingError, QueryError
from aidsearch.query import FILTER_KEYS, parse_filters
from aidsearch.store import IndexStore
from aidsearch.types import Answer, Chunk, Hit
from browser_helpers import start_server
from conftest import ROOT
from helpers import copy_seeds, devaid_records, make_docx, make_pdf, write_records

EMB = HashEmbedder()
OUT = ROOT / "test-output" / "reliability"
LAO = "001_23892b46a24a6566.txt"
SEEDS = {p.name for p in (ROOT / "corpus").glob("*.txt")}
HUGE = 200 * 1024 * 1024


def _record(name: str, data: dict) -> None:
    """Keep a measurement for docs/RELIABILITY.md."""
    OUT.mkdir(parents=True, exist_ok=True)
    data = {"date": time.strftime("%Y-%m-%d %H:%M"), **data}
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"\n{name}: {json.dumps(data, ensure_ascii=False)}")


def _one_line(message: str) -> str:
    assert isinstance(message, str) and message.strip(), message
    assert "\n" not in message and "\r" not in message, message
    assert "Traceback" not in message
    return message


def _cli_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "aidsearch", *map(str, args)]


def _run_clis(runs: list[tuple[str, ...]], cwd: Path, timeout: float = 900) -> list[subprocess.CompletedProcess]:
    """Run several real ``aidsearch`` commands at once (each loads the model) and collect them in order."""
    procs = [subprocess.Popen(_cli_cmd(*args), cwd=cwd, env=_cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in runs]
    done = []
    for args, proc in zip(runs, procs):
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def _error_line(proc: subprocess.CompletedProcess | tuple[int, str, str]) -> str:
    """The one ``error: ...`` line of a failed command (progress bars may precede it on stderr)."""
    code, err = (proc.returncode, proc.stderr) if hasattr(proc, "returncode") else (proc[0], proc[2])
    assert code not in (0, None), err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert sum(ln.startswith("error: ") for ln in lines) == 1, err
    return lines[-1]


@pytest.fixture()
def cli(monkeypatch, capsys):
    """The real ``aidsearch`` command line run in-process, with a given embedder instead of loading the model."""

    def run(embedder, *args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("aidsearch.embed.load_embedder", lambda settings: embedder)
        monkeypatch.setattr("aidsearch.api.load_embedder", lambda settings: embedder)
        from aidsearch.cli import main

        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _sources(index_dir: Path) -> set[str]:
    return set(IndexStore(index_dir).read_manifest()["documents"])


def _leftovers(index_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(index_dir).iterdir() if p.name.startswith((".gen-", ".CURRENT.tmp")))


# ============================================================================ bad input files


def _encrypted_pdf(path: Path) -> None:
    from pypdf import PdfWriter

    make_pdf(path, ["Confidential budget of the Niger irrigation scheme: 3,100,000 EUR."])
    writer = PdfWriter(clone_from=io.BytesIO(path.read_bytes()))
    writer.encrypt("secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    path.write_bytes(buf.getvalue())


def _zip_bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document>" + "A" * 60_000_000 + "</w:document>")


def _sparse(path: Path, size: int = HUGE) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)  # a hole: 200 MB long, nothing written


HTML_WITH_SCRIPTS = """<!doctype html><html><head><title>Mauritania fisheries project</title>
<script>alert("pwned"); document.cookie = "stolen";</script><style>body{display:none}</style></head>
<body onload="alert('onload')"><h1>Mauritania fisheries project</h1>
<p>The Mauritania fisheries project equipped 57 cooperatives in Nouadhibou with cold stores.</p>
<img src=x onerror="alert('img')"><script src="https://evil.example/x.js"></script>
<p>Its total budget is 6,200,000 EUR over four years.</p></body></html>"""

MIXED = ("Projet de forages au Bénin\n\nLe projet de forages au Bénin a installé 312 pompes solaires.\n".encode("utf-8")
         + "Le financement du Sénégal couvre la moitié des coûts à Kaolack.\n".encode("cp1252"))

GOOD_TEXT = "The Chad schools programme built 12 classrooms in Abéché and trained 90 teachers.\n"


def make_bad_corpus(root: Path, outside: Path) -> tuple[set[str], dict[str, str]]:
    """The seed corpus plus every kind of bad input file; returns (good sources, {skipped source: reason part})."""
    corpus = copy_seeds(root)
    good = set(SEEDS)
    make_pdf(corpus / "good.pdf", ["Mid-term evaluation of the Sahel water programme",
                                   "The programme drilled 412 boreholes in Niger."])
    make_docx(corpus / "good.docx", "Projet d'irrigation au Sénégal",
              ["Le projet a réhabilité 1 250 hectares de périmètres irrigués dans la vallée du fleuve Sénégal."])
    (corpus / "scripts.html").write_text(HTML_WITH_SCRIPTS, encoding="utf-8")
    (corpus / "mixed.txt").write_bytes(MIXED)
    (corpus / "utf16.txt").write_bytes("Rapport sur la santé à Madagascar : 44 centres équipés.\n".encode("utf-16"))
    (corpus / "报告 évaluation ñandú.txt").write_text("Evaluation of the Mekong delta fisheries: 8 provinces.\n",
                                                       encoding="utf-8")
    (corpus / "ctl\x1b[31mred\ttab.txt").write_text(GOOD_TEXT, encoding="utf-8")
    good |= {"good.pdf", "good.docx", "scripts.html", "mixed.txt", "utf16.txt", "报告 évaluation ñandú.txt",
             "ctl\x1b[31mred\ttab.txt"}

    bad: dict[str, str] = {}
    (corpus / "empty.txt").write_bytes(b"")
    bad["empty.txt"] = "empty file"
    (corpus / "binary.pdf").write_bytes(random.Random(1).randbytes(5000))
    bad["binary.pdf"] = "not a valid PDF"
    pdf = make_pdf(root.parent / "whole.pdf", ["A complete page about wells in Mali."]).read_bytes()
    (corpus / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    bad["truncated.pdf"] = "PDF"
    (corpus / "corrupt.docx").write_bytes(b"PK\x03\x04" + random.Random(2).randbytes(3000))
    bad["corrupt.docx"] = "not a valid DOCX"
    docx_bytes = make_docx(root.parent / "whole.docx", "Title", ["Paragraph " * 200]).read_bytes()
    (corpus / "truncated.docx").write_bytes(docx_bytes[: len(docx_bytes) // 2])
    bad["truncated.docx"] = "not a valid DOCX"
    _encrypted_pdf(corpus / "encrypted.pdf")
    bad["encrypted.pdf"] = "encrypted PDF"
    _zip_bomb(corpus / "bomb.docx")
    bad["bomb.docx"] = "zip bomb"
    _sparse(corpus / "huge.txt")
    bad["huge.txt"] = "file too large (200.0 MB > 50 MB limit)"
    (corpus / "new\nline.txt").write_bytes(b"\x00\x01\x02 binary junk " * 50)
    bad["new\\nline.txt"] = "binary file"
    (corpus / os.fsdecode(b"caf\xe9 latin1-name.txt")).write_text(GOOD_TEXT.replace("Chad", "Togo"), encoding="utf-8")
    bad["caf\\xe9 latin1-name.txt"] = "file name is not valid UTF-8"
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text("Outside secret: the vault code is 4417.\n", encoding="utf-8")
    (outside / "dir").mkdir(exist_ok=True)
    (outside / "dir" / "also-secret.txt").write_text("Another outside secret 9931.\n", encoding="utf-8")
    os.symlink(outside / "secret.txt", corpus / "escape.txt")
    bad["escape.txt"] = "symbolic link to a file outside the corpus folder"
    os.symlink("../" * 12 + "etc/passwd", corpus / "passwd.txt")
    bad["passwd.txt"] = "symbolic link to a file outside the corpus folder"
    os.symlink(outside / "missing.txt", corpus / "dangling.txt")
    bad["dangling.txt"] = "broken symbolic link"
    os.symlink(outside / "dir", corpus / "linked-dir")  # a folder link is never followed
    bad["linked-dir"] = "symbolic link to a folder outside the corpus folder"
    os.symlink(corpus / "good.pdf", corpus / "inside-link.pdf")  # inside the corpus: same text as good.pdf
    bad["inside-link.pdf"] = "same text as"
    return good, bad


def _check_report(report, good: set[str], bad: dict[str, str]) -> None:
    skipped = {s.source: s.reason for s in report.skipped}
    assert set(skipped) == set(bad), sorted(skipped)
    for source, part in bad.items():
        _one_line(skipped[source])
        _one_line(source)
        assert part in skipped[source], (source, skipped[source])
    assert report.documents == len(good)


@pytest.mark.unit
def test_bad_files_are_skipped_with_one_line_and_the_rest_is_indexed(tmp_path, monkeypatch):
    good, bad = make_bad_corpus(tmp_path / "corpus", tmp_path / "outside")
    read: list[str] = []
    real_read_bytes = pathlib.Path.read_bytes

    def spy(self):
        read.append(self.name)
        return real_read_bytes(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", spy)
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    t0 = time.perf_counter()
    # the corpus given through "..", as an absolute path: sources stay relative to it
    report = open_index(settings=settings, embedder=EMB, create=True,
                        corpus=(tmp_path / "corpus" / ".." / "corpus").absolute()).created
    seconds = time.perf_counter() - t0
    assert "huge.txt" not in read  # refused by its size, never read
    _check_report(report, good, bad)
    assert _sources(settings.index_dir) == good  # nothing lost
    assert all(".." not in s and not s.startswith("/") for s in _sources(settings.index_dir))

    app = Aidsearch(settings, EMB)
    docs = {d.source: d for d in app.documents()}
    assert "alert" not in docs["scripts.html"].text and "stolen" not in docs["scripts.html"].text
    assert "57 cooperatives" in docs["scripts.html"].text and "6,200,000 EUR" in docs["scripts.html"].text
    mixed = docs["mixed.txt"].text
    assert "Bénin" in mixed and "Sénégal" in mixed and "Ã" not in mixed
    assert "Madagascar" in docs["utf16.txt"].text
    for query, source in (("412 boreholes Niger", "good.pdf"), ("1 250 hectares", "good.docx"),
                          ("57 cooperatives Nouadhibou", "scripts.html"), ("312 pompes Bénin", "mixed.txt"),
                          ("Mekong delta fisheries", "报告 évaluation ñandú.txt"),
                          ("Chad schools Abéché", "ctl\x1b[31mred\ttab.txt")):
        assert source in {h.chunk.source for h in app.search(query, k=3).hits}, query
    for secret in ("vault code 4417", "outside secret 9931", "Niger irrigation scheme confidential"):
        assert all("secret" not in h.chunk.text.lower() and "confidential" not in h.chunk.text.lower()
                   for h in app.search(secret, k=10).hits)

    again = app.update()  # the next run: nothing rewritten, nothing lost, same reasons
    assert not again.written and again.documents == len(good)
    _check_report(again, good, bad)
    _record("bad-files-build-index", {"files": len(good) + len(bad), "indexed": len(good), "skipped": len(bad),
                                      "seconds": round(seconds, 2),
                                      "reasons": dict(sorted((s.source, s.reason) for s in report.skipped))})


@pytest.mark.unit
def test_bad_files_through_the_index_command(tmp_path, cli):
    good, bad = make_bad_corpus(tmp_path / "corpus", tmp_path / "outside")
    code, out, err = cli(EMB, "index", tmp_path / "corpus", "--index-dir", tmp_path / "index")
    assert code == 0, err
    assert "Traceback" not in err
    skip_lines = [ln for ln in err.splitlines() if ln.startswith("skipped ")]
    assert len(skip_lines) == len(bad), err  # one line per skipped file, even for names with a newline
    assert f"{len(good)} documents" in out and f"{len(bad)} skipped" in out
    code, out, err = cli(EMB, "index", tmp_path / "corpus", "--index-dir", tmp_path / "index2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["documents"] == len(good)
    assert {s["source"] for s in data["skipped"]} == set(bad)


def _stage_bad_uploads(stage: Path) -> dict[str, str | None]:
    """Files as a browser would hand them over; value = expected rejection part, None = accepted."""
    stage.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}
    (stage / "empty.txt").write_bytes(b"")
    expected["empty.txt"] = "empty file"
    (stage / "binary.pdf").write_bytes(random.Random(3).randbytes(4000))
    expected["binary.pdf"] = "not a PDF"
    pdf = make_pdf(stage / "whole.pdf", ["Some page about the Mali wells, 77 of them."]).read_bytes()
    (stage / "whole.pdf").unlink()
    (stage / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    expected["truncated.pdf"] = "PDF"
    (stage / "corrupt.docx").write_bytes(b"PK\x03\x04garbage" * 100)
    expected["corrupt.docx"] = "not a DOCX"
    _encrypted_pdf(stage / "encrypted.pdf")
    expected["encrypted.pdf"] = "encrypted PDF"
    _zip_bomb(stage / "bomb.docx")
    expected["bomb.docx"] = "zip bomb"
    _sparse(stage / "huge.pdf")
    expected["huge.pdf"] = "file too large (200.0 MB; the limit is 50 MB)"
    (stage / "elf.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(200))
    expected["elf.txt"] = "not a text file"
    (stage / "scripts.html").write_text(HTML_WITH_SCRIPTS, encoding="utf-8")
    expected["scripts.html"] = None
    (stage / "mixed.txt").write_bytes(MIXED)
    expected["mixed.txt"] = None
    (stage / "报告 évaluation.txt").write_text("Evaluation of the Mekong delta fisheries: 8 provinces.\n", "utf-8")
    expected["报告 évaluation.txt"] = None
    (stage / "ctl\x1b[31m.txt").write_text(GOOD_TEXT, encoding="utf-8")
    expected["ctl\x1b[31m.txt"] = None
    make_docx(stage / "good.docx", "Projet d'irrigation au Sénégal", ["Le projet a réhabilité 1 250 hectares."])
    expected["good.docx"] = None
    return expected


@pytest.mark.unit
def test_bad_uploads_each_get_one_line_and_the_rest_is_indexed(tmp_path, monkeypatch):
    import html as html_lib

    from aidsearch.web import UPLOAD_FOLDER, Page

    settings = load_settings(corpus_dir=copy_seeds(tmp_path / "corpus"), index_dir=tmp_path / "index")
    open_index(settings=settings, embedder=EMB, create=True)
    engine = Aidsearch(settings, EMB)
    expected = _stage_bad_uploads(tmp_path / "stage")
    read: list[str] = []
    real_read_bytes = pathlib.Path.read_bytes
    monkeypatch.setattr(pathlib.Path, "read_bytes", lambda self: (read.append(self.name), real_read_bytes(self))[1])
    t0 = time.perf_counter()
    lines = Page(engine).add_files([str(p) for p in sorted((tmp_path / "stage").iterdir())], "en")
    seconds = time.perf_counter() - t0
    assert "huge.pdf" not in read
    assert len(lines) == len(expected)
    rows = {}
    for line in lines:
        assert "\n" not in line
        m = re.fullmatch(r'<li class="(as-ok|as-bad)"><b>(.*?)</b>: (.*)</li>', line)
        assert m, line
        rows[html_lib.unescape(m.group(2))] = (m.group(1), html_lib.unescape(m.group(3)))
    assert set(rows) == set(expected)
    for name, part in expected.items():
        status, message = rows[name]
        if part is None:
            assert status == "as-ok" and message == "added and indexed", (name, message)
        else:
            assert status == "as-bad" and message.startswith("rejected: ") and part in message, (name, message)
    uploads = Path(settings.corpus_dir) / UPLOAD_FOLDER
    saved = {p.name for p in uploads.iterdir()}
    assert saved == {"scripts.html", "mixed.txt", "报告 évaluation.txt", "ctl[31m.txt", "good.docx"}
    assert _sources(settings.index_dir) == SEEDS | {f"{UPLOAD_FOLDER}/{n}" for n in saved}
    assert engine.search("57 cooperatives Nouadhibou", k=1).hits[0].chunk.source == "uploads/scripts.html"
    _record("bad-files-upload", {"files": len(expected), "accepted": len(saved),
                                 "rejected": len(expected) - len(saved), "seconds": round(seconds, 2)})


@pytest.mark.unit
def test_upload_over_http_is_size_limited_and_renamed_safely(tmp_path):
    """Gradio's own upload route refuses oversize bodies; what it accepts goes through the same checks."""
    import html as html_lib

    from aidsearch.web import Page, build_app

    settings = load_settings(corpus_dir=copy_seeds(tmp_path / "corpus"), index_dir=tmp_path / "index",
                             max_upload_mb=1)
    open_index(settings=settings, embedder=EMB, create=True)
    engine = Aidsearch(settings, EMB)
    live = start_server(build_app(engine))
    try:
        with httpx.Client(base_url=live.url, timeout=120) as c:
            t0 = time.perf_counter()
            resp = c.post("/gradio_api/upload", files={"files": ("big.txt", b"a" * (12 * 1024 * 1024))})
            assert resp.status_code == 413 and time.perf_counter() - t0 < 60
            resp = c.post("/gradio_api/upload", files=[
                ("files", ("../../../../tmp/evil.txt", GOOD_TEXT.encode())),
                ("files", ("/etc/cron.d/abs.txt", GOOD_TEXT.replace("Chad", "Niger").encode())),
                ("files", ("medium.txt", b"word " * 300_000)),  # 1.4 MB: accepted by Gradio, over our 1 MB
                ("files", ("notapdf.pdf", b"MZ\x90\x00 this is an exe")),
            ])
            assert resp.status_code == 200, resp.text
            paths = resp.json()
        assert len(paths) == 4
        lines = [html_lib.unescape(x) for x in Page(engine).add_files(paths, "en")]
    finally:
        live.stop()
    by_name = {re.search(r"<b>(.*?)</b>", ln).group(1): ln for ln in lines}
    assert "added and indexed" in by_name["evil.txt"] and "added and indexed" in by_name["abs.txt"]
    assert "file too large (1.4 MB; the limit is 1 MB)" in by_name["medium.txt"]
    assert "not a PDF" in by_name["notapdf.pdf"]
    corpus = Path(settings.corpus_dir).resolve()
    assert {p.name for p in (corpus / "uploads").iterdir()} == {"evil.txt", "abs.txt"}
    assert not Path("/tmp/evil.txt").exists() and not Path("/etc/cron.d/abs.txt").exists()


# ============================================================================ questions


@pytest.fixture(scope="module")
def seed(tmp_path_factory, embedder):
    """A real-model index of the seed corpus (built once; tests copy it before changing anything)."""
    root = tmp_path_factory.mktemp("seed")
    settings = load_settings(corpus_dir=copy_seeds(root / "corpus"), index_dir=root / "index")
    open_index(settings=settings, embedder=embedder, create=True)
    return settings


@pytest.fixture(scope="module")
def seed_app(seed, embedder):
    return Aidsearch(seed, embedder)


@pytest.fixture(scope="module")
def seed_server(seed_app):
    from aidsearch.web import build_app

    live = start_server(build_app(seed_app))
    yield live
    live.stop()


BAD_QUESTIONS = {
    "empty": ("", "the question is empty"),
    "whitespace": (" \t\n\r\u00a0\u3000 ", "the question is empty"),
    "100k characters": (("budget " * 15_000)[:100_000], "the question is too long (100,000 characters; at most 2,000)"),
    "punctuation": ("?!... ;:—«»¿¡ …‽ ()[]{}", "the question has no words to search for"),
    "symbols and emoji": ("🙂🙂 ★ → ©", "the question has no words to search for"),
    "control characters": ("\x00\x01\x02\x1b", "the question has no words to search for"),
}
OTHER_LANGUAGES = {
    "chinese": "老挝卫生项目的总预算是多少？",
    "arabic": "ما هي الميزانية الإجمالية لمشروع الصحة في لاوس؟",
    "russian": "Каков общий бюджет программы здравоохранения в Лаосе?",
    "japanese": "コソボの病院はどこですか",
    "hindi": "कोसोवो परियोजना कितने समय तक चलती है?",
    "mixed scripts and code": "LAO/027 预算 бюджет ميزانية",
    "greek": "Ποιος είναι ο συνολικός προϋπολογισμός;",
}
BAD_FILTERS = {
    "unknown field": (["colour=red"], "unknown filter 'colour'"),
    "no equals sign": (["country"], "malformed filter 'country'"),
    "no key": (["=Laos"], "malformed filter '=Laos'"),
    "no value": (["country="], "malformed filter 'country='"),
    "bad year": (["year=19th century"], "bad year filter '19th century'"),
    "bad year range": (["year=2014-"], "bad year filter '2014-'"),
}


def _check_answer(answer: Answer) -> None:
    """Either a real answer whose [n] markers all map to citations, or the plain 'no answer' message."""
    assert answer.language in ("en", "fr")
    if not answer.found:
        assert answer.text == MESSAGES[answer.language]["none"] and answer.citations == ()
        return
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert markers == set(range(1, len(answer.citations) + 1))
    for c in answer.citations:
        for s, e in c.sentences:
            assert 0 <= s < e <= len(c.hit.chunk.text)


@pytest.mark.model
@pytest.mark.parametrize("case", list(BAD_QUESTIONS))
def test_bad_questions_facade(seed_app, case):
    question, message = BAD_QUESTIONS[case]
    for call in (seed_app.ask, seed_app.search):
        with pytest.raises(QueryError) as err:
            call(question)
        assert _one_line(str(err.value)) == message


@pytest.mark.model
@pytest.mark.parametrize("case", list(OTHER_LANGUAGES))
def test_other_languages_answer_or_say_no_answer(seed_app, case):
    question = OTHER_LANGUAGES[case]
    _check_answer(seed_app.ask(question))
    _check_answer(seed_app.ask(question, filters={"lang": "fr"}))
    assert all(h.rank >= 1 for h in seed_app.search(question, k=3).hits)


@pytest.mark.model
def test_filters_that_match_nothing_or_do_not_exist(seed_app):
    answer = seed_app.ask("What is the total budget?", filters={"country": "Atlantis"})
    assert not answer.found and answer.filters == {"country": ["Atlantis"]}
    assert seed_app.search("budget", filters=["funder=Nobody at all", "year=1850-1860"]).hits == ()
    for case, (filters, message) in BAD_FILTERS.items():
        for call in (seed_app.ask, seed_app.search):
            with pytest.raises(QueryError) as err:
                call("What is the total budget?", filters=filters)
            assert message in _one_line(str(err.value)), case
    with pytest.raises(QueryError, match="unknown filter 'colour'"):
        seed_app.ask("budget", filters={"colour": "red"})


@pytest.mark.model
def test_bad_questions_command_line(seed, embedder, cli):
    idx = str(seed.index_dir)
    for case, (question, message) in BAD_QUESTIONS.items():
        for command in ("ask", "search"):
            result = cli(embedder, command, question, "--index-dir", idx)
            assert _error_line(result) == f"error: {message}", case
            assert result[1] == ""
    for case, (filters, message) in BAD_FILTERS.items():
        args = [a for f in filters for a in ("--filter", f)]
        result = cli(embedder, "ask", "What is the total budget?", *args, "--index-dir", idx)
        assert message in _error_line(result), case
    for case, question in OTHER_LANGUAGES.items():
        code, out, err = cli(embedder, "ask", question, "--index-dir", idx, "--json")
        assert code == 0 and "error" not in err and "Traceback" not in err, (case, err)
        data = json.loads(out)
        assert data["found"] in (True, False) and data["answer"]
    code, out, err = cli(embedder, "ask", "What is the total budget?", "--filter", "country=Atlantis",
                         "--index-dir", idx)
    assert code == 0 and out.strip() == "No answer found in the indexed documents."


@pytest.mark.model
@pytest.mark.slow
def test_bad_questions_real_command(seed, tmp_path):
    """The same through the installed command in separate processes (one line on stderr, exit code 1)."""
    idx = str(seed.index_dir)
    runs = [("ask", BAD_QUESTIONS["100k characters"][0], "--index-dir", idx),
            ("ask", OTHER_LANGUAGES["chinese"], "--index-dir", idx, "--json"),
            ("search", "budget", "--filter", "year=soon", "--index-dir", idx),
            ("ask", "budget", "--filter", "colour=red", "--index-dir", idx)]
    big, chinese, bad_year, colour = _run_clis(runs, tmp_path)
    assert _error_line(big) == "error: " + BAD_QUESTIONS["100k characters"][1] and big.stdout == ""
    assert chinese.returncode == 0 and json.loads(chinese.stdout)["answer"], chinese.stderr
    assert "bad year filter 'soon'" in _error_line(bad_year)
    assert "unknown filter 'colour'" in _error_line(colour)


@pytest.mark.model
def test_bad_questions_http(seed_server):
    with httpx.Client(base_url=seed_server.url, timeout=120) as c:
        for case, (question, message) in BAD_QUESTIONS.items():
            for path, key in (("/api/ask", "question"), ("/api/search", "query")):
                resp = c.post(path, json={key: question})
                assert resp.status_code == 400, (case, resp.text[:200])
                assert _one_line(resp.json()["error"]) == message
        for case, (filters, message) in BAD_FILTERS.items():
            if case in ("no equals sign", "no key", "no value"):
                continue  # key=value strings are a command-line form; JSON filters are objects
            key, _, value = filters[0].partition("=")
            resp = c.post("/api/ask", json={"question": "budget", "filters": {key: value}})
            assert resp.status_code == 400 and message in _one_line(resp.json()["error"]), case
        for body in ({"question": "budget", "filters": ["country=Laos"]}, {"question": ["a", "b"]},
                     {"question": "budget", "filters": {"country": {"nested": 1}}}, {"question": None},
                     {"question": "budget", "k": "many"}):
            resp = c.post("/api/ask", json=body)
            assert resp.status_code == 400, body
            _one_line(resp.json()["error"])
        for case, question in OTHER_LANGUAGES.items():
            resp = c.post("/api/ask", json={"question": question})
            assert resp.status_code == 200, (case, resp.text[:200])
            data = resp.json()
            assert data["found"] in (True, False) and data["answer"]
        data = c.post("/api/ask", json={"question": "budget", "filters": {"country": "Atlantis"}}).json()
        assert data["found"] is False and data["citations"] == []


# ============================================================================ damaged, foreign or vanished index


def _damage(index_dir: Path, how: str) -> None:
    """Put the index in ``index_dir`` in one of the bad states."""
    store = IndexStore(index_dir)
    gen = store.current()
    if how == "missing":
        shutil.rmtree(index_dir)
    elif how == "empty folder":
        shutil.rmtree(index_dir)
        index_dir.mkdir()
    elif how == "only a half-written generation":
        os.rename(gen, index_dir / ".gen-000002.tmp-999")
        (index_dir / "CURRENT").unlink()
    elif how == "CURRENT points nowhere":
        (index_dir / "CURRENT").write_text("gen-000042")
    elif how == "CURRENT is garbage":
        (index_dir / "CURRENT").write_bytes(b"\x00\xff../../etc")
    elif how == "files missing":
        (gen / "chunks.jsonl").unlink()
        (gen / "index.faiss").unlink()
    elif how == "file truncated":
        data = (gen / "index.faiss").read_bytes()
        (gen / "index.faiss").write_bytes(data[: len(data) // 3])
    elif how == "manifest broken":
        (gen / "manifest.json").write_text('{"format": 1, "chunks": ')
    elif how == "other format":
        m = json.loads((gen / "manifest.json").read_text())
        (gen / "manifest.json").write_text(json.dumps({**m, "format": 2}))
    elif how == "other model":
        m = json.loads((gen / "manifest.json").read_text())
        m["model"] = {**m["model"], "name": "someone/other-model", "fingerprint": "0123456789abcdef"}
        (gen / "manifest.json").write_text(json.dumps(m))
    else:
        raise AssertionError(how)


INDEX_STATES = {
    "missing": (IndexMissingError, "no index in"),
    "empty folder": (IndexMissingError, "no index in"),
    "only a half-written generation": (IndexMissingError, "build one with `aidsearch index`"),
    "CURRENT points nowhere": (IndexMissingError, "build one with `aidsearch index`"),
    "CURRENT is garbage": (IndexMissingError, "build one with `aidsearch index`"),
    "files missing": (IndexCorruptError, "is damaged (FileNotFoundError): rebuild it with `aidsearch index --rebuild`"),
    "file truncated": (IndexCorruptError, "rebuild it with `aidsearch index --rebuild`"),
    "manifest broken": (IndexCorruptError, "is damaged (JSONDecodeError)"),
    "other format": (IndexMismatchError, "has format 2, this aidsearch reads format 1"),
    "other model": (IndexMismatchError, "built with model someone/other-model"),
}


@pytest.fixture()
def hash_index(tmp_path):
    settings = load_settings(corpus_dir=copy_seeds(tmp_path / "corpus"), index_dir=tmp_path / "index")
    open_index(settings=settings, embedder=EMB, create=True)
    return settings


@pytest.mark.unit
@pytest.mark.parametrize("how", list(INDEX_STATES))
def test_bad_index_states_facade_and_command_line(hash_index, cli, how):
    kind, message = INDEX_STATES[how]
    _damage(hash_index.index_dir, how)
    with pytest.raises(kind) as err:
        Aidsearch(hash_index, EMB)
    assert message in _one_line(str(err.value))
    for args in (("ask", "What is the total budget of LAO/027?"), ("search", "LAO/027")):
        line = _error_line(cli(EMB, *args, "--index-dir", hash_index.index_dir))
        assert line == f"error: {err.value}"
    code, out, err_text = cli(EMB, "stats", "--index-dir", hash_index.index_dir)
    assert code == 0 or _error_line((code, out, err_text))
    # a rebuild brings it back
    code, out, err_text = cli(EMB, "index", hash_index.corpus_dir, "--index-dir", hash_index.index_dir, "--rebuild")
    assert code == 0 and "index written: 5 documents" in out, err_text
    assert Aidsearch(hash_index, EMB).search("LAO/027", k=1).hits[0].chunk.source == LAO
    assert _leftovers(hash_index.index_dir) == []


@pytest.mark.unit
@pytest.mark.parametrize("how", ["files missing", "other format", "other model", "manifest broken"])
def test_plain_index_command_repairs_a_foreign_or_damaged_index(hash_index, cli, how):
    _damage(hash_index.index_dir, how)
    code, out, err = cli(EMB, "index", hash_index.corpus_dir, "--index-dir", hash_index.index_dir)
    assert code == 0 and "index written: 5 documents" in out, err
    assert "Traceback" not in err
    assert len(Aidsearch(hash_index, EMB).documents()) == 5


@pytest.mark.model
@pytest.mark.slow
def test_bad_index_states_real_command(seed, tmp_path):
    """Missing, half-written, other-version and other-model indexes through the installed command."""
    runs, expected = [], []
    for how in ("missing", "files missing", "other format", "other model"):
        target = tmp_path / how.replace(" ", "-")
        shutil.copytree(seed.index_dir, target)
        _damage(target, how)
        runs.append(("ask", "What is the total budget of LAO/027?", "--index-dir", str(target)))
        expected.append(INDEX_STATES[how][1])
    for proc, message in zip(_run_clis(runs, tmp_path), expected):
        assert message in _error_line(proc) and proc.stdout == ""


@pytest.mark.unit
def test_index_deleted_damaged_or_replaced_under_a_running_app(hash_index):
    """The web app keeps answering (or says clearly why not), never a traceback; a rebuild brings it back."""
    from aidsearch.web import Page, build_app

    engine = Aidsearch(hash_index, EMB)
    page = Page(engine)
    live = start_server(build_app(engine))
    ask = {"question": "What is the total budget of LAO/027?"}
    kosovo = next(d.id for d in engine.documents() if d.source.startswith("002"))
    try:
        with httpx.Client(base_url=live.url, timeout=60) as c:
            def check_all(expect_ok: bool) -> list[str]:
                errors = []
                for method, path, body in (("POST", "/api/ask", ask), ("POST", "/api/search", {"query": "LAO/027"}),
                                           ("GET", "/api/stats", None), ("GET", "/api/health", None),
                                           ("GET", f"/documents/{kosovo}/text", None), ("GET", "/", None)):
                    resp = c.request(method, path, json=body)
                    assert resp.status_code in ((200,) if expect_ok else (200, 404, 500, 503)), (path, resp.text[:300])
                    assert "Traceback" not in resp.text
                    if resp.status_code != 200:
                        error = resp.json()
                        errors.append(_one_line(error["error"]))
                        assert str(Path(hash_index.index_dir).resolve()) not in resp.text, resp.text
                        assert error["hint"], error
                        assert error["kind"] in ("index_corrupt", "index_mismatch", "not_found"), error
                        assert resp.status_code == {"not_found": 404}.get(error["kind"], 500), error
                reply, _ = page.answer(ask["question"], {}, {})
                assert "Traceback" not in reply and "as-answer" in reply
                return errors

            assert c.post("/api/search", json={"query": "LAO/027"}).json()["hits"][0]["source"] == LAO
            shutil.rmtree(hash_index.index_dir)  # deleted under the running app: it keeps answering from memory
            check_all(expect_ok=True)
            assert c.get("/api/stats").json()["documents"] == 5

            (Path(hash_index.corpus_dir) / "004_9edb3953203c57b8.txt").unlink()  # rebuild with other content
            (Path(hash_index.corpus_dir) / "new.txt").write_text(GOOD_TEXT, encoding="utf-8")
            open_index(settings=hash_index, embedder=EMB, create=True)
            check_all(expect_ok=True)
            assert c.get("/api/stats").json()["documents"] == 5
            assert c.post("/api/search", json={"query": "Chad schools Abéché"}).json()["hits"][0]["source"] == "new.txt"
            assert "004_9edb3953203c57b8.txt" not in {d.source for d in engine.documents()}

            for how, kind in (("files missing", "damaged"), ("other format", "format 2"),
                              ("other model", "other-model"), ("CURRENT points nowhere", None)):
                Aidsearch(hash_index, EMB).update(rebuild=True)  # a new generation appears, partly written or foreign
                _damage(hash_index.index_dir, how)
                errors = check_all(expect_ok=False)
                if kind:
                    assert errors and all(kind in e and "aidsearch index --rebuild" in e for e in errors), errors
                reply, record = page.answer(ask["question"], {}, {})
                assert ("as-error" in reply) == bool(kind)
                open_index(settings=hash_index, embedder=EMB, create=True)  # a rebuild brings it back
                check_all(expect_ok=True)
    finally:
        live.stop()


@pytest.mark.unit
def test_web_start_with_missing_or_foreign_index(tmp_path, monkeypatch, capsys):
    import importlib.util

    from aidsearch.web import ensure_index

    spec = importlib.util.spec_from_file_location("aidsearch_app_script", ROOT / "app.py")
    app_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app_module)

    monkeypatch.setattr("aidsearch.embed.load_embedder", lambda settings: EMB)
    settings = load_settings(corpus_dir=copy_seeds(tmp_path / "corpus"), index_dir=tmp_path / "index")
    open_index(settings=settings, embedder=EMB, create=True)
    _damage(settings.index_dir, "other format")
    engine = ensure_index(settings, echo=lambda _msg: None)  # a corpus is there: the index is rebuilt
    assert len(engine.documents()) == 5 and engine.stats()["generation"] == 2

    monkeypatch.setattr("aidsearch.web.build_app", lambda engine: pytest.fail("must not start"))
    for how in ("missing", "other model"):
        target = tmp_path / f"index-{how.replace(' ', '-')}"
        shutil.copytree(settings.index_dir, target)
        _damage(target, how)
        with pytest.raises(AidsearchError) as expected:
            Aidsearch(settings.with_overrides(index_dir=target), EMB)
        capsys.readouterr()
        code = app_module.main(["--index-dir", str(target), "--corpus-dir", str(tmp_path / "no-corpus")])
        err = capsys.readouterr().err
        assert code == 1
        assert _error_line((code, "", err)) == f"error: {expected.value}"


# ============================================================================ kill -9 while indexing


def _set_state(corpus: Path, new: bool, records: list[dict]) -> set[str]:
    folder = corpus / "devaid"
    shutil.rmtree(folder, ignore_errors=True)
    if not new:
        return set(SEEDS)
    write_records(folder, records)
    return SEEDS | {f"devaid/{p.name}" for p in folder.iterdir()}


def _open_and_check(settings, embedder) -> set[str]:
    """The index opens, answers, and its passages all belong to exactly its documents."""
    app = Aidsearch(settings, embedder)
    docs = {d.source for d in app.documents()}
    gen = app.retriever().gen
    assert {c.source for c in gen.chunks} == docs
    assert set(gen.manifest["documents"]) == docs
    answer = app.ask("What is the total budget of the Lao-Luxembourg Health Sector Support Programme Phase II?")
    assert answer.found and "28,400,000" in answer.text
    return docs


def _wait_for_write(index_dir: Path, proc: subprocess.Popen, limit: float) -> bool:
    """Wait until ``proc`` starts writing its generation folder (left-overs of killed runs do not count)."""
    deadline = time.monotonic() + limit
    mine = f".tmp-{proc.pid}"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if any(n.startswith(".gen-") and n.endswith(mine) for n in os.listdir(index_dir)):
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    return False


def _writing(index_dir: Path, pid: int) -> bool:
    """True while ``pid`` has its temporary generation folder (written, not yet switched to)."""
    return any(n.endswith(f".tmp-{pid}") and n.startswith(".gen-") for n in os.listdir(index_dir))


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("kills", [pytest.param(5, id="ci"), pytest.param(20, id="full", marks=pytest.mark.full)])
def test_kill_9_during_index_never_mixes_old_and_new(seed, embedder, tmp_path, kills):
    corpus = tmp_path / "corpus"
    shutil.copytree(seed.corpus_dir, corpus)
    index_dir = tmp_path / "index"
    shutil.copytree(seed.index_dir, index_dir)
    settings = seed.with_overrides(corpus_dir=corpus, index_dir=index_dir)
    records = devaid_records(4)
    states = {False: _set_state(corpus, False, records), True: _set_state(corpus, True, records)}
    current = _open_and_check(settings, embedder)
    assert current == states[False]
    rng = random.Random(int(os.environ.get("AIDSEARCH_KILL_SEED", "20240611")) + kills)
    write_starts = 20.0  # seconds from start to the write phase; measured by the "write" kills
    log = []
    t_start = time.perf_counter()
    for i in range(kills):
        target = current != states[True]
        before = current
        _set_state(corpus, target, records)
        mode = "write" if i % 2 == 0 else "random"
        t0 = time.perf_counter()
        proc = subprocess.Popen(_cli_cmd("index", corpus, "--index-dir", index_dir), cwd=tmp_path, env=_cli_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if mode == "write":  # a few milliseconds into the write phase (it lasts about 0.1 s here)
            if _wait_for_write(index_dir, proc, limit=600):
                write_starts = time.perf_counter() - t0
            delay = rng.uniform(0.0, 0.06)
        else:  # anywhere from start-up to just after the write
            delay = rng.uniform(0.2, write_starts + 0.3)
        time.sleep(delay)
        finished = proc.poll() is not None
        phase = "finished" if finished else "writing" if _writing(index_dir, proc.pid) else "before or after writing"
        proc.kill()
        proc.wait()
        at = time.perf_counter() - t0
        current = _open_and_check(settings, embedder)
        assert current in (before, states[target]), sorted(current ^ before)
        log.append({"kill": i + 1, "mode": mode, "at_seconds": round(at, 3), "phase": phase,
                    "direction": "add 4 documents" if target else "remove 4 documents",
                    "content": "new" if current == states[target] else "old"})
    t0 = time.perf_counter()
    proc = subprocess.run(_cli_cmd("index", corpus, "--index-dir", index_dir, "--json"), cwd=tmp_path, env=_cli_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout)
    target_state = states[(corpus / "devaid").exists()]
    assert _open_and_check(settings, embedder) == target_state and final["documents"] == len(target_state)
    assert _leftovers(index_dir) == []
    _record(f"kill9-{kills}", {
        "kills": kills, "old_after_kill": sum(r["content"] == "old" for r in log),
        "new_after_kill": sum(r["content"] == "new" for r in log), "mixed": 0, "failed_to_open": 0,
        "killed_while_writing": sum(r["phase"] == "writing" for r in log),
        "next_run_completed": True, "final_run_seconds": round(time.perf_counter() - t0, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1), "runs": log})


# ============================================================================ disk full


@pytest.fixture()
def small_fs(tmp_path):
    """A 12 MB tmpfs, unmounted afterwards; skipped where mounting is impossible."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("disk-full test: mounting a 12 MB tmpfs needs root")
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"disk-full test: cannot run mount ({exc})")
    if out.returncode != 0:
        pytest.skip(f"disk-full test: cannot mount a tmpfs ({out.stderr.strip() or out.returncode})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


def _fill(mnt: Path, leave: int) -> Path:
    """Fill the file system up to ``leave`` free bytes."""
    filler = mnt / "filler"
    st_ = os.statvfs(mnt)
    remaining = max(0, st_.f_bavail * st_.f_frsize - leave)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while remaining > 0:
            try:
                remaining -= os.write(fd, b"\0" * min(remaining, 1 << 20))
            except OSError:
                break
    finally:
        os.close(fd)
    return filler


@pytest.mark.unit
@pytest.mark.parametrize("leave", [48 * 1024, 0], ids=["nearly-full", "full"])
def test_disk_full_while_writing_the_index(small_fs, tmp_path, cli, leave):
    from aidsearch.errors import IndexWriteError

    settings = load_settings(corpus_dir=copy_seeds(tmp_path / "corpus"), index_dir=small_fs / "index")
    open_index(settings=settings, embedder=EMB, create=True)
    before = IndexStore(settings.index_dir).current()
    write_records(Path(settings.corpus_dir) / "devaid", devaid_records(20))
    filler = _fill(small_fs, leave)
    with pytest.raises(IndexWriteError) as err:
        Aidsearch(settings, EMB).update()
    assert isinstance(err.value, AidsearchError)
    message = _one_line(str(err.value))
    assert "No space left on device" in message and "the previous index is unchanged" in message
    assert IndexStore(settings.index_dir).current() == before and _leftovers(settings.index_dir) == []
    assert _sources(settings.index_dir) == SEEDS
    assert Aidsearch(settings, EMB).search("LAO/027", k=1).hits[0].chunk.source == LAO

    line = _error_line(cli(EMB, "index", settings.corpus_dir, "--index-dir", settings.index_dir))
    assert "No space left on device" in line and "the previous index is unchanged" in line
    assert _leftovers(settings.index_dir) == [] and _sources(settings.index_dir) == SEEDS

    from aidsearch.web import Page  # an upload through the web app: one line per file, the file not kept

    shutil.rmtree(Path(settings.corpus_dir) / "devaid")
    staged = tmp_path / "stage" / "mali.txt"
    staged.parent.mkdir()
    staged.write_text(GOOD_TEXT.replace("Chad", "Mali") * 50, encoding="utf-8")
    app = Aidsearch(settings, EMB)
    lines = Page(app).add_files([str(staged)], "en")
    assert len(lines) == 1 and "\n" not in lines[0] and 'class="as-bad"' in lines[0], lines
    assert "rejected: cannot write the index" in lines[0] and "No space left on device" in lines[0]
    assert not (Path(settings.corpus_dir) / "uploads" / "mali.txt").exists()
    assert app.search("LAO/027", k=1).hits[0].chunk.source == LAO and _leftovers(settings.index_dir) == []
    write_records(Path(settings.corpus_dir) / "devaid", devaid_records(20))

    filler.unlink()  # space again: the next run completes
    report = Aidsearch(settings, EMB).update()
    added = len(list((Path(settings.corpus_dir) / "devaid").iterdir()))
    assert report.written and report.documents == 5 + added and _leftovers(settings.index_dir) == []
    if leave == 0:  # a first index on a full disk: the same one-line error, nothing left behind
        fresh = settings.with_overrides(index_dir=small_fs / "fresh")
        filler = _fill(small_fs, 0)
        with pytest.raises(IndexWriteError, match="No space left on device"):
            open_index(settings=fresh, embedder=EMB, create=True)
        line = _error_line(cli(EMB, "index", settings.corpus_dir, "--index-dir", fresh.index_dir))
        assert "No space left on device" in line
        assert not IndexStore(fresh.index_dir).exists() and _leftovers(fresh.index_dir) == []
        filler.unlink()


@pytest.mark.model
@pytest.mark.slow
def test_disk_full_real_command(seed, small_fs, tmp_path, embedder):
    corpus = tmp_path / "corpus"
    shutil.copytree(seed.corpus_dir, corpus)
    index_dir = small_fs / "index"
    shutil.copytree(seed.index_dir, index_dir)
    settings = seed.with_overrides(corpus_dir=corpus, index_dir=index_dir)
    write_records(corpus / "devaid", devaid_records(3))
    filler = _fill(small_fs, 64 * 1024)
    t0 = time.perf_counter()
    proc = subprocess.run(_cli_cmd("index", corpus, "--index-dir", index_dir), cwd=tmp_path, env=_cli_env(),
                          capture_output=True, text=True, timeout=900)
    line = _error_line(proc)
    assert "No space left on device" in line and "the previous index is unchanged" in line
    other = [ln for ln in proc.stderr.replace("\r", "\n").splitlines()
             if ln.strip() and ln != line and not ln.startswith(("embedding passages", "reading documents"))]
    assert other == [], other  # only progress bars and the one error line
    assert _leftovers(index_dir) == []
    assert _open_and_check(settings, embedder) == SEEDS
    filler.unlink()
    assert Aidsearch(settings, embedder).update().documents == 5 + len(list((corpus / "devaid").iterdir()))
    _record("disk-full", {"filesystem": "tmpfs 12 MB", "error": line, "seconds": round(time.perf_counter() - t0, 1),
                          "previous_index_answered": True, "temp_folders_left": 0})


# ============================================================================ two writers


def _has_open(pid: int, path: Path) -> bool:
    target = str(path.resolve())
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


LOCKED = re.compile(r"^error: another process \(pid (\d+)\) is writing the index in .+; "
                    r"try again when it has finished$")


@pytest.mark.model
@pytest.mark.slow
def test_two_index_commands_at_once(seed, embedder, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(seed.corpus_dir, corpus)
    index_dir = tmp_path / "index"
    shutil.copytree(seed.index_dir, index_dir)
    settings = seed.with_overrides(corpus_dir=corpus, index_dir=index_dir)
    records = devaid_records(3)
    new = _set_state(corpus, True, records)
    args = ("index", corpus, "--index-dir", index_dir)

    # 1. someone holds the lock: a plain run is refused with the lock message, a --wait run waits, then succeeds
    store = IndexStore(index_dir)
    with store.lock():
        refused = subprocess.Popen(_cli_cmd(*args), cwd=tmp_path, env=_cli_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        waiting = subprocess.Popen(_cli_cmd(*args, "--wait", "600"), cwd=tmp_path, env=_cli_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = refused.communicate(timeout=600)
        m = LOCKED.match(_error_line(subprocess.CompletedProcess(args, refused.returncode, out, err)))
        assert m and int(m.group(1)) == os.getpid()
        deadline = time.monotonic() + 600
        while not _has_open(waiting.pid, index_dir / ".lock"):
            assert waiting.poll() is None, waiting.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.5)
        assert waiting.poll() is None  # still waiting for the lock
        assert _sources(index_dir) == SEEDS
    out, err = waiting.communicate(timeout=600)
    assert waiting.returncode == 0, err
    assert _open_and_check(settings, embedder) == new

    # 2. two runs started together, with and without --wait: never a corrupt index
    results = []
    for extra, new_state in (((), False), (("--wait", "600"), True)):
        target = _set_state(corpus, new_state, records)
        procs = _run_clis([(*map(str, args), *extra)] * 2, tmp_path)
        codes = [p.returncode for p in procs]
        for p in procs:
            if p.returncode != 0:
                assert not extra, p.stderr
                assert LOCKED.match(_error_line(p))
        assert 0 in codes
        assert _open_and_check(settings, embedder) == target
        assert _leftovers(index_dir) == []
        results.append({"wait": bool(extra), "exit_codes": codes})
    _record("two-writers", {"held_lock": {"plain": "refused with the lock message", "wait": "waited, then wrote"},
                            "together": results})


# ============================================================================ properties (hypothesis)

_WORDS = ("budget", "total", "Laos", "Kosovo", "santé", "projet", "health", "water", "wells", "28,400,000", "EUR",
          "LAO/027", "months", "156", "hospitals", "Gjilan", "durée", "the", "of", "[1]", "[2]", "[12]", "(3)")
FILTER_VALUE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
ANY_VALUE = st.one_of(FILTER_VALUE, st.none(), st.integers(-5, 3000), st.floats(allow_nan=True),
                      st.lists(st.one_of(FILTER_VALUE, st.none(), st.integers()), max_size=3), st.booleans(),
                      st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2))
ANY_KEY = st.one_of(st.sampled_from(FILTER_KEYS + ("Country", " lang ", "colour", "")), st.text(max_size=8),
                    st.integers(), st.none())


@pytest.mark.unit
@given(st.one_of(
    st.dictionaries(ANY_KEY, ANY_VALUE, max_size=4),
    st.lists(st.one_of(st.text(max_size=30), st.builds(lambda k, v: f"{k}={v}", ANY_KEY, FILTER_VALUE),
                       st.integers(), st.none()), max_size=4),
    st.text(max_size=30), st.none(), st.integers(), st.binary(max_size=10),
))
@hsettings(max_examples=400, deadline=None)
def test_parse_filters_normalizes_or_raises_query_error_only(raw):
    try:
        out = parse_filters(raw)
    except QueryError as exc:
        _one_line(str(exc))
        return
    assert set(out) <= set(FILTER_KEYS)
    for values in out.values():
        assert values and all(isinstance(v, str) and v and v == v.strip() for v in values)
    assert parse_filters([f"{k}={v}" for k, vs in out.items() for v in vs]) == out  # round trip, list form
    assert parse_filters({k: list(vs) for k, vs in out.items()}) == out  # and mapping form
    assert parse_filters(out) == out


@pytest.mark.unit
@given(st.dictionaries(st.sampled_from(FILTER_KEYS),
                       st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                                        min_size=1, max_size=15), min_size=1, max_size=3), max_size=5),
       st.integers(1990, 2030), st.integers(0, 10))
@hsettings(max_examples=300, deadline=None)
def test_valid_filters_round_trip(raw, year, span):
    raw = {k: ([f"{year}-{year + span}", str(year)] if k == "year" else v) for k, v in raw.items()}
    out = parse_filters(raw)
    assert out == {k: tuple(v) for k, v in raw.items()}
    assert parse_filters([f"{k.upper()} = {v} " for k, vs in raw.items() for v in vs]) == out


def _passage(sentences: list[list[str]]) -> str:
    return "\n".join(" ".join(words).capitalize() + "." for words in sentences)


PASSAGE = st.lists(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=12), min_size=1, max_size=6).map(_passage)


@pytest.mark.unit
@given(st.lists(st.tuples(PASSAGE, st.floats(0.0, 1.0), st.integers(0, 2)), min_size=0, max_size=6),
       st.lists(st.sampled_from(_WORDS), min_size=1, max_size=8), st.sampled_from(["en", "fr"]))
@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_citation_marker_maps_to_a_citation(passages, words, lang):
    hits = []
    for i, (text, dense, doc) in enumerate(passages):
        chunk = Chunk(f"c{i}", f"d{doc}", f"s{doc}.txt", "T", text, 0, len(text), "en")
        hits.append(Hit(chunk, 1.0 / (i + 1), i + 1, dense, float(i % 2)))
    question = " ".join(words) + " ?"
    qv = EMB.encode_queries([question])[0]

    def vectors(hit):
        return EMB.encode_passages([hit.chunk.sentence_text(s.text) for s in passage_sentences(hit.chunk.text)])

    answer = compose(question, lang, hits, qv, vectors, AnswerPolicy(min_dense=0.5, min_dense_with_terms=0.4))
    _check_answer(answer)
    n = len(answer.citations)
    assert [c.n for c in answer.citations] == list(range(1, n + 1))
    for k in range(1, n + 1):
        assert answer.citation(k).n == k
    for bad in (0, -1, n + 1):
        with pytest.raises(IndexError):
            answer.citation(bad)
    for c in answer.citations:
        assert c.sentences
        assert all(c.hit.chunk.text[s:e].strip() for s, e in c.sentences)


@pytest.fixture(scope="module")
def forced_app(tmp_path_factory):
    """A hashing-embedder index that answers everything it can (so the answer properties get exercised)."""
    root = tmp_path_factory.mktemp("forced")
    corpus = copy_seeds(root / "corpus")
    (corpus / "footnotes.txt").write_text(
        "Footnoted report on Tuvalu wells\n\nThe Tuvalu wells programme dug 31 wells [1] and trained 12 caretakers "
        "[2]. Its budget was 2,000,000 AUD [13].\n\n[1] Annual report 2019. [2] Field survey.\n", encoding="utf-8")
    settings = load_settings(corpus_dir=corpus, index_dir=root / "index")
    open_index(settings=settings, embedder=EMB, create=True)
    return Aidsearch(settings, EMB, AnswerPolicy(min_dense=-1.0, min_dense_with_terms=-1.0),
                     replace(AnswerModels.shipped(), min_probability=0.0))


@pytest.mark.unit
@given(st.lists(st.sampled_from(_WORDS + ("Tuvalu", "caretakers", "AUD", "wells", "[13]")), min_size=1, max_size=8),
       st.integers(1, 8), st.sampled_from([None, {"lang": "fr"}, {"country": "Laos"}, ["source=fo"]]))
@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_answers_from_an_index_map_to_their_documents(forced_app, words, k, filters):
    question = " ".join(words)
    assume(any(ch.isalnum() for ch in question))
    answer = forced_app.ask(question, k=k, filters=filters)
    _check_answer(answer)
    data = answer.to_dict()
    for c in data["citations"]:
        doc = forced_app.document(c["doc_id"])
        assert doc is not None and doc.source == c["source"]
        assert doc.text[c["start"]:c["end"]] == c["text"]
        assert c["highlights"] and all(0 <= s < e <= len(c["text"]) for s, e in c["highlights"])
    assert answer.citations == () or answer.citation(len(answer.citations)).n == len(answer.citations)


@pytest.mark.unit
@given(st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60),
                min_size=1, max_size=8), st.integers(16, 60))
@hsettings(max_examples=150, deadline=None)
def test_chunk_pages_match_document_pages(pages, max_tokens):
    from aidsearch.chunk import chunk_document
    from aidsearch.types import Document, Page, content_hash

    text, spans = "", []
    for n, page in enumerate(pages, 1):
        if text:
            text += "\n\n"
        spans.append(Page(n, len(text), len(text) + len(page)))
        text += page
    doc = Document(content_hash(text), "p.pdf", "T", text, "en", {}, tuple(spans))
    for c in chunk_document(doc, EMB.count_tokens, max_tokens=max_tokens, overlap=max_tokens // 5):
        assert c.text == text[c.start:c.end]
        assert c.page == doc.page_at(c.start)
        for s in passage_sentences(c.text):
            assert c.page_at(s.start) == doc.page_at(c.start + s.start)
