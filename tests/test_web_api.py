"""The HTTP API, document routes, login and uploads, against a real index served by uvicorn."""
from __future__ import annotations

import html
import io
import json
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from browser_helpers import MARKUP_DOC, open_engine, start_server

KOSOVO_FR = "002_7c5a3c9fa8d73ed7.txt"


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder):
    return open_engine(tmp_path_factory.mktemp("webapi"), embedder)


def _doc_id(engine, source: str) -> str:
    return next(d.id for d in engine.documents() if d.source == source)


def _error(resp: httpx.Response) -> str:
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message
    return message


# ------------------------------------------------------------------------------------ unit


@pytest.mark.unit
@pytest.mark.parametrize("raw, safe", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("C:\\Users\\x\\Rapport annuel.DOCX", "Rapport annuel.docx"),
    ("évaluation_à_mi-parcours.md", "évaluation_à_mi-parcours.md"),
    ("..\x00evil\x1b[31m.txt", "evil[31m.txt"),
    ("a..b.txt", "a_b.txt"),
    ("  .hidden.txt", "hidden.txt"),
    ("项目 报告.txt", "项目 报告.txt"),
])
def test_safe_filename(raw, safe):
    from aidsearch.web import safe_filename

    assert safe_filename(raw) == safe


@pytest.mark.unit
@pytest.mark.parametrize("raw", ["", "..", "/", ".txt", "\x00\x01", "../.."])
def test_safe_filename_refuses_empty_names(raw):
    from aidsearch.web import UploadRejected, safe_filename

    with pytest.raises(UploadRejected, match="no usable file name"):
        safe_filename(raw)


def _docx_bytes(with_document: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("word/document.xml" if with_document else "other.xml", "<w:document/>")
    return buf.getvalue()


@pytest.mark.unit
@pytest.mark.parametrize("name, data, message", [
    ("x.pdf", b"hello", "not a PDF"),
    ("x.docx", b"PK\x03\x04broken", "not a DOCX"),
    ("x.docx", _docx_bytes(False), "not a DOCX"),
    ("x.txt", b"abc\x00def", "not a text file"),
    ("x.html", b"\x81\x8d\x8f\x90\x9d", "not a text file"),
    ("x.exe", b"MZ", "unsupported type .exe"),
    ("noext", b"text", r"unsupported type \(none\)"),
    ("x.txt", b"", "empty file"),
    ("x.txt", b"a" * 2048, "file too large"),
])
def test_check_upload_rejects_by_content(name, data, message):
    from aidsearch.web import UploadRejected, check_upload

    with pytest.raises(UploadRejected, match=message):
        check_upload(name, data, max_bytes=1024)


@pytest.mark.unit
def test_check_upload_accepts_real_types():
    from aidsearch.web import check_upload

    assert check_upload("a.pdf", b"%PDF-1.7\n...", 1024) == "a.pdf"
    assert check_upload("a.docx", _docx_bytes(), 1024) == "a.docx"
    assert check_upload("a.md", "Résumé du projet".encode(), 1024) == "a.md"
    assert check_upload("a.htm", "<p>Caf\xe9</p>".encode("cp1252"), 1024) == "a.htm"


@pytest.mark.unit
def test_save_upload_never_overwrites(tmp_path):
    from aidsearch.web import save_upload

    first, new1 = save_upload(tmp_path, "a.txt", b"one")
    same, new2 = save_upload(tmp_path, "a.txt", b"one")
    other, new3 = save_upload(tmp_path, "a.txt", b"two")
    assert (first, new1, same, new2) == (tmp_path / "a.txt", True, tmp_path / "a.txt", False)
    assert other == tmp_path / "a-1.txt" and new3 and first.read_bytes() == b"one" and other.read_bytes() == b"two"


@pytest.mark.unit
@pytest.mark.parametrize("question, previous, expected", [
    ("and its budget?", "Kosovo health", "and its budget? Kosovo health"),
    ("et son budget ?", "Kosovo santé", "et son budget ? Kosovo santé"),
    ("What about Laos?", "health budget", "What about Laos? health budget"),
    ("Which hospitals in Kosovo receive investments?", "Laos", "Which hospitals in Kosovo receive investments?"),
    ("and its budget?", None, "and its budget?"),
])
def test_resolve_followup(question, previous, expected):
    from aidsearch.web import resolve_followup

    assert resolve_followup(question, previous) == expected


@pytest.mark.unit
def test_subject_terms_drop_question_words():
    from aidsearch.web import subject_terms

    assert subject_terms("How long does the Kosovo health project last?") == "Kosovo health project"
    assert subject_terms("Quelle est la durée totale du projet au Kosovo ?") == "projet Kosovo"


@pytest.mark.unit
def test_rendered_answer_escapes_document_text():
    from aidsearch.types import Answer, Chunk, Citation, Hit
    from aidsearch.web import render_answer

    text = "Intro. <script>alert(1)</script><b>bold</b> & more."
    chunk = Chunk("c1", "d1", "x.txt", "<i>T</i>", text, 0, len(text), "en")
    answer = Answer("q", "en", True, "<img src=x onerror=alert(1)> [1]",
                    (Citation(1, Hit(chunk, 0.5, 1, metadata={"country": "<u>X</u>"}), ((7, 43),)),))
    out = render_answer(answer, "en", lambda _id: None)
    for raw in ("<script>", "<b>", "<img", "<i>T", "<u>"):
        assert raw not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "&lt;img src=x" in out
    assert '<mark>&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;</mark>' in out
    assert "\n" not in out


@pytest.mark.unit
def test_rendered_answer_marks_the_answer_span():
    from aidsearch.types import Answer, Chunk, Citation, Hit
    from aidsearch.web import render_answer

    chunk = Chunk("c1", "d1", "x.txt", "T", "Budget: 5 <EUR>", 0, 15, "en")
    text = "Total budget: 5 <EUR> [1]"
    answer = Answer("q", "en", True, text, (Citation(1, Hit(chunk, 0.5, 1), ((0, 15),)),), highlights=((14, 21),))
    assert answer.to_dict()["highlights"] == [{"start": 14, "end": 21, "text": "5 <EUR>"}]
    out = render_answer(answer, "en", lambda _id: None)
    assert 'Total budget: <mark class="as-span">5 &lt;EUR&gt;</mark> <span class="as-ref">[1]</span>' in out


# ------------------------------------------------------------------------------------ API



@pytest.mark.model
def test_health(client):
    resp = client.get("/api/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "documents": 6, "generation": {
        "configured": False, "reachable": False, "detail": "no model server set (llm_url)"}}


