"""Nothing let in: document and uploaded text never rendered as HTML or run, no file outside the corpus served,
upload names and types checked, sizes limited, the login guarding everything.

These do not depend on the model: the index uses the hashing embedder, with an answer policy that always
answers so that source cards (and their context view) are rendered.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import pathlib
import re
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from dataclasses import replace

from aidsearch.answer import AnswerModels, AnswerPolicy
from aidsearch.api import Aidsearch, open_index
from aidsearch.config import load_settings
from aidsearch.embed import HashEmbedder
from aidsearch.store import IndexStore
from aidsearch.types import Document, content_hash
from browser_helpers import MARKUP, MARKUP_DOC, MARKUP_QUESTION, make_corpus, start_server
from helpers import make_docx, make_pdf

pytestmark = pytest.mark.unit
EMB = HashEmbedder()
ALWAYS = AnswerPolicy(min_dense=-1.0, min_dense_with_terms=-1.0)
ALWAYS_LEARNED = replace(AnswerModels.shipped(), min_probability=0.0)
KOSOVO_FR = "002_7c5a3c9fa8d73ed7.txt"
EVIL = ('<img src=x onerror="alert(document.domain)"><script>fetch("/api/stats")</script>'
        '<a href="javascript:alert(1)">x</a>')
HTML_DOC = "scripted.html"
HTML_TEXT = """<!doctype html><html><head><title>Niger solar pumps</title>
<script>window.stolen = document.cookie; alert("from the original");</script></head>
<body onload="alert('onload')"><h1>Niger solar pumps</h1>
<p>The Niger solar pumps project installed 64 pumps in Tillabéri region villages.</p>
<p>Raw text kept by the page author: &lt;script&gt;alert("escaped in source")&lt;/script&gt; and more.</p>
</body></html>"""
CONTEXT_DOC = "context_markup.txt"
CONTEXT_TEXT = ("Gambia rice terraces report\n\n"
                + f"Paragraph before the passage with markup {EVIL} in it. " * 3 + "\n\n"
                + "The Gambia rice terraces project rehabilitated 780 hectares of lowland rice fields.\n\n"
                + f"Paragraph after the passage with more markup {EVIL} here. " * 3 + "\n")


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    corpus = make_corpus(root)
    (corpus / HTML_DOC).write_text(HTML_TEXT, encoding="utf-8")
    (corpus / CONTEXT_DOC).write_text(CONTEXT_TEXT, encoding="utf-8")
    make_docx(corpus / "fiche.docx", "Projet d'irrigation au Sénégal", ["Le projet a réhabilité 1 250 hectares."])
    make_pdf(corpus / "report.pdf", ["Mid-term evaluation of the Sahel water programme: 412 boreholes."])
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("Outside secret: the vault code is 4417.\n", encoding="utf-8")
    os.symlink(outside / "secret.txt", corpus / "leak.txt")
    (outside / "dir").mkdir()
    (outside / "dir" / "more.txt").write_text("Another outside secret 9931.\n", encoding="utf-8")
    os.symlink(outside / "dir", corpus / "leakdir")
    settings = load_settings(corpus_dir=corpus, index_dir=root / "index", max_upload_mb=1)
    report = open_index(settings=settings, embedder=EMB, create=True).created
    assert {s.source for s in report.skipped} == {"leak.txt", "leakdir"}
    return Aidsearch(settings, EMB, ALWAYS, ALWAYS_LEARNED)


def _doc(engine, source: str) -> Document:
    return next(d for d in engine.documents() if d.source == source)


# ------------------------------------------------------------------------------------------------ rendering


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.data.append(data)


SAFE_TAGS = {"div", "p", "span", "details", "summary", "mark", "a", "br", "b", "ul", "li", "dl", "dt", "dd", "h1"}
SAFE_HREF = re.compile(r"/documents/[0-9a-f]{16}(?:/text)?|/docs")


def assert_inert(fragment: str) -> str:
    """Only the app's own tags and attributes; returns the visible text."""
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in SAFE_TAGS, (tag, fragment[:300])
        for name, value in attrs:
            assert name in {"class", "href", "target", "rel"}, (tag, name)
            if name == "href":
                assert SAFE_HREF.fullmatch(value or ""), value
    return "".join(parser.data)


