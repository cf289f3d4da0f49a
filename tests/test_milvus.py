"""The Milvus backend (``index_backend = "milvus"``) on the real Milvus Lite engine and the real bundled model: the
pipeline's retrieval and answer tests run again on it, it finds what FAISS finds, and it stays in step with the
index through updates, crashes, model changes, a second process and a Milvus server on loopback."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aidsearch import open_index
from aidsearch.config import load_settings
from aidsearch.backends import MilvusFullText, MilvusSearch, MilvusTarget, _term_text, _version, milvus_filter
from aidsearch.errors import ConfigError
from browser_helpers import free_port
from conftest import ROOT
from helpers import copy_seeds, devaid_records, write_records
from test_pipeline import (test_answer_json_shape_and_citation_bounds, test_bad_questions,  # noqa: F401
                           test_exact_names_and_numbers, test_filters_and_cap, test_seed_questions)

pytestmark = pytest.mark.model

QUERIES = [("health programme", None), ("health programme", {"lang": "fr"}), ("programme de santé", ["country=Kosovo"]),
           ("budget", {"year": "2012-2013"}), ("health", {"funder": "Swiss"}), ("LAO/027", None),
           ("Who funds the project?", {"source": "00"}), ("durée totale", {"lang": ["fr", "en"], "year": "2014"})]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return copy_seeds(tmp_path_factory.mktemp("milvus") / "corpus")


@pytest.fixture(scope="module")
def seed_index(corpus, embedder):
    """The seed corpus indexed with the Milvus backend (a Milvus Lite folder in the index folder, keyword search in
    Milvus too); the pipeline's tests imported above run on it."""
    settings = load_settings(corpus_dir=corpus, index_dir=corpus.parent / "index-milvus", index_backend="milvus",
                             milvus_full_text="on")
    report = open_index(settings=settings, embedder=embedder, create=True).created
    assert report.documents == 5 and not report.skipped
    return open_index(settings=settings, embedder=embedder)


@pytest.fixture(scope="module")
def faiss_index(corpus, embedder):
    settings = load_settings(corpus_dir=corpus, index_dir=corpus.parent / "index-faiss")
    return open_index(settings=settings, embedder=embedder, create=True)


def _ranked(ix, query, filters, mode=None):
    return [(h.chunk.id, round(h.score, 4), round(h.lexical, 4))
            for h in ix.search(query, k=10, filters=filters, mode=mode).hits]


def test_milvus_finds_what_faiss_finds(seed_index, faiss_index):
    manifest = seed_index.store.read_manifest()
    assert manifest["faiss"] == "none" and manifest["backend"]["name"] == "milvus"
    assert not any(seed_index.store.current().glob("index.faiss"))
    assert seed_index.stats()["backend"]["collection"] == "aidsearch"
    assert isinstance(seed_index.retriever().dense, MilvusSearch)
    for query, filters in QUERIES:
        found = _ranked(seed_index, query, filters)
        assert found and found == _ranked(faiss_index, query, filters), (query, filters)
    for q in ("Combien coûte le programme au Kosovo ?", "Who funds the health financing project in Cambodia?"):
        a, b = seed_index.ask(q), faiss_index.ask(q)
        assert a.text == b.text and [c.hit.chunk.id for c in a.citations] == [c.hit.chunk.id for c in b.citations]


def test_keyword_search_runs_in_milvus_with_the_same_scores(seed_index, faiss_index):
    assert seed_index.stats()["keyword_search"] == "milvus" and faiss_index.stats()["keyword_search"] == "bm25"
    assert isinstance(seed_index.retriever().lexical, MilvusFullText)
    for query, filters in QUERIES + [("28,400,000", None), ("financement de la santé", {"country": "Cambodge"})]:
        found = _ranked(seed_index, query, filters, mode="bm25")
        assert found == _ranked(faiss_index, query, filters, mode="bm25"), (query, filters)
    assert _ranked(seed_index, "LAO/027", None, mode="bm25")[0][2] > 1.0  # the code is one term, found whole
    assert _ranked(seed_index, "the of and", None, mode="bm25") == []