@pytest.mark.model
def test_stats(client):
    stats = client.get("/api/stats").json()
    assert stats["documents"] == 6 and stats["passages"] > 6
    assert stats["languages"] == {"en": 4, "fr": 2}
    assert stats["model"]["name"] and stats["updated"]


@pytest.mark.model
def test_ask_english_question_answered_by_french_document(client):
    resp = client.post("/api/ask", json={"question": "Which hospitals in Kosovo receive investments?"})
    assert resp.status_code == 200
    data = resp.json()
    assert data["found"] and data["language"] == "en"
    assert "Gjilan" in data["answer"] and "[1]" in data["answer"]
    first = data["citations"][0]
    assert first["source"] == KOSOVO_FR and first["lang"] == "fr" and first["n"] == 1
    s, e = first["highlights"][0]
    assert "Gjilan" in first["text"][s:e]


@pytest.mark.model
def test_ask_english_duration_of_french_project(client):
    data = client.post("/api/ask", json={"question": "How long does the Kosovo health project last?"}).json()
    assert data["found"] and "156" in data["answer"]
    assert data["citations"][0]["source"] == KOSOVO_FR


@pytest.mark.model
def test_ask_french_question(client):
    data = client.post("/api/ask", json={"question": "Quelle est la durée totale du projet au Kosovo ?"}).json()
    assert data["found"] and data["language"] == "fr" and "156" in data["answer"]
    assert data["citations"][0]["source"] == KOSOVO_FR


@pytest.mark.model
def test_ask_unanswerable_says_so(client):
    data = client.post("/api/ask", json={"question": "What is the price of wheat in Argentina this year?"}).json()
    assert not data["found"] and data["citations"] == [] and "No answer" in data["answer"]