def test_context_view_of_a_source_card_escapes_the_document():
    from aidsearch.web import render_card

    passage = "The Gambia rice terraces project rehabilitated 780 hectares."
    text = f"Before {EVIL}\n\n{passage}\n\nAfter {EVIL} <iframe src=//evil></iframe>"
    start = text.index(passage)
    doc = Document(content_hash(text), f"<b>{EVIL}</b>.txt", f"Title {EVIL}", text, "en", {})
    cit = {"n": 1, "doc_id": doc.id, "source": doc.source, "title": doc.title, "lang": 'en"><script>x</script>',
           "page": f"<i>{EVIL}</i>", "start": start, "end": start + len(passage), "score": 0.5,
           "similarity": 0.9, "text": passage, "country": EVIL, "highlights": [[4, 30]]}
    out = render_card(cit, doc, "en")
    assert 'class="as-context"' in out and "<mark>" in out
    visible = assert_inert(out)
    assert visible.count(EVIL) >= 5  # title, source, country, page, before and after the passage: shown as text
    assert "<iframe src=//evil></iframe>" in visible
    assert "\n" not in out


def test_rendered_answers_from_the_index_are_inert(engine):
    from aidsearch.web import Page, render_error, render_stats

    page = Page(engine)
    for question, source in ((MARKUP_QUESTION, MARKUP_DOC), ("Gambia rice terraces 780 hectares", CONTEXT_DOC),
                             ("Niger solar pumps Tillabéri", HTML_DOC)):
        reply, record = page.answer(question, {}, {"source": [source]})
        assert record["found"] and record["sources"][0]["source"] == source, record
        assert 'class="as-context"' in reply
        visible = assert_inert(reply)
        if source == MARKUP_DOC:
            assert MARKUP in visible
        if source == CONTEXT_DOC:
            assert EVIL in visible
        if source == HTML_DOC:
            assert "from the original" not in visible and "window.stolen" not in visible
    state = {"subject": f"<script>{EVIL}</script>"}
    reply, _ = page.answer(f"and {EVIL}?", state, {})  # a follow-up shows the previous subject: escaped
    assert EVIL in assert_inert(reply)
    assert EVIL in assert_inert(render_error(EVIL, "fr"))
    assert EVIL in assert_inert(render_stats({"documents": EVIL, "model": {"name": EVIL}, "languages": {EVIL: 1}},
                                             "en"))


def test_the_chat_component_keeps_its_sanitizer(client):
    config = client.get("/config").json()
    chat = [c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == "chat"]
    assert chat and chat[0]["sanitize_html"] is True and chat[0]["latex_delimiters"] == []


def test_document_routes_serve_text_inert(client, engine):
    for source in (MARKUP_DOC, CONTEXT_DOC, HTML_DOC):
        doc = _doc(engine, source)
        resp = client.get(f"/documents/{doc.id}/text")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        assert resp.text == doc.text
        csp = resp.headers["content-security-policy"]
        assert csp.startswith("sandbox") and "default-src 'none'" in csp and "script-src" not in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
    assert "<script>" in client.get(f"/documents/{_doc(engine, MARKUP_DOC).id}/text").text  # as text, not markup
    assert "window.stolen" not in client.get(f"/documents/{_doc(engine, HTML_DOC).id}/text").text
    original = client.get(f"/documents/{_doc(engine, HTML_DOC).id}")  # the original page: sandboxed, no scripts
    assert original.status_code == 200 and original.headers["content-type"].startswith("text/html")
    assert original.headers["content-security-policy"].startswith("sandbox; default-src 'none'")
    for source, kind, disposition in (("fiche.docx", "application/octet-stream", "attachment"),
                                      ("report.pdf", "application/pdf", "inline"),
                                      (MARKUP_DOC, "text/plain", None)):
        resp = client.get(f"/documents/{_doc(engine, source).id}")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith(kind)
        assert resp.headers["x-content-type-options"] == "nosniff"
        if disposition:
            assert resp.headers["content-disposition"].startswith(disposition)


# ---------------------------------------------------------------------------------------- files outside the corpus