def _file(record: dict) -> str:
    """The file name ``write_records`` gives a record."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in record["id"])[:60] + ".txt"


def _collection_ids(ix) -> set[str]:
    return ix.retriever().dense._stored_ids()


def test_updates_deletes_and_crashes_keep_the_collection_in_step(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    records = devaid_records(6, lang="en")
    write_records(corpus, records[:4])
    settings = load_settings(corpus_dir=corpus, index_dir=tmp_path / "index", index_backend="milvus",
                             milvus_collection="updates", milvus_full_text="on")
    ix = open_index(settings=settings, embedder=embedder, create=True)
    assert _collection_ids(ix) == {c.id for c in ix.retriever().chunks}
    write_records(corpus, records[4:5])
    (corpus / _file(records[0])).unlink()
    report = ix.update()
    assert report.added == (_file(records[4]),) and report.removed == (_file(records[0]),)
    chunks = ix.retriever().chunks
    assert _collection_ids(ix) == {c.id for c in chunks}
    assert ix.search(records[4]["title"], k=1).hits[0].chunk.source == _file(records[4])
    assert ix.search(records[4]["title"], k=1, mode="bm25").hits[0].chunk.source == _file(records[4])
    assert not any(h.chunk.source == _file(records[0]) for h in ix.search(records[0]["title"], k=10, mode="bm25").hits)
    # a crash between the index switch and the end of the sync: stale passages in, new ones missing
    dense = ix.retriever().dense
    client, name = dense.client, dense.target.collection
    gone = sorted(dense.rows)[:3]
    client.delete(name, ids=gone)
    client.insert(name, [{"id": "stale-passage", "doc_id": "x", "source": "x.txt", "lang": "en", "country": "",
                          "funders": [], "years": [], "terms": "stale",
                          "vector": [0.1] * dense.gen.vector_rows.shape[1]}])
    client.alter_collection_properties(name, properties={"aidsearch.generation": "gen-000000"})
    assert dense.sync() == {"inserted": 3, "deleted": 1}
    assert _collection_ids(ix) == {c.id for c in chunks}
    assert dense.sync() == {"inserted": 0, "deleted": 0}
    # another model's vectors are never mixed in: the collection is filled again from the index
    client.alter_collection_properties(name, properties={"aidsearch.fingerprint": "0000000000000000"})
    assert dense.sync() == {"inserted": len(chunks), "deleted": 0}


def test_switching_backends_needs_no_rebuild(tmp_path, embedder):
    corpus = copy_seeds(tmp_path / "corpus")
    faiss = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "index"), embedder=embedder,
                       create=True)
    expected = _ranked(faiss, "health programme", {"lang": "fr"})
    settings = load_settings(corpus_dir=corpus, index_dir=tmp_path / "index", index_backend="milvus")
    milvus = open_index(settings=settings, embedder=embedder)
    assert _ranked(milvus, "health programme", {"lang": "fr"}) == expected
    report = milvus.update()
    assert report.written and report.embedded_chunks == 0  # the manifest now records the backend, nothing embedded
    assert milvus.stats()["backend"]["name"] == "milvus" and milvus.stats()["faiss"] == "none"
    back = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "index"), embedder=embedder)
    assert _ranked(back, "health programme", {"lang": "fr"}) == expected


def test_a_second_process_gets_a_one_line_error(seed_index):
    env = {**os.environ, "AIDSEARCH_INDEX_BACKEND": "milvus"}
    out = subprocess.run([sys.executable, "-m", "aidsearch", "search", "budget", "--local", "--index-dir",
                          str(seed_index.settings.index_dir)], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=600)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        f"error: cannot open Milvus Lite folder {MilvusTarget.of(seed_index.settings).uri}: another process has it "
        "open (one process at a time; for several, run `milvus-lite server --data-dir FOLDER` and set milvus_uri to "
        "http://host:19530)"]


def test_bad_backend_settings_are_refused():
    with pytest.raises(ConfigError, match="index_backend must be one of faiss, milvus"):
        load_settings(index_backend="chroma")
    with pytest.raises(ConfigError, match="milvus_collection must be letters"):
        load_settings(milvus_collection="a b")
    with pytest.raises(ConfigError, match="setting milvus_full_text must be one of auto, on, off, got 'yes'"):
        load_settings(milvus_full_text="yes")


def test_full_text_auto_or_off_uses_the_index_bm25_and_refills_the_collection(tmp_path, embedder):
    corpus = copy_seeds(tmp_path / "corpus")
    settings = load_settings(corpus_dir=corpus, index_dir=tmp_path / "index", index_backend="milvus",
                             milvus_full_text="on")
    on = open_index(settings=settings, embedder=embedder, create=True)
    assert on.stats()["keyword_search"] == "milvus"
    expected = _ranked(on, "programme de santé", ["country=Kosovo"], mode="bm25")
    passages = len(on.retriever().chunks)
    for setting in ("auto", "off"):  # on Milvus Lite "auto" keeps the index's BM25
        ix = open_index(settings=settings.with_overrides(milvus_full_text=setting), embedder=embedder)
        assert ix.stats()["keyword_search"] == "bm25"
        assert ix.retriever().dense.sync() == {"inserted": 0, "deleted": 0}  # refilled once, when it was opened
        assert _collection_ids(ix) == {c.id for c in ix.retriever().chunks} and len(_collection_ids(ix)) == passages
        assert _ranked(ix, "programme de santé", ["country=Kosovo"], mode="bm25") == expected


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, "the Milvus server exited"
            time.sleep(0.5)
    raise AssertionError(f"the Milvus server did not listen on port {port} within {seconds} s")


@pytest.fixture(params=["milvus-lite server", "milvus standalone 2.3"])
def milvus_server(request, tmp_path):
    """A Milvus server on a free loopback port, stopped after the test: Milvus Lite's gRPC server, and the Milvus
    standalone server of the ``milvus`` package (the real Milvus engine, an earlier version)."""
    port = free_port()
    bin_dir = os.path.dirname(sys.executable)
    if request.param.startswith("milvus-lite"):
        cmd = [os.path.join(bin_dir, "milvus-lite"), "server", "--data-dir", str(tmp_path / "milvus-data"),
               "--host", "127.0.0.1", "--port", str(port)]
    else:
        cmd = [os.path.join(bin_dir, "milvus-server"), "--data", str(tmp_path / "milvus-data"), "--proxy-port",
               str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", request.param
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _stop_processes_using(tmp_path / "milvus-data")  # the standalone server runs in a session of its own


def _stop_processes_using(folder) -> None:
    """Stop the processes whose command line names ``folder`` (SIGTERM, then SIGKILL after 30 s)."""
    def pids() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and str(folder) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                continue
        return found

    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while pids() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not pids(), f"processes using {folder} are still running"


def test_a_milvus_server_serves_several_processes(milvus_server, faiss_index, corpus, embedder, tmp_path):
    url, kind = milvus_server
    shutil.copytree(corpus, tmp_path / "corpus")
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", index_backend="milvus",
                             milvus_uri=url, milvus_collection="served")
    ix = open_index(settings=settings, embedder=embedder, create=True)
    assert ix.stats()["backend"]["uri"] == url
    # "auto": the index's BM25 on Milvus Lite and on Milvus 2.3 (no full-text search; refused when required)
    assert ix.stats()["keyword_search"] == "bm25"
    for query, filters in QUERIES:
        assert _ranked(ix, query, filters) == _ranked(faiss_index, query, filters), (query, filters)
        assert _ranked(ix, query, filters, "bm25") == _ranked(faiss_index, query, filters, "bm25"), (query, filters)
    if not kind.startswith("milvus-lite"):
        with pytest.raises(ConfigError) as refused:
            open_index(settings=settings.with_overrides(milvus_full_text="on"), embedder=embedder)
        assert str(refused.value).startswith(f"milvus_full_text is on but the Milvus at {url} (v2.3.5-lite) has no "
                                             "full-text search")
    env = {**os.environ, "AIDSEARCH_INDEX_BACKEND": "milvus", "AIDSEARCH_MILVUS_URI": url,
           "AIDSEARCH_MILVUS_COLLECTION": "served"}
    out = subprocess.run([sys.executable, "-m", "aidsearch", "search", "LAO/027", "--local", "--json", "--k", "1",
                          "--index-dir", str(tmp_path / "index")], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert '"001_23892b46a24a6566.txt"' in out.stdout


def test_filters_become_milvus_expressions():
    assert milvus_filter({}) == ""
    assert milvus_filter({"country": ("Côte d'Ivoire",), "lang": ("FR", "en")}) == \
        'country in ["cote d\'ivoire"] and lang in ["fr", "en"]'
    assert milvus_filter({"funder": ("Suisse", "UE")}, funders=["confederation suisse", "ue", "usaid"]) == \
        'ARRAY_CONTAINS_ANY(funders, ["confederation suisse", "ue"])'
    assert milvus_filter({"funder": ('"aid"',)}, funders=['usaid', 'the "aid" fund']) == \
        'ARRAY_CONTAINS_ANY(funders, ["the \\"aid\\" fund"])'
    assert milvus_filter({"funder": ("nobody",)}, funders=["usaid"]) == 'ARRAY_CONTAINS_ANY(funders, [""])'
    assert milvus_filter({"source": ("./reports_2020/",)}) == '(source like "reports\\\\_2020/%")'
    assert milvus_filter({"year": ("2012-2014", "2020")}) == "ARRAY_CONTAINS_ANY(years, [2012, 2013, 2014, 2020])"
    assert milvus_filter({}, ["a\\b"]) == 'id not in ["a\\\\b"]'


def test_terms_and_versions_for_full_text_search():
    assert _term_text(["lao/027", "28400000", "sante", "\x00"]) == "lao_027 28400000 sante"
    assert len(_term_text(["abcdefgh"] * 10000).encode()) <= 65535
    assert _version("v2.3.5") == (2, 3, 5) and _version("milvus_lite-3.2.2") == (3, 2, 2)
    assert _version("v2.5.0-beta") == (2, 5, 0) and _version("unknown") == ()