@pytest.mark.model
def test_search(client):
    data = client.post("/api/search", json={"query": "budget total Kosovo", "k": 3}).json()
    assert 1 <= len(data["hits"]) <= 3
    assert data["hits"][0]["source"] == KOSOVO_FR
    assert [h["rank"] for h in data["hits"]] == list(range(1, len(data["hits"]) + 1))


@pytest.mark.model
def test_filters_apply(client):
    data = client.post("/api/search", json={"query": "health budget", "filters": {"country": ["Laos"]}}).json()
    assert data["hits"] and {h["country"] for h in data["hits"]} == {"Laos"}
    assert data["filters"] == {"country": ["Laos"]}
    data = client.post("/api/search", json={"query": "total budget", "filters": {"lang": "fr"}}).json()
    assert data["filters"] == {"lang": ["fr"]}
    assert data["hits"] and {h["lang"] for h in data["hits"]} == {"fr"}
    data = client.post("/api/ask",
                       json={"question": "What is the total budget?", "filters": {"country": "Laos"}}).json()
    assert data["found"] and data["filters"] == {"country": ["Laos"]}
    assert {c["country"] for c in data["citations"]} == {"Laos"}
    data = client.post("/api/search", json={"query": "health", "filters": {"year": ["2026-2028"]}}).json()
    assert data["hits"] and {h["source"] for h in data["hits"]} <= {KOSOVO_FR, "003_0a3d02f309745ae0.txt"}


@pytest.mark.model
@pytest.mark.parametrize("path, body, message", [
    ("/api/ask", {"question": ""}, "the question is empty"),
    ("/api/ask", {"question": "   "}, "the question is empty"),
    ("/api/ask", {}, "question: Field required"),
    ("/api/ask", {"question": "budget", "filters": {"planet": "Mars"}}, "unknown filter 'planet'"),
    ("/api/ask", {"question": "budget", "filters": {"year": "soon"}}, "bad year filter"),
    ("/api/ask", {"question": "budget", "k": 0}, "k: Input should be greater than or equal to 1"),
    ("/api/ask", {"question": "budget", "mode": "generative"}, "generative answers need a model server"),
    ("/api/search", {"query": "?!"}, "no words"),
    ("/api/search", {"question": "budget"}, "query: Field required"),
])
def test_bad_input_is_a_400_with_one_line(client, path, body, message):
    assert message in _error(client.post(path, json=body))


@pytest.mark.model
def test_ask_follow_up_in_a_conversation(client):
    first = client.post("/api/ask", json={"question": "Which hospitals in Kosovo receive investments?",
                                          "conversation_id": "conv-1"}).json()
    assert first["found"] and "Gjilan" in first["answer"]
    assert first["followup_of"] is None and first["query"] == first["question"] and first["conversation_id"] == "conv-1"
    second = client.post("/api/ask", json={"question": "and its budget?", "conversation_id": "conv-1"}).json()
    assert second["question"] == "and its budget?" and "Kosovo" in second["followup_of"]
    assert second["query"] == f"and its budget? {second['followup_of']}"
    assert second["found"] and "29 110 000" in second["answer"] and second["citations"][0]["source"] == KOSOVO_FR
    other = client.post("/api/ask", json={"question": "and its budget?", "conversation_id": "conv_2"}).json()
    assert other["followup_of"] is None and other["query"] == "and its budget?"
    alone = client.post("/api/ask", json={"question": "and its budget?"}).json()
    assert "followup_of" not in alone and alone["question"] == "and its budget?"


@pytest.mark.model
@pytest.mark.parametrize("conversation_id", ["", "x" * 65, "a b", "../conv", "conv\n"])
def test_bad_conversation_id_is_a_400(client, conversation_id):
    resp = client.post("/api/ask", json={"question": "and its budget?", "conversation_id": conversation_id})
    assert _error(resp) == "conversation_id must be 1 to 64 letters, digits, '-' or '_'"
    assert resp.json()["kind"] == "bad_request"


@pytest.mark.model
def test_empty_question_in_a_conversation_is_a_400(client):
    client.post("/api/ask", json={"question": "Which hospitals in Kosovo receive investments?",
                                  "conversation_id": "conv-3"})
    resp = client.post("/api/ask", json={"question": "  ", "conversation_id": "conv-3"})
    assert _error(resp) == "the question is empty"