def test_links_out_of_the_corpus_are_not_indexed_or_served(client, engine):
    assert not {"leak.txt", "leakdir/more.txt"} & {d.source for d in engine.documents()}
    for query in ("vault code 4417", "Another outside secret 9931"):
        hits = client.post("/api/search", json={"query": query, "k": 10}).json()["hits"]
        assert all("secret" not in h["text"].lower() for h in hits)
    for text in ("Outside secret: the vault code is 4417.", "Another outside secret 9931."):
        for suffix in ("", "/text"):
            assert client.get(f"/documents/{content_hash(text)}{suffix}").status_code == 404


@pytest.mark.parametrize("source", ["../outside/secret.txt", "leak.txt", "/etc/passwd",
                                    "uploads/../../outside/secret.txt", "leakdir/more.txt", "", "."])
def test_a_tampered_index_cannot_serve_files_outside_the_corpus(engine, tmp_path, source):
    """Even if documents.jsonl names a path out of the corpus, the original is not served."""
    from aidsearch.web import build_app

    index = tmp_path / "index"
    shutil.copytree(engine.settings.index_dir, index)
    gen = IndexStore(index).current()
    rows = [json.loads(line) for line in (gen / "documents.jsonl").read_text(encoding="utf-8").splitlines()]
    target = next(r for r in rows if r["source"] == KOSOVO_FR)
    target["source"] = source
    (gen / "documents.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tampered = Aidsearch(engine.settings.with_overrides(index_dir=index), EMB, ALWAYS, ALWAYS_LEARNED)
    live = start_server(build_app(tampered))
    try:
        resp = httpx.get(f"{live.url}/documents/{target['id']}", timeout=60)
        assert resp.status_code == 404 and "4417" not in resp.text and "root:" not in resp.text
    finally:
        live.stop()


@pytest.mark.parametrize("path", ["/etc/passwd", "{outside}/secret.txt", "{corpus}/" + KOSOVO_FR,
                                  "{corpus}/leak.txt", "{index}/CURRENT", "../../../../etc/passwd"])
def test_gradio_file_route_serves_nothing_of_ours(client, engine, path):
    corpus = Path(engine.settings.corpus_dir).resolve()
    index = Path(engine.settings.index_dir).resolve()
    path = path.format(corpus=corpus, outside=corpus.parent / "outside", index=index)
    resp = client.get(f"/gradio_api/file={path}")
    assert resp.status_code in (403, 404), (path, resp.status_code)
    assert "4417" not in resp.text and "root:" not in resp.text and "Gjilan" not in resp.text


# -------------------------------------------------------------------------------------- upload names, types, sizes


EVIL_NAMES = ["../evil.txt", "../../../../etc/cron.d/evil.txt", "{abs}/passwd.txt", "{abs}/../abs.txt", "a/../../b.txt",
              "..\\..\\win.txt", "C:\\Windows\\evil.txt", "uploads/../../x.txt", "....//....//y.txt", ".%2e/z.txt",
              "\x00../nul.txt", "name\n../nl.txt", "\u202egnp.txt", "..", ".", "~/x.txt", "CON.txt", " ../ .txt"]


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_upload_names_cannot_escape_the_upload_folder(tmp_path, name):
    from aidsearch.web import UploadRejected, check_upload, safe_filename, save_upload

    # deep enough that even a regression cannot write outside tmp_path; absolute names point into tmp_path too
    folder = tmp_path.joinpath(*"abcdefgh") / "corpus" / "uploads"
    name = name.format(abs=tmp_path / "outside")
    (tmp_path / "outside").mkdir()
    for candidate in (name, ):
        try:
            safe = safe_filename(candidate)
        except UploadRejected:
            safe = None
        if safe is not None:
            assert "/" not in safe and "\\" not in safe and ".." not in safe and not safe.startswith(".")
            assert (folder / safe).resolve().parent == folder.resolve()
        try:  # save_upload on its own must not write outside its folder either
            path, _ = save_upload(folder, candidate, b"data")
        except UploadRejected:
            continue
        assert path.resolve().parent == folder.resolve()
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.parent == folder.resolve() for p in written), written
    try:
        assert "/" not in check_upload(name, b"plain text", 1024)
    except UploadRejected:
        pass


