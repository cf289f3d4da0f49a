"""``aidsearch ask`` / ``search`` answered by a running aidsearch server (real uvicorn, real model and index), and
the checks that keep a shell command from answering out of another index than the one it names."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

QUESTION = "What is the total budget of the Lao-Luxembourg health programme phase II?"


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder):
    from browser_helpers import open_engine

    return open_engine(tmp_path_factory.mktemp("client"), embedder)


def _no_local_model(monkeypatch):
    """Make loading the index here fail, so that an answer proves it came from the server."""
    import aidsearch.cli as cli

    def refuse(index_dir):
        raise AssertionError("the command loaded the index itself")

    monkeypatch.setattr(cli, "_open", refuse)


@pytest.mark.model
def test_ask_and_search_through_a_named_server(engine, server, monkeypatch, capsys):
    from aidsearch.cli import main

    local = engine.ask(QUESTION).to_dict()
    _no_local_model(monkeypatch)
    main(["ask", QUESTION, "--server", server.url, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["answer"] == local["answer"] and data["citations"][0]["doc_id"] == local["citations"][0]["doc_id"]
    main(["ask", QUESTION, "--server", server.url])
    out = capsys.readouterr().out
    assert "28,400,000 EUR" in out and "\nSources:\n[1] " in out
    main(["search", "santé Kosovo", "--server", server.url, "-f", "lang=fr", "--json"])
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits and {h["lang"] for h in hits} == {"fr"}


@pytest.mark.model
def test_chat_through_a_server_keeps_the_conversation_there(server, monkeypatch, capsys):
    import io

    from aidsearch.cli import main

    _no_local_model(monkeypatch)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{QUESTION}\n   ?  \nand its duration?\n\n"))
    main(["chat", "--server", server.url, "--json"])
    out = capsys.readouterr()
    first, second = (json.loads(line) for line in out.out.splitlines())
    assert first["followup_of"] is None and "28,400,000 EUR" in first["answer"]
    assert second["question"] == "and its duration?" and second["followup_of"] and "84 months" in second["answer"]
    assert out.err.strip().startswith("error: ") and len(out.err.strip().splitlines()) == 1


@pytest.mark.model
def test_a_server_on_the_default_port_is_used_only_for_its_own_index(engine, server, monkeypatch, capsys, tmp_path):
    from aidsearch.cli import main

    port = server.url.rsplit(":", 1)[1]
    monkeypatch.setenv("AIDSEARCH_PORT", port)
    monkeypatch.delenv("AIDSEARCH_SERVER_URL", raising=False)
    opened: list[Path] = []

    def record(index_dir):
        opened.append(index_dir)
        return engine

    import aidsearch.cli as cli

    monkeypatch.setattr(cli, "_open", record)
    main(["ask", QUESTION, "--index-dir", str(engine.settings.index_dir), "--json"])
    assert not opened and json.loads(capsys.readouterr().out)["found"]  # the server serves this index
    main(["ask", QUESTION, "--index-dir", str(engine.settings.index_dir), "--local", "--json"])
    assert opened == [engine.settings.index_dir]
    other = tmp_path / "other"
    (other / "g000001").mkdir(parents=True)
    (other / "CURRENT").write_text("g000001")
    (other / "g000001" / "manifest.json").write_text(json.dumps({"created": "2020-01-01T00:00:00", "generation": 1}))
    main(["ask", QUESTION, "--index-dir", str(other), "--json"])
    assert opened[-1] == other  # another index: answered here, not by the server
    capsys.readouterr()


@pytest.mark.model
def test_server_errors_are_one_line(server, monkeypatch, capsys):
    from aidsearch.cli import main
    from browser_helpers import free_port

    _no_local_model(monkeypatch)
    with pytest.raises(SystemExit):
        main(["ask", "   ", "--server", server.url])
    assert capsys.readouterr().err.strip() == "error: the question is empty"
    with pytest.raises(SystemExit):
        main(["search", "budget", "--server", server.url, "-f", "planet=Mars"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown filter 'planet'") and "\n" not in err
    with pytest.raises(SystemExit):
        main(["ask", QUESTION, "--server", server.url, "-f", "country"])
    assert capsys.readouterr().err.strip() == "error: malformed filter 'country': use key=value, e.g. country=Laos"
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit):
        main(["ask", QUESTION, "--server", url])
    assert capsys.readouterr().err.strip() == f"error: no aidsearch server answers at {url}"


@pytest.mark.model
def test_a_login_is_sent_and_asked_for(engine, monkeypatch, capsys):
    from aidsearch.api import Aidsearch
    from aidsearch.cli import main
    from aidsearch.web import build_app
    from browser_helpers import start_server

    guarded = Aidsearch(engine.settings.with_overrides(auth="alice:secret"), engine.embedder, models=engine.models)
    live = start_server(build_app(guarded))
    try:
        _no_local_model(monkeypatch)
        monkeypatch.delenv("AIDSEARCH_AUTH", raising=False)
        with pytest.raises(SystemExit):
            main(["ask", QUESTION, "--server", live.url])
        assert capsys.readouterr().err.strip() == \
            f"error: the aidsearch server at {live.url} wants a login: set AIDSEARCH_AUTH=user:password"
        monkeypatch.setenv("AIDSEARCH_AUTH", "alice:secret")
        main(["ask", QUESTION, "--server", live.url, "--json"])
        assert json.loads(capsys.readouterr().out)["found"]
    finally:
        live.stop()


def test_the_command_line_starts_without_the_model_stack():
    heavy = "('numpy', 'torch', 'faiss', 'gradio', 'sentence_transformers', 'pydantic')"
    code = f"import sys, aidsearch.cli, aidsearch.client; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    answer = {"language": "fr", "answer": "Le programme coûte 29 110 000 EUR [1]",
              "highlights": [{"start": 19, "end": 33}],
              "citations": [{"n": 1, "title": "Kosovo", "source": "kosovo.html", "page": None, "lang": "fr"}],
              "mode": "extractive", "generation": None}
    code = (f"import sys\nfrom aidsearch.cli import _print_answer\n_print_answer({answer!r})\n"
            f"print(sorted(m for m in {heavy} if m in sys.modules))")  # an answer from a server, printed
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.splitlines()[0] == "Le programme coûte 29 110 000 EUR [1]"
    assert out.stdout.splitlines()[-1] == "[]" and "Sources:" in out.stdout and "kosovo.html" in out.stdout


@pytest.mark.parametrize("args, error", [
    (["ask", "  "], "error: the question is empty"),
    (["search", "budget", "-f", "planet=Mars"],
     "error: unknown filter 'planet': use one of country, lang, funder, year, source"),
    (["chat", "-f", "year=soon"], "error: bad year filter 'soon': use 2015 or 2014-2016"),
])
def test_bad_input_is_refused_before_anything_is_loaded(args, error):
    code = ("import sys\nfrom aidsearch.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n"
            "    print(exc.code, sorted(m for m in ('numpy', 'torch', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "1 []" and out.stderr.strip() == error


@pytest.mark.unit
def test_index_identity_reads_the_head_of_a_large_manifest_only(tmp_path):
    from aidsearch.client import index_identity
    from aidsearch.config import load_settings
    from aidsearch.embed import HashEmbedder
    from aidsearch.indexer import build_index
    from aidsearch.store import IndexStore

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Water and sanitation in Burundi.\n", encoding="utf-8")
    settings = load_settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    build_index(settings, HashEmbedder())
    (corpus / "b.txt").write_text("Roads in Haiti.\n", encoding="utf-8")
    build_index(settings, HashEmbedder())
    store = IndexStore(settings.index_dir)
    manifest = store.read_manifest()
    assert manifest["generation"] == 2
    assert index_identity(settings.index_dir) == (manifest["created"], 2)
    path = store.current() / "manifest.json"
    path.write_text(json.dumps({"created": manifest["created"], "documents": {f"d{i}": {} for i in range(50_000)},
                                "generation": 2}), encoding="utf-8")
    assert index_identity(settings.index_dir) == (manifest["created"], 2)
    path.write_text(json.dumps({"generation": 7, "created": "then"}), encoding="utf-8")  # another order: read it all
    assert index_identity(settings.index_dir) == ("then", 7)
    path.write_text('{"created": "then", "generation"', encoding="utf-8")  # cut short: the head is enough
    assert index_identity(settings.index_dir) == ("then", 2)
    path.unlink()
    assert index_identity(settings.index_dir) is None
    assert index_identity(tmp_path / "nowhere") is None