@pytest.mark.model
def test_malformed_json_is_a_400(client):
    resp = client.post("/api/ask", content=b"{not json", headers={"content-type": "application/json"})
    _error(resp)


@pytest.mark.model
def test_twenty_concurrent_asks(server):
    questions = [("Which hospitals in Kosovo receive investments?", "Gjilan"),
                 ("What is the total budget of the Lao-Luxembourg Health Sector Support Programme Phase II?",
                  "28,400,000"),
                 ("How much did the Swiss Agency for Development and Cooperation give to the local administrations "
                  "programme?", "4,000,000"),
                 ("Quelle est la durée totale du projet au Kosovo ?", "156")] * 5

    def ask(item: tuple[str, str]) -> tuple[int, str, str]:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            resp = c.post("/api/ask", json={"question": item[0]})
            return resp.status_code, resp.json().get("answer") or "", item[1]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(ask, questions))
    assert [r[0] for r in results] == [200] * 20
    wrong = [(answer, expected) for _, answer, expected in results if expected not in answer]
    assert not wrong, wrong


@pytest.mark.model
def test_openapi_lists_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/ask", "/api/search", "/api/stats", "/api/health", "/documents/{doc_id}"} <= set(paths)
    assert client.get("/docs").status_code == 200


@pytest.mark.model
def test_page_is_served(client):
    resp = client.get("/")
    assert resp.status_code == 200 and "<html" in resp.text.lower()


# ------------------------------------------------------------------------------------ documents


@pytest.mark.model
def test_document_original_and_text(client, engine):
    doc_id = _doc_id(engine, KOSOVO_FR)
    resp = client.get(f"/documents/{doc_id}")
    assert resp.status_code == 200
    assert resp.content == (Path(engine.settings.corpus_dir) / KOSOVO_FR).read_bytes()
    assert resp.headers["x-content-type-options"] == "nosniff"
    text = client.get(f"/documents/{doc_id}/text")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "Gjilan" in text.text


@pytest.mark.model
def test_markup_document_is_served_inert(client, engine):
    resp = client.get(f"/documents/{_doc_id(engine, MARKUP_DOC)}")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert "sandbox" in resp.headers["content-security-policy"]


@pytest.mark.model
@pytest.mark.parametrize("path", [
    "/documents/0000000000000000", "/documents/..%2F..%2Fetc%2Fpasswd", "/documents/%2e%2e/%2e%2e/etc/passwd",
    "/documents/%2E%2E", "/documents/..%2Fcorpus%2F002_7c5a3c9fa8d73ed7.txt", "/documents/%2Fetc%2Fpasswd/text",
])
def test_document_route_cannot_escape_the_corpus(client, path):
    resp = client.get(path)
    assert resp.status_code == 404
    assert "root:" not in resp.text


@pytest.mark.model
def test_document_replaced_by_outside_symlink_is_refused(client, engine, tmp_path):
    doc_id = _doc_id(engine, MARKUP_DOC)
    path = Path(engine.settings.corpus_dir) / MARKUP_DOC
    original = path.read_bytes()
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    stat = path.stat()
    path.unlink()
    os.symlink(secret, path)
    try:
        assert client.get(f"/documents/{doc_id}").status_code == 404
    finally:
        path.unlink()
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# ------------------------------------------------------------------------------------ login


@pytest.fixture(scope="module")
def auth_server(engine):
    from aidsearch.api import Aidsearch
    from aidsearch.web import build_app

    guarded = Aidsearch(engine.settings.with_overrides(auth="alice:s3cret:x,bob:pw"), engine.embedder)
    live = start_server(build_app(guarded))
    yield live
    live.stop()