@given(st.text(max_size=60))
@hsettings(max_examples=400, deadline=None)
def test_safe_filename_property(name):
    from aidsearch.web import UploadRejected, safe_filename

    try:
        safe = safe_filename(name)
    except UploadRejected:
        return
    assert safe and safe == safe_filename(safe)  # stable
    assert not any(ch in safe for ch in '/\\<>:"|?*') and ".." not in safe and not safe.startswith((".", " "))
    assert all(ch.isprintable() for ch in safe)
    assert Path(safe).name == safe and len(safe) <= 140


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(100)
ELF = b"\x7fELF\x02\x01\x01" + bytes(100)
CONTENT_CASES = [
    ("exe renamed.pdf", EXE, "not_pdf"),
    ("image renamed.pdf", PNG, "not_pdf"),
    ("zip renamed.pdf", _zip({"a.txt": b"x"}), "not_pdf"),
    ("html renamed.pdf", b"<html><script>alert(1)</script></html>", "not_pdf"),
    ("pdf renamed.docx", b"%PDF-1.7\n%%EOF", "not_docx"),
    ("jar renamed.docx", _zip({"META-INF/MANIFEST.MF": b"Main-Class: X"}), "not_docx"),
    ("exe renamed.txt", EXE, "not_text"),
    ("elf renamed.md", ELF, "not_text"),
    ("image renamed.html", PNG, "not_text"),
    ("docx renamed.txt", _zip({"word/document.xml": b"<w:document/>"}), "not_text"),
    ("utf16 without bom.txt", "texte".encode("utf-16-le"), "not_text"),
    ("script.js", b"alert(1)", "bad_type"),
    ("page.svg", b"<svg onload=alert(1)>", "bad_type"),
    ("run.sh", b"#!/bin/sh\nrm -rf /", "bad_type"),
    ("archive.docm", _zip({"word/document.xml": b"x"}), "bad_type"),
    ("no extension", b"plain", "bad_type"),
]


@pytest.mark.parametrize("name, data, code", CONTENT_CASES, ids=[c[0] for c in CONTENT_CASES])
def test_upload_type_is_checked_on_the_content(name, data, code):
    from aidsearch.web import UploadRejected, check_upload

    with pytest.raises(UploadRejected) as err:
        check_upload(name, data, max_bytes=1 << 20)
    assert err.value.code == code
    assert "\n" not in err.value.message("en") and "\n" not in err.value.message("fr")


def test_markup_uploads_are_accepted_as_text_and_stay_text(engine, client, tmp_path):
    """An HTML or text upload full of scripts is indexed as text; its content is never served as active markup."""
    from aidsearch.web import Page

    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "evil page.html").write_text(
        f"<html><body><h1>Benin cashew cooperatives</h1><script>alert('upload')</script>"
        f"<p>The Benin cashew programme trained 2,300 farmers in Parakou. {html.escape(EVIL)}</p></body></html>",
        encoding="utf-8")
    (stage / "evil note.md").write_text(f"# Comoros ferry study\n\nThe Comoros ferry study counted 41 boats. {EVIL}\n",
                                        encoding="utf-8")
    lines = Page(engine).add_files([str(p) for p in sorted(stage.iterdir())], "en")
    assert all('class="as-ok"' in ln for ln in lines), lines
    for query, source in (("Benin cashew Parakou farmers", "uploads/evil page.html"),
                          ("Comoros ferry boats", "uploads/evil note.md")):
        reply, record = Page(engine).answer(query, {}, {"source": [source]})
        assert record["found"] and record["sources"][0]["source"] == source
        visible = assert_inert(reply)
        assert "alert('upload')" not in visible
        doc = _doc(engine, source)
        for suffix in ("", "/text"):
            resp = client.get(f"/documents/{doc.id}{suffix}")
            assert resp.status_code == 200 and resp.headers["content-security-policy"].startswith("sandbox")
            assert resp.headers["content-type"].split(";")[0] in ("text/plain", "text/html")
    assert EVIL in _doc(engine, "uploads/evil note.md").text


def test_upload_size_limit_is_exact_and_checked_before_reading(engine, tmp_path, monkeypatch):
    from aidsearch.web import UploadRejected, Page, check_upload

    limit = 1024 * 1024
    assert check_upload("a.txt", b"a" * limit, limit) == "a.txt"
    with pytest.raises(UploadRejected, match=r"file too large \(1.0 MB; the limit is 1 MB\)"):
        check_upload("a.txt", b"a" * (limit + 1), limit)
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "exact.txt").write_bytes((b"Lesotho wool exports grew. " * (limit // 27 + 1))[:limit])
    for name, size in (("one-byte-over.txt", limit + 1), ("sparse-2GB.pdf", 2 * 1024 ** 3)):
        with open(stage / name, "wb") as fh:
            fh.truncate(size)
    read: list[str] = []
    real = pathlib.Path.read_bytes
    monkeypatch.setattr(pathlib.Path, "read_bytes", lambda self: (read.append(self.name), real(self))[1])
    lines = [html.unescape(x) for x in Page(engine).add_files([str(p) for p in sorted(stage.iterdir())], "en")]
    by_name = {re.search(r"<b>(.*?)</b>", ln).group(1): ln for ln in lines}
    assert "added and indexed" in by_name["exact.txt"]
    assert "file too large (1.0 MB; the limit is 1 MB)" in by_name["one-byte-over.txt"]
    assert "file too large (2048.0 MB; the limit is 1 MB)" in by_name["sparse-2GB.pdf"]
    assert "one-byte-over.txt" not in read and "sparse-2GB.pdf" not in read


def test_gradio_upload_route_is_size_limited(client):
    resp = client.post("/gradio_api/upload", files={"files": ("big.txt", b"a" * (12 * 1024 * 1024))})
    assert resp.status_code == 413


# ------------------------------------------------------------------------------------------------ login


@pytest.fixture(scope="module")
def guarded(engine):
    from aidsearch.web import build_app

    app = Aidsearch(engine.settings.with_overrides(auth="alice:s3cret,zoé:mot de passé:é"), EMB, ALWAYS, ALWAYS_LEARNED)
    live = start_server(build_app(app))
    yield live
    live.stop()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_login_guards_every_route(guarded, engine):
    doc = _doc(engine, KOSOVO_FR).id
    corpus = Path(engine.settings.corpus_dir).resolve()
    routes = [("GET", "/"), ("HEAD", "/"), ("GET", "/api/stats"), ("GET", "/api/stats/"), ("GET", "//api/stats"),
              ("GET", "/api//stats"), ("GET", "/API/STATS"), ("POST", "/api/ask"), ("POST", "/api/search"),
              ("GET", f"/documents/{doc}"), ("GET", f"/documents/{doc}/text"), ("HEAD", f"/documents/{doc}"),
              ("GET", f"/documents/{doc}/../{doc}"), ("OPTIONS", "/api/ask"), ("GET", "/docs"), ("GET", "/redoc"),
              ("GET", "/openapi.json"), ("GET", "/config"), ("GET", "/gradio_api/info"),
              ("GET", "/gradio_api/config"), ("POST", "/gradio_api/upload"), ("POST", "/gradio_api/queue/join"),
              ("GET", f"/gradio_api/file={corpus / KOSOVO_FR}"), ("GET", "/gradio_api/heartbeat/x"),
              ("GET", "/theme.css"), ("GET", "/favicon.ico"), ("GET", "/nonexistent")]
    bad = [None, "Basic", "Basic !!!", "Bearer abc", _basic("alice", "wrong"), _basic("alice", ""),
           _basic("", "s3cret"), _basic("mallory", "s3cret"), _basic("alice", "s3cret "), _basic("ALICE", "s3cret"),
           "Basic " + base64.b64encode(b"alice").decode(), _basic("alice:s3cret", "")]
    with httpx.Client(base_url=guarded.url, timeout=60) as c:
        for method, path in routes:
            for header in bad:
                headers = {"Authorization": header} if header else {}
                resp = c.request(method, path, headers=headers, json={"question": "budget"})
                assert resp.status_code == 401, (method, path, header, resp.status_code)
                assert resp.headers["www-authenticate"].startswith("Basic")
                assert "Gjilan" not in resp.text and "budget" not in resp.text.lower()
        ok = {"Authorization": _basic("alice", "s3cret")}
        for method, path, body in (("GET", "/", None), ("GET", "/api/stats", None), ("GET", f"/documents/{doc}", None),
                                   ("GET", f"/documents/{doc}/text", None),
                                   ("POST", "/api/ask", {"question": "Which hospitals in Kosovo?"})):
            assert c.request(method, path, headers=ok, json=body).status_code == 200, path
        assert c.get("/api/stats", headers={"Authorization": _basic("zoé", "mot de passé:é")}).status_code == 200
        lower = {"Authorization": "basic " + ok["Authorization"][6:]}
        assert c.get("/api/stats", headers=lower).status_code == 200


# ------------------------------------------------------------------------------------------------ exposure


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.20", False), ("aidsearch.example.org", False)])
def test_only_loopback_addresses_count_as_private(host, loopback):
    from aidsearch.web import is_loopback

    assert is_loopback(host) is loopback


def test_serving_to_the_network_without_login_is_refused_unless_asked(tmp_path):
    from aidsearch.errors import ConfigError
    from aidsearch.web import check_exposure, open_to_network

    base = load_settings(corpus_dir=tmp_path, index_dir=tmp_path / "index", host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"^refusing to serve on 0\.0\.0\.0 without a login: set AIDSEARCH_AUTH="
                                          r"user:password, or pass --public-without-login to let anyone on the "
                                          r"network ask and upload$"):
        check_exposure(base)
    check_exposure(base.with_overrides(auth="ana:secret"))
    check_exposure(base.with_overrides(host="127.0.0.1"))
    check_exposure(base.with_overrides(public_without_login="true"))
    assert open_to_network(base.with_overrides(public_without_login=True))
    assert not open_to_network(base.with_overrides(auth="ana:secret"))


@pytest.mark.parametrize("text, value", [("true", True), ("1", True), ("Yes", True), ("on", True), ("false", False),
                                         ("0", False), ("no", False), ("off", False), (False, False)])
def test_boolean_settings_read_false_as_false(tmp_path, text, value):
    assert load_settings(corpus_dir=tmp_path, public_without_login=text).public_without_login is value


def test_boolean_setting_rejects_other_words(tmp_path):
    from aidsearch.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^setting public_without_login must be bool, got 'maybe'$"):
        load_settings(corpus_dir=tmp_path, public_without_login="maybe")


def test_app_refuses_a_network_address_without_login_in_one_line(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDSEARCH_")}
    proc = subprocess.run([sys.executable, str(root / "app.py"), "--host", "0.0.0.0", "--port", "7999",
                           "--index-dir", str(tmp_path / "index"), "--corpus-dir", str(tmp_path / "corpus")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: refusing to serve on 0.0.0.0 without a login: set AIDSEARCH_AUTH=user:password, or pass "
        "--public-without-login to let anyone on the network ask and upload"]
    assert not (tmp_path / "index").exists()  # refused before loading the model or indexing


def test_page_says_when_it_is_open_to_the_network(engine):
    from aidsearch.web import Page

    private = Page(engine)._footer("en")
    public = Page(Aidsearch(engine.settings.with_overrides(host="0.0.0.0", public_without_login=True), EMB,
                            ALWAYS, ALWAYS_LEARNED))
    assert "as-open" not in private
    assert "Open to the network without login" in public._footer("en")
    assert "Ouvert au réseau sans connexion" in public._footer("fr")


# ------------------------------------------------------------------------------------------------ error kinds


def _raising_app(engine, exc):
    from fastapi import FastAPI

    from aidsearch.web import add_routes

    app = FastAPI()
    add_routes(app, engine)

    @app.get("/boom")
    def boom():
        raise exc
    return app


@pytest.mark.parametrize("exc_name, status, kind", [
    ("QueryError", 400, "bad_request"), ("IngestError", 400, "bad_document"),
    ("IndexMissingError", 503, "index_missing"), ("IndexLockedError", 503, "index_busy"),
    ("IndexCorruptError", 500, "index_corrupt"), ("IndexMismatchError", 500, "index_mismatch"),
    ("IndexWriteError", 500, "index_write"), ("ModelError", 500, "model"), ("ConfigError", 500, "config"),
])
def test_http_status_follows_the_kind_of_error_with_its_hint_and_no_server_path(engine, exc_name, status, kind):
    from fastapi.testclient import TestClient

    from aidsearch import errors

    index = Path(engine.settings.index_dir).resolve()
    exc = getattr(errors, exc_name)(f"trouble with {index}/gen-000003/index.faiss and /etc/aidsearch/secret.toml")
    with TestClient(_raising_app(engine, exc)) as client:
        resp = client.get("/boom")
    body = resp.json()
    assert resp.status_code == status and body["kind"] == kind and body["hint"] == exc.hint and exc.hint
    assert body["error"] == f"trouble with {index.name}/gen-000003/index.faiss and secret.toml"
    assert ("Retry-After" in resp.headers) == (status == 503)


def test_hint_given_where_the_error_is_raised_wins(engine):
    from fastapi.testclient import TestClient

    from aidsearch.errors import ConfigError

    with TestClient(_raising_app(engine, ConfigError("answerer 'x' unknown", hint="use learned"))) as client:
        assert client.get("/boom").json() == {"error": "answerer 'x' unknown", "kind": "config", "hint": "use learned"}


def test_no_bad_request_shows_a_server_path(engine):
    """Twenty bad requests to the real routes: each answers with one line, a kind and a hint, and no absolute
    path of the server (the index and corpus folders are absolute here)."""
    from fastapi.testclient import TestClient

    from aidsearch.web import add_routes
    from fastapi import FastAPI

    app = FastAPI()
    add_routes(app, engine)
    roots = {str(Path(engine.settings.index_dir).resolve()), str(Path(engine.settings.corpus_dir).resolve())}
    requests = ([("post", "/api/ask", {"json": {"question": q}}) for q in ("", "   ", "?!", "x" * 20_000, None)] +
                [("post", "/api/search", {"json": {"query": q}}) for q in ("", "…", 42)] +
                [("post", "/api/ask", {"json": {"question": "budget", "filters": f}})
                 for f in ({"colour": "red"}, {"year": "soon"}, {"country": {"a": 1}}, ["country=Laos"], "x")] +
                [("post", "/api/ask", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
                 ("post", "/api/ask", {"json": {"question": "budget", "k": "many"}}),
                 ("post", "/api/ask", {"json": {"question": "budget", "k": -3}}),
                 ("get", "/documents/0123456789abcdef", {}), ("get", "/documents/../../etc/passwd", {}),
                 ("get", "/documents/%2Fetc%2Fpasswd/text", {}), ("post", "/api/search", {"json": []})])
    assert len(requests) == 20
    with TestClient(app) as client:
        for method, path, kwargs in requests:
            resp = getattr(client, method)(path, **kwargs)
            assert 400 <= resp.status_code < 500, (path, kwargs, resp.status_code, resp.text[:200])
            body = resp.json()
            assert set(body) == {"error", "kind", "hint"} and body["hint"] and "\n" not in body["error"], body
            assert not any(root in resp.text for root in roots) and "/tmp/" not in resp.text, resp.text


# ------------------------------------------------------------------------------------------------ bounded inputs


def test_filter_lists_and_values_are_bounded():
    from aidsearch.errors import QueryError
    from aidsearch.query import MAX_FILTER_CHARS, MAX_FILTER_VALUES, parse_filters

    assert len(parse_filters({"country": [f"C{i}" for i in range(MAX_FILTER_VALUES)]})["country"]) == MAX_FILTER_VALUES
    with pytest.raises(QueryError, match=rf"^too many values for filter 'country' \(at most {MAX_FILTER_VALUES}\)$"):
        parse_filters({"country": [f"C{i}" for i in range(100_000)]})
    with pytest.raises(QueryError, match=r"^too many values for filter 'funder'"):
        parse_filters([f"funder=F{i}" for i in range(MAX_FILTER_VALUES + 1)])
    with pytest.raises(QueryError, match=rf"^filter 'country' value too long \(5,000 characters; at most "
                                         rf"{MAX_FILTER_CHARS}\)$"):
        parse_filters({"country": "x" * 5000})


def test_feedback_file_is_rotated_past_its_limit(tmp_path, monkeypatch):
    from aidsearch import web

    monkeypatch.setattr(web, "FEEDBACK_MAX_BYTES", 2000)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "fiche.txt").write_text("Projet d'eau au Niger\n\nLe budget est de 29 110 000 EUR.\n",
                                                   encoding="utf-8")
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    open_index(settings=settings, embedder=EMB, create=True)
    page = web.Page(Aidsearch(settings, EMB))
    record = {"question": "Quel est le budget ?", "answer": "29 110 000 EUR [1]", "sources": []}
    for i in range(100):
        page.feedback({**record, "n": i}, i % 2 == 0)
    current, older = tmp_path / "index" / "feedback.jsonl", tmp_path / "index" / "feedback.jsonl.1"
    assert current.stat().st_size < 2000 + 200 and older.stat().st_size < 2000 + 200
    rows = [json.loads(line) for f in (older, current) for line in f.read_text(encoding="utf-8").splitlines()]
    assert [r["n"] for r in rows] == list(range(100 - len(rows), 100)) and len(rows) > 10  # the newest kept, in order
    assert not list((tmp_path / "index").glob("feedback.jsonl.2"))


def test_uploads_and_feedback_can_be_turned_off(tmp_path):
    from aidsearch.web import Page

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "fiche.txt").write_text("Projet d'eau au Niger\n\nLe budget est de 29 110 000 EUR.\n",
                                                   encoding="utf-8")
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", uploads="false",
                             feedback="off")
    open_index(settings=settings, embedder=EMB, create=True)
    page = Page(Aidsearch(settings, EMB))
    upload = tmp_path / "new.txt"
    upload.write_text("Chad schools in Abéché: 12 classrooms built.\n", encoding="utf-8")
    rows = page.add_files([str(upload)], "fr")
    assert len(rows) == 1 and "désactivé" in html.unescape(rows[0])
    assert not (tmp_path / "corpus" / "uploads").exists() and len(page.engine.documents()) == 1
    page.feedback({"question": "q?", "answer": "a", "sources": []}, True)
    assert not (tmp_path / "index" / "feedback.jsonl").exists()
    blocks = page.build()  # the page without the upload panel and the thumbs
    config = blocks.get_config_file()
    upload_panel = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "upload")
    chat = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "chat")
    assert upload_panel["props"]["visible"] is False and not chat["props"].get("feedback_options")


def test_uploads_are_limited_per_user_and_day(tmp_path):
    from aidsearch.web import Page, request_user

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "fiche.txt").write_text("Projet d'eau au Niger\n\nLe budget est de 29 110 000 EUR.\n",
                                                   encoding="utf-8")
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", max_uploads_per_day=2)
    open_index(settings=settings, embedder=EMB, create=True)
    page = Page(Aidsearch(settings, EMB))
    files = []
    for i, place in enumerate(("Abéché", "Moundou", "Sarh", "Bongor")):
        f = tmp_path / f"school{i}.txt"
        f.write_text(f"Chad schools in {place}: {10 + i} classrooms built in 2019.\n", encoding="utf-8")
        files.append(str(f))
    first = page.add_files(files[:3], "en", user="user:ana")
    assert [("as-ok" in r) for r in first] == [True, True, False] and "daily upload limit reached" in first[2]
    other = page.add_files(files[3:], "en", user="user:ben")  # another user has their own allowance
    assert "as-ok" in other[0] and len(page.engine.documents()) == 4
    again = Page(Aidsearch(settings, EMB)).add_files(files[3:], "fr", user="user:ana")  # after a restart too
    assert "limite quotidienne" in html.unescape(again[0])
    ledger = json.loads((tmp_path / "index" / "uploads-today.json").read_text(encoding="utf-8"))
    assert ledger["users"]["user:ana"][0] == 2 and ledger["users"]["user:ben"][0] == 1

    class Req:
        username = None
        headers = {"authorization": "Basic " + base64.b64encode("zoé:pw".encode()).decode()}
        client = None
    assert request_user(Req()) == "user:zoé"
    Req.headers, Req.client = {}, type("C", (), {"host": "10.0.0.7"})()
    assert request_user(Req()) == "address:10.0.0.7"
    bytes_limit = settings.with_overrides(max_uploads_per_day=100, max_upload_mb_per_day=0)
    assert "daily upload limit" in Page(Aidsearch(bytes_limit, EMB)).add_files(files[:1], "en", user="user:carl")[0]