@pytest.mark.model
def test_login_required_everywhere(auth_server, engine):
    doc = f"/documents/{_doc_id(engine, KOSOVO_FR)}"
    requests = [("GET", "/", None), ("GET", "/api/stats", None), ("GET", "/api/health", None),
                ("POST", "/api/ask", {"question": "Which hospitals in Kosovo receive investments?"}),
                ("GET", doc, None), ("GET", doc + "/text", None), ("GET", "/gradio_api/info", None),
                ("GET", "/config", None), ("GET", "/openapi.json", None)]
    with httpx.Client(base_url=auth_server.url, timeout=60) as c:
        for method, path, body in requests:
            for creds in (None, ("alice", "wrong"), ("mallory", "s3cret:x"), ("alice", "s3cret")):
                resp = c.request(method, path, json=body, auth=creds)
                assert resp.status_code == 401, (path, creds)
                assert resp.headers["www-authenticate"].startswith("Basic")
            resp = c.request(method, path, json=body, auth=("alice", "s3cret:x"))
            assert resp.status_code == 200, (path, resp.text[:200])
        assert c.get(doc, auth=("bob", "pw")).status_code == 200
        assert c.get(doc, headers={"Authorization": "Basic !!!"}).status_code == 401


@pytest.mark.model
def test_bad_auth_setting_is_refused():
    from aidsearch.errors import ConfigError
    from aidsearch.web import parse_auth

    assert parse_auth("a:b, c:d:e") == {"a": "b", "c": "d:e"}
    assert parse_auth("") == {}
    with pytest.raises(ConfigError, match="user:password"):
        parse_auth("alice")


# ------------------------------------------------------------------------------------ uploads and feedback


@pytest.mark.model
def test_upload_saves_indexes_and_keeps_going(client, engine):
    from aidsearch.web import Page

    page = Page(engine)
    stage = Path(engine.settings.index_dir).parent / "incoming"
    stage.mkdir()
    (stage / "fake.pdf").write_bytes(b"this is not a pdf")
    (stage / "binary.txt").write_bytes(b"\x00\x01\x02")
    (stage / "scan.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (stage / "Rapport d'étape Bénin.md").write_text(
        "# Rapport d'étape Bénin\n\nLe projet de forages solaires au Bénin a installé 312 pompes "
        "dans la commune de Kandi en 2023.\n", encoding="utf-8")
    seen: list[tuple[str, int, int]] = []
    added = page.add_files(sorted(map(str, stage.iterdir())), "en", lambda *a: seen.append(a))
    lines = [html.unescape(x) for x in added]
    assert len(lines) == 4
    by_name = {line.split("</b>")[0].split("<b>")[1]: line for line in lines}
    assert "not a PDF" in by_name["fake.pdf"] and "as-bad" in by_name["fake.pdf"]
    assert "not a text file" in by_name["binary.txt"]
    assert "rejected: " in by_name["scan.pdf"] and "as-bad" in by_name["scan.pdf"]
    assert not (Path(engine.settings.corpus_dir) / "uploads" / "scan.pdf").exists()
    assert "added and indexed" in by_name["Rapport d'étape Bénin.md"]
    saved = Path(engine.settings.corpus_dir) / "uploads" / "Rapport d'étape Bénin.md"
    assert saved.is_file() and not (Path(engine.settings.corpus_dir) / "uploads" / "fake.pdf").exists()
    assert any(stage == "embed" and done == total for stage, done, total in seen)
    data = client.post("/api/ask", json={"question": "Combien de pompes solaires ont été installées au Bénin ?"}).json()
    assert data["found"] and "312" in data["answer"]
    assert data["citations"][0]["source"] == "uploads/Rapport d'étape Bénin.md"
    again = page.add_files([str(stage / "Rapport d'étape Bénin.md")], "fr", None)
    assert "déjà dans l'index" in html.unescape(again[0])


@pytest.mark.model
def test_feedback_is_appended_as_json_lines(engine):
    from aidsearch.web import Page

    page = Page(engine)
    record = {"question": "q?", "answer": "a [1]", "sources": [{"n": 1, "source": KOSOVO_FR}]}
    page.feedback(record, True)
    page.feedback(record, False)
    rows = [json.loads(line) for line in (Path(engine.settings.index_dir) / "feedback.jsonl").read_text().splitlines()]
    assert [r["vote"] for r in rows[-2:]] == ["up", "down"]
    assert rows[-1]["question"] == "q?" and rows[-1]["sources"][0]["source"] == KOSOVO_FR
