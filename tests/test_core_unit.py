"""Fast tests of chunking, storage, retrieval and answers with a deterministic hashing embedder."""
from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from aidsearch.api import Aidsearch, open_index
from aidsearch.answer import AnswerPolicy, asked_kinds, compose, field_label, rank_sentences
from aidsearch.chunk import chunk_document, passage_sentences, units
from aidsearch.config import load_settings
from aidsearch.embed import HashEmbedder
from aidsearch.errors import ConfigError, IndexCorruptError, IndexLockedError, QueryError
from aidsearch.query import parse_filters
from aidsearch.store import IndexStore
from aidsearch.types import Answer, Chunk, Citation, Document, Hit, Page, content_hash
from helpers import copy_seeds

pytestmark = pytest.mark.unit
EMB = HashEmbedder()


def _doc(text: str, pages: tuple[Page, ...] = ()) -> Document:
    return Document(content_hash(text), "a.txt", "Title", text, "en", {}, pages)


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=80),
                min_size=1, max_size=30),
       st.integers(16, 80), st.integers(0, 7))
@hsettings(max_examples=150, deadline=None)
def test_chunk_offsets_are_exact(parts, max_tokens, overlap):
    text = "\n".join(parts)
    doc = _doc(text)
    chunks = chunk_document(doc, EMB.count_tokens, max_tokens=max_tokens, overlap=overlap)
    for c in chunks:
        assert c.text == text[c.start:c.end]
        assert c.text.strip() == c.text and c.text
    covered = {i for c in chunks for i in range(c.start, c.end)}
    assert all(text[i].isspace() or i in covered for i in range(len(text)))
    for s in (s for c in chunks for s in passage_sentences(c.text)):
        assert s.text


def test_chunks_respect_token_budget_and_overlap():
    text = "\n\n".join(" ".join(f"Sentence {i} {k} " + " ".join(f"w{i}x{k}x{j}" for j in range(6)) + "."
                                  for k in range(6)) for i in range(20))
    chunks = chunk_document(_doc(text), EMB.count_tokens, max_tokens=80, overlap=20)
    assert len(chunks) > 5
    assert all(EMB.count_tokens([c.text])[0] <= 80 + 8 for c in chunks)
    assert sum(b.start < a.end for a, b in zip(chunks, chunks[1:])) >= len(chunks) // 2
    plain = chunk_document(_doc(text), EMB.count_tokens, max_tokens=80, overlap=0)
    assert all(b.start >= a.end for a, b in zip(plain, plain[1:]))
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    with pytest.raises(ValueError, match="overlap must be in 0..39, got 40"):
        chunk_document(_doc(text), EMB.count_tokens, max_tokens=80, overlap=40)


def test_pages_follow_chunks():
    p1, p2 = "First page text about wells. " * 10, "Second page text about schools. " * 10
    text = p1 + "\n\n" + p2
    doc = _doc(text, (Page(1, 0, len(p1)), Page(2, len(p1) + 2, len(text))))
    chunks = chunk_document(doc, EMB.count_tokens, max_tokens=40, overlap=0)
    assert chunks[0].page == 1 and chunks[-1].page == 2
    for c in chunks:
        for s in passage_sentences(c.text):
            assert c.page_at(s.start) == (1 if c.start + s.start < len(p1) else 2)


def test_label_lines_join_their_values():
    text = ("Country\nLaos\n\nTotal budget\n28,400,000 EUR\nDonors Amount\n"
            "Swiss Agency for Development and Cooperation (SDC)\nUS$ 4,000,000\n")
    got = [s.text for s in passage_sentences(text)]
    assert "Country: Laos" in got and "Total budget: 28,400,000 EUR" in got
    assert "Swiss Agency for Development and Cooperation (SDC): US$ 4,000,000" in got


def test_sentence_split_keeps_abbreviations():
    spans = units("Mr. Smith met Dr. Jones. The U.N. agreed. Il a dit : « Oui. » Puis il est parti.")
    assert len(spans) == 4


def test_filter_parsing():
    assert parse_filters(["country=Laos", "country=Kosovo", "year=2014-2016"]) == {
        "country": ("Laos", "Kosovo"), "year": ("2014-2016",)}
    assert parse_filters({"lang": ["fr"], "funder": ""}) == {"lang": ("fr",)}
    for bad, msg in ((["country"], "malformed filter"), (["size=3"], "unknown filter 'size'"),
                     (["year=recent"], "bad year filter 'recent'"), (["=x"], "malformed filter")):
        with pytest.raises(QueryError, match=msg):
            parse_filters(bad)


def _hit(n: int) -> Hit:
    chunk = Chunk(f"c{n}", f"d{n}", f"s{n}.txt", "T", "Total budget\n28,400,000 EUR", 0, 27, "en")
    return Hit(chunk, 1.0, n, 0.9, 1.0)


def test_citations_are_one_based_and_bounded():
    answer = Answer("q", "en", True, "x [1] y [2]", (Citation(1, _hit(1)), Citation(2, _hit(2))))
    assert answer.citation(1).hit.rank == 1 and answer.citation(2).hit.rank == 2
    for bad in (0, -1, 3):
        with pytest.raises(IndexError):
            answer.citation(bad)


def test_compose_numbers_citations_in_order_of_use():
    hits = [_hit(1), _hit(2)]
    q = "What is the total budget?"
    qv = EMB.encode_queries([q])[0]
    answer = compose(q, "en", hits, qv,
                     lambda h: EMB.encode_passages([s.text for s in passage_sentences(h.chunk.text)]))
    assert answer.found and answer.text.endswith("[1]") and answer.citations[0].n == 1
    assert answer.citations[0].sentences == ((0, 27),)
    none = compose(q, "fr", [], qv, lambda h: np.zeros((0, 64)))
    assert not none.found and none.text == "Aucune réponse trouvée dans les documents indexés."


@pytest.mark.parametrize("sentence, kind", [
    ("Budget: 750,000 CAD", "amount"), ("Donor: Canada (CIDA)", "funder"), ("Bailleur(s) : AFD", "funder"),
    ("Pays : Sénégal", "place"), ("Durée totale: 156 mois", "date"), ("Période d'exécution: 2016 - 2028", "date"),
    ("Luxembourg Government: 25,400,000 EUR", "amount"), ("Phase: 2", None), ("Partner: 12 districts", None),
    ("Lao Ministry of Health: 2011 - 2015", None), ("The project is located in Chongqing.", None),
    ("Objective: the project aims to strengthen district health services in three provinces of the country", None),
])
def test_field_label_names_fiche_fields(sentence, kind):
    assert field_label(sentence) == kind


@pytest.mark.parametrize("question, kinds", [
    ("Which organisations fund water projects in Burundi?", ["funder"]),
    ("Quelle coopération finance le programme PRODDEL ?", ["funder"]),
    ("How much funding did Canada provide for flood relief?", ["amount"]),
    ("Dans quelles régions du Burkina Faso les centres financiers seront-ils créés ?", []),
    ("Until which month does the agency fully fund the first cohort?", ["date"]),
    ("Quelle est la durée totale du projet ?", ["date"]),
])
def test_asked_kinds(question, kinds):
    assert asked_kinds(question) == kinds


def test_a_fiche_label_line_does_not_answer_a_question_about_something_else():
    text = "Donor: Canada (CIDA)\nThe project is located in Chongqing, a municipality of 30 million people."
    chunk = Chunk("c1", "d1", "s1.txt", "Migrant labour health", text, 0, len(text), "en")
    hit = Hit(chunk, 1.0, 1, 0.9, 1.0)
    q = "In which Chinese municipality does the project take place?"
    qv = EMB.encode_queries([q])[0]

    def vectors(h: Hit) -> np.ndarray:  # the label line is made the closer one to the question
        v = np.stack([qv, 0.9 * qv + 0.1 * EMB.encode_queries(["Chongqing"])[0]])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    ranked = rank_sentences(q, qv, [hit], vectors, AnswerPolicy())
    assert ranked[0].sentence.text.startswith("The project is located in Chongqing")
    plain = rank_sentences(q, qv, [hit], vectors, AnswerPolicy(label_penalty=0.0))
    assert plain[0].sentence.text == "Donor: Canada (CIDA)"
    funder = "Who funds the project in Chongqing?"
    assert rank_sentences(funder, qv, [hit], vectors, AnswerPolicy())[0].sentence.text == "Donor: Canada (CIDA)"


@pytest.fixture()
def small_index(tmp_path):
    settings = load_settings(corpus_dir=copy_seeds(tmp_path / "corpus"), index_dir=tmp_path / "index")
    open_index(settings=settings, embedder=EMB, create=True)
    return settings


def test_half_written_generation_is_ignored(small_index):
    store = IndexStore(small_index.index_dir)
    good = store.current()
    junk = small_index.index_dir / ".gen-000099.tmp-123"
    junk.mkdir()
    (junk / "manifest.json").write_text("{broken")
    (small_index.index_dir / ".CURRENT.tmp-5").write_text("gen-000099")
    app = Aidsearch(small_index, EMB)
    assert store.current() == good and app.stats()["documents"] == 5
    app.update(rebuild=True)
    assert not junk.exists() and store.current() != good


def test_damaged_index_gives_one_line_error(small_index):
    store = IndexStore(small_index.index_dir)
    (store.current() / "chunks.jsonl").write_text("not json\n")
    with pytest.raises(IndexCorruptError, match=r"damaged .*aidsearch index --rebuild") as err:
        Aidsearch(small_index, EMB)
    assert "\n" not in str(err.value)
    report = open_index(settings=small_index, embedder=EMB, create=True).created
    assert report.written and Aidsearch(small_index, EMB).stats()["passages"] == report.chunks


def _hold_lock(index_dir, ready, release):
    store = IndexStore(index_dir)
    with store.lock():
        ready.set()
        release.wait(10)


def test_second_writer_is_refused(small_index):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(small_index.index_dir, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(IndexLockedError, match=rf"another process \(pid {proc.pid}\) is writing"):
            Aidsearch(small_index, EMB).update(lock_timeout=0)
    finally:
        release.set()
        proc.join(10)
    assert Aidsearch(small_index, EMB).update(rebuild=True).written


def test_manifest_records_model_chunking_and_documents(small_index):
    store = IndexStore(small_index.index_dir)
    m = store.read_manifest()
    assert m["model"]["fingerprint"] == EMB.info.fingerprint
    assert m["chunking"]["max_tokens"] == small_index.chunk_tokens
    assert set(m["documents"]) == {p.name for p in small_index.corpus_dir.iterdir()}
    assert m["languages"] == {"en": 3, "fr": 2}
    assert {"sentence-transformers", "faiss-cpu", "aidsearch"} <= set(m["versions"])


def test_hash_embedder_search_finds_exact_words(small_index):
    app = Aidsearch(small_index, EMB)
    hits = app.search("Gjilan Prizren", k=3).hits
    assert hits[0].chunk.source.startswith("002")
    assert [h.rank for h in hits] == [1, 2, 3]
    data = json.loads(json.dumps(app.search("LAO/027").to_dict()))
    assert data["hits"][0]["source"].startswith("001")


def test_hnsw_recall_against_exact_search():
    from aidsearch.store import build_faiss

    rng = np.random.default_rng(7)
    centers = rng.normal(size=(50, 64)).astype(np.float32)
    vectors = centers[rng.integers(0, 50, 6000)] + 0.6 * rng.normal(size=(6000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(6000, 100, replace=False)] + 0.1 * rng.normal(size=(100, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = build_faiss(vectors, hnsw_threshold=10**9)
    approx = build_faiss(vectors, hnsw_threshold=1000)
    assert type(exact).__name__ == "IndexFlatIP" and type(approx).__name__ == "IndexHNSWSQ"
    _, truth = exact.search(queries, 10)
    _, found = approx.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.95


def test_adding_documents_extends_the_hnsw_graph_and_removing_one_rebuilds_it(tmp_path, monkeypatch):
    import aidsearch.store as store

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    topics = ["water wells", "maternal health", "rural roads", "teacher training", "rice irrigation", "solar power"]
    for i in range(60):
        (corpus / f"d{i:02d}.txt").write_text(f"Project {i} on {topics[i % 6]} in district {i}, budget {i * 1000} "
                                             f"EUR.\n\nIt runs for {i % 5 + 1} years.", encoding="utf-8")
    monkeypatch.setattr(store, "HNSW_THRESHOLD", 40)
    monkeypatch.setattr(store, "TAIL_ROWS", 0)  # every added passage is linked into the graph at once
    monkeypatch.setattr(store, "TAIL_SHARE", 0.0)
    extended = []
    real_extend = store.extend_faiss
    monkeypatch.setattr(store, "extend_faiss", lambda base, v: extended.append(base.ntotal) or real_extend(base, v))
    ix = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "index"), embedder=EMB,
                    create=True)
    first = IndexStore(tmp_path / "index").load()
    assert first.manifest["faiss"] == "hnsw" and extended == []
    (corpus / "new.txt").write_text("A new project on solar power for clinics in district 99.", encoding="utf-8")
    ix.search("solar")
    loads = []
    real_load = store.IndexStore.load
    monkeypatch.setattr(store.IndexStore, "load", lambda self: loads.append(1) or real_load(self))
    report = ix.update()
    assert loads == [] and report.generation is None  # the engine answers from what it wrote, read from nowhere
    held = ix.retriever().gen
    monkeypatch.setattr(store.IndexStore, "load", real_load)
    gen = IndexStore(tmp_path / "index").load()
    assert held.folder == gen.folder and held.manifest == gen.manifest and held.chunks == gen.chunks
    assert held.documents == gen.documents and held.faiss_index.ntotal == gen.faiss_index.ntotal
    assert np.array_equal(held.sentence_offsets, gen.sentence_offsets)
    last = len(gen.chunks) - 1
    assert np.array_equal(held.chunk_sentence_vectors(last), gen.chunk_sentence_vectors(last))
    assert np.allclose(held.lexical.scores("solar clinics district"), gen.lexical.scores("solar clinics district"))
    assert extended == [first.faiss_index.ntotal] and gen.faiss_index.ntotal == len(gen.chunks) > len(first.chunks)
    assert gen.faiss_index.hnsw.efSearch == first.faiss_index.hnsw.efSearch == store.HNSW_EF_SEARCH
    hit = ix.search("solar power for clinics district 99", k=1).hits[0]
    assert hit.chunk.source == "new.txt"
    vectors = gen.vectors().astype(np.float32)
    _, found = gen.faiss_index.search(vectors[:20], 1)
    assert (found[:, 0] == np.arange(20)).all()  # every passage is its own nearest neighbour in the graph
    (corpus / "d00.txt").unlink()
    ix.update()
    assert extended == [first.faiss_index.ntotal]  # a removal builds the graph again
    assert IndexStore(tmp_path / "index").load().faiss_index.ntotal == len(gen.chunks) - 1


def test_passages_added_to_a_large_index_wait_in_an_exact_tail_until_it_is_full(tmp_path, monkeypatch):
    """An update that adds a few passages to an HNSW index leaves the graph and its file as they are and scores the
    new passages exactly beside it; once the tail outgrows its bound, one update links it into the graph."""
    import os

    import aidsearch.store as store
    from aidsearch.backends import FaissSearch

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    topics = ["water wells", "maternal health", "rural roads", "teacher training", "rice irrigation", "solar power"]
    for i in range(60):
        (corpus / f"d{i:02d}.txt").write_text(f"Project {i} on {topics[i % 6]} in district {i}.", encoding="utf-8")
    monkeypatch.setattr(store, "HNSW_THRESHOLD", 40)
    monkeypatch.setattr(store, "TAIL_ROWS", 4)
    monkeypatch.setattr(store, "TAIL_SHARE", 0.0)
    ix = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "index"), embedder=EMB,
                    create=True)
    first = ix.retriever().gen
    inode = os.stat(first.folder / "index.faiss").st_ino
    towns = ["Kananga", "Tshikapa", "Mbuji", "Luebo", "Ilebo"]
    for i in range(3):
        (corpus / f"new{i}.txt").write_text(f"Cholera vaccines for clinics of {towns[i]} in Kasai.", encoding="utf-8")
    ix.update()
    held, gen = ix.retriever().gen, IndexStore(tmp_path / "index").load()
    assert held.faiss_index is first.faiss_index  # the graph in memory is not copied
    assert os.stat(gen.folder / "index.faiss").st_ino == inode and not first.folder.exists()
    assert gen.faiss_index.ntotal == gen.manifest["faiss_rows"] == len(first.chunks) == len(gen.chunks) - 3
    assert ix.search("cholera vaccines clinics Kasai", k=1).hits[0].chunk.source.startswith("new")

    vectors = gen.vectors().astype(np.float32)
    search = FaissSearch(gen)
    rng = np.random.default_rng(0)
    for row in (0, 30, len(gen.chunks) - 1):
        mask = rng.random(len(gen.chunks)) < 0.5
        mask[row] = True
        for allowed in (None, mask):
            ids, scores = search.search(vectors[row], 5, allowed, {}, None)
            exact = vectors @ vectors[row]
            if allowed is not None:
                exact[~allowed] = -np.inf
            assert np.allclose(vectors[ids[0]], vectors[row]) and np.allclose(scores, np.sort(exact)[::-1][:5],
                                                                               atol=1e-3)
            assert len(ids) == 5 and (allowed is None or allowed[ids].all())

    for i in range(3, 5):
        (corpus / f"new{i}.txt").write_text(f"Cholera vaccines for clinics of {towns[i]} in Kasai.", encoding="utf-8")
    ix.update()  # five passages outside the graph: more than the bound of four
    gen = IndexStore(tmp_path / "index").load()
    assert gen.faiss_index.ntotal == gen.manifest["faiss_rows"] == len(gen.chunks) == len(first.chunks) + 5
    vectors = gen.vectors().astype(np.float32)
    _, found = gen.faiss_index.search(vectors, 1)
    assert np.allclose(vectors[found[:, 0]], vectors)  # each passage (or its twin in words) is its own neighbour
    assert FaissSearch(gen).tail is None


def test_a_loaded_index_holds_repeated_strings_once_and_an_update_leaves_the_previous_manifest_alone(tmp_path):
    import copy

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"d{i}.md").write_text(f"# Project {i}\n\nWells in district {i}.\n\nCountry: Mali\nFunder: UNDP\n",
                                         encoding="utf-8")
    ix = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "index"), embedder=EMB,
                    create=True)
    gen = IndexStore(tmp_path / "index").load()
    docs = list(gen.documents.values())
    assert [d.metadata.get("country") for d in docs] == ["Mali"] * 4
    assert docs[0].metadata["country"] is docs[3].metadata["country"]
    assert next(iter(docs[0].metadata)) is next(iter(docs[2].metadata))  # the keys too
    for chunk in gen.chunks:
        doc = gen.documents[chunk.doc_id]
        assert doc.id is chunk.doc_id and doc.source is chunk.source
        assert gen.manifest["documents"][doc.source]["id"] is doc.id
    held = ix.retriever().gen
    before = copy.deepcopy(held.manifest)
    (corpus / "d1.md").write_text("# Project 1\n\nClinics in district 1, now with solar power.\n", encoding="utf-8")
    (corpus / "d4.md").write_text("# Project 4\n\nRoads in district 4.\n", encoding="utf-8")
    ix.update()
    assert held.manifest == before  # entries of unchanged files are shared, not changed in place
    after = ix.retriever().gen.manifest["documents"]
    assert after["d0.md"] is held.manifest["documents"]["d0.md"]
    assert after["d1.md"]["id"] != before["documents"]["d1.md"]["id"] and after["d4.md"]["chunks"] >= 1
    assert IndexStore(tmp_path / "index").load().manifest["documents"] == after


@pytest.mark.parametrize("share", [0.5, 0.05, 0.001, 0.0])
def test_masked_search_is_exact_on_flat_and_hnsw_indexes(share):
    from aidsearch.store import build_faiss, masked_search

    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(3000, 48)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    stored = vectors.astype(np.float16).astype(np.float32)  # as the HNSW graph keeps them
    mask = rng.random(3000) < share
    for index in (build_faiss(vectors, hnsw_threshold=10**9), build_faiss(vectors, hnsw_threshold=1000)):
        for q in vectors[:5] + 0.3 * rng.normal(size=(5, 48)).astype(np.float32):
            ids, scores = masked_search(index, q, mask, 20)
            rows = np.flatnonzero(mask)
            sims = stored[rows] @ q
            want = rows[np.argsort(-sims)[:20]]
            assert mask[ids].all() and len(ids) == min(20, len(rows))
            assert set(ids.tolist()) == set(want.tolist())
            assert np.allclose(np.sort(scores)[::-1], np.sort(sims)[::-1][:20], atol=2e-3)


def test_mixed_language_document_gets_chunk_languages():
    en = " ".join(["The health programme trained nurses and midwives in the northern provinces of the country."] * 6)
    fr = " ".join(["Le programme de santé a formé des infirmières et des sages-femmes dans les provinces du nord."] * 6)
    doc = Document(content_hash(en + fr), "mixed.txt", "Mixed", en + "\n\n" + fr, "en", {})
    chunks = chunk_document(doc, EMB.count_tokens, max_tokens=60, overlap=0)
    assert {c.lang for c in chunks} == {"en", "fr"}
    assert chunks[0].lang == "en" and chunks[-1].lang == "fr"


def test_open_index_creates_only_a_missing_index(tmp_path):
    from aidsearch.errors import IndexMissingError

    settings = load_settings(corpus_dir=copy_seeds(tmp_path / "corpus"), index_dir=tmp_path / "index")
    with pytest.raises(IndexMissingError):
        open_index(settings=settings, embedder=EMB)
    created = open_index(settings=settings, embedder=EMB, create=True)
    assert created.created.documents == 5 and created.created.written and created.stats()["generation"] == 1
    again = open_index(settings=settings, embedder=EMB, create=True)
    assert again.created is None and again.stats()["generation"] == 1
    (tmp_path / "corpus" / "new.txt").write_text("Chad schools\n\nAbéché got 12 classrooms.\n", encoding="utf-8")
    assert again.update().added == ("new.txt",) and again.stats()["documents"] == 6


def test_conversation_reads_follow_ups_with_the_previous_subject():
    from aidsearch.conversation import Conversation

    first = Conversation().turn("Which hospitals in Kosovo receive investments?")
    assert (first.query, first.followup_of, first.language) == (first.question, None, "en")
    assert first.after.subject == "hospitals Kosovo investments"
    second = first.after.turn("et son budget ?")
    assert second.query == "et son budget ? hospitals Kosovo investments"
    assert second.followup_of == "hospitals Kosovo investments" and second.language == "fr"
    assert second.after == first.after  # a follow-up keeps the subject
    third = second.after.turn("What is the total budget of the Lao-Luxembourg programme?")
    assert third.followup_of is None and third.after.subject == "Lao-Luxembourg programme"


def test_conversations_are_bounded_and_expire():
    from aidsearch.conversation import Conversation, Conversations
    from aidsearch.errors import QueryError

    now = [0.0]
    store = Conversations(limit=2, idle=10.0, clock=lambda: now[0])
    for name in ("a", "b"):
        store.put(name, Conversation(name.upper()))
    assert store.get("a").subject == "A"  # "a" is now the most recently used
    store.put("c", Conversation("C"))
    assert len(store) == 2 and store.get("b") == Conversation() and store.get("a").subject == "A"
    now[0] = 10.5
    assert len(store) == 0 and store.get("c") == Conversation()
    for bad in ("", "x" * 65, "a b", "../x", "é"):
        with pytest.raises(QueryError, match=r"^conversation_id must be 1 to 64 letters, digits, '-' or '_'$"):
            store.get(bad)
    store.put("x" * 64, Conversation("ok"))
    assert store.get("x" * 64).subject == "ok"


def test_add_files_keeps_good_files_and_says_why_others_are_not(small_index, tmp_path):
    from aidsearch.incoming import UploadRejected

    app = Aidsearch(small_index, EMB)
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "chad.txt").write_text("Chad schools\n\nThe Abéché school project built 12 classrooms.\n",
                                    encoding="utf-8")
    (stage / "tool.exe").write_bytes(b"MZ\x90\x00")
    (stage / "scan.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (stage / "quota.txt").write_text("Refused by the caller.\n", encoding="utf-8")

    def accept(path, size):
        if path.name == "quota.txt":
            raise UploadRejected("quota", files=1, mb=1)

    report = app.add_files(sorted(stage.iterdir()), accept=accept)
    assert [(f.name, f.source, f.fresh) for f in report.added] == [("chad.txt", "uploads/chad.txt", True)]
    reasons = {f.name: f.reason for f in report.rejected}
    assert set(reasons) == {"tool.exe", "scan.pdf", "quota.txt"}
    assert reasons["tool.exe"].startswith("unsupported type .exe") and "daily upload limit" in reasons["quota.txt"]
    assert report.index.added == ("uploads/chad.txt",) and report.index.documents == 6
    assert sorted(p.name for p in (small_index.corpus_dir / "uploads").iterdir()) == ["chad.txt"]
    assert app.search("Abéché classrooms", k=1).hits[0].chunk.source == "uploads/chad.txt"
    again = app.add_files([stage / "chad.txt"])
    assert [(f.source, f.fresh) for f in again.added] == [("uploads/chad.txt", False)] and not again.rejected


@given(st.text(max_size=60))
@hsettings(max_examples=300, deadline=None)
def test_fold_is_nfkd_without_combining_marks(text):
    import unicodedata

    from aidsearch.lexicon import fold

    decomposed = unicodedata.normalize("NFKD", text.lower())
    assert fold(text) == "".join(c for c in decomposed if not unicodedata.combining(c))
    assert fold("Période d'exécution Ŝ ﬁ ½") == "periode d'execution s fi 1⁄2"


def test_indexing_progress_counts_documents_then_passages_from_zero_to_all(tmp_path):
    from aidsearch.indexer import build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n in range(6):
        (corpus / f"doc{n}.md").write_text(f"# Report {n}\n\n" + f"The clinic in district {n} treated patients. " * 60)
    seen: list[tuple[str, int, int]] = []
    report = build_index(load_settings(corpus_dir=corpus, index_dir=tmp_path / "index", chunk_tokens=80,
                                       chunk_overlap=10), EMB, progress=lambda *a: seen.append(a))
    assert report.chunks > 6
    for stage, whole in (("read", 6), ("embed", report.chunks)):
        calls = [(done, total) for s, done, total in seen if s == stage]
        assert calls[0] == (0, whole) and calls[-1] == (whole, whole)
        assert all(total == whole for _, total in calls) and [d for d, _ in calls] == sorted({d for d, _ in calls})


def test_pace_gives_rate_and_time_left_once_a_stage_has_done_something():
    from aidsearch.indexer import Pace
    from aidsearch.web.strings import duration, progress_text

    now = [100.0]
    pace = Pace(clock=lambda: now[0])
    assert pace("embed", 0, 1000) == (None, None)
    now[0] = 110.0
    assert pace("embed", 50, 1000) == (5.0, 190.0) and pace("read", 3, 3) == (None, None)
    assert [duration(s) for s in (42, 190, 3900)] == ["42 s", "3 min", "1 h 05 min"]
    assert progress_text("en", "embed", 1200, 11123, 9.25, 190) == \
        "Indexing passages: 1,200 of 11,123 (9.2 per second, about 3 min left)"
    assert progress_text("fr", "read", 2, 1500) == "Lecture des documents : 2 sur 1\u202f500"
    assert progress_text("fr", "embed", 50, 1000, 5.0, 190) == \
        "Indexation des passages : 50 sur 1\u202f000 (5,0 par seconde, encore 3 min environ)"


def test_updates_tokenize_only_new_passages_and_keep_bm25_as_a_rebuild_would(tmp_path, monkeypatch):
    import aidsearch.lexical as lexical
    from aidsearch.store import TERMS

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, (place, topic) in enumerate([("Laos", "rice irrigation"), ("Kosovo", "hospital equipment"),
                                        ("Bénin", "pompes solaires"), ("Chad", "water wells LAO/027")]):
        (corpus / f"d{i}.txt").write_text(f"Project {i} in {place} on {topic}, budget {i + 1},250,000 EUR.")
    settings = load_settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    ix = open_index(settings=settings, embedder=EMB, create=True)
    tokenized: list[str] = []
    real = lexical.tokenize
    monkeypatch.setattr(lexical, "tokenize", lambda text: tokenized.append(text) or real(text))
    (corpus / "d4.txt").write_text("Project 4 in Laos on solar clinics, budget 5,250,000 EUR.")
    (corpus / "d3.txt").unlink()
    ix.update()
    assert len(tokenized) == 1 and tokenized[0].endswith("\nProject 4 in Laos on solar clinics, budget 5,250,000 EUR.")
    monkeypatch.setattr(lexical, "tokenize", real)
    updated = IndexStore(tmp_path / "index").load()
    assert (updated.folder / "bm25" / TERMS).is_file() and "wells" not in updated.terms().vocab
    open_index(settings=settings.with_overrides(index_dir=tmp_path / "fresh"), embedder=EMB, create=True)
    fresh = IndexStore(tmp_path / "fresh").load()
    order = [c.id for c in fresh.chunks]
    rows = [order.index(c.id) for c in updated.chunks]
    for query in ("Laos rice", "solar clinics", "5,250,000", "LAO/027 wells", "pompe solaire"):
        assert np.allclose(updated.lexical.scores(query), fresh.lexical.scores(query)[rows])
        assert updated.lexical.has_exact_terms(query) == fresh.lexical.has_exact_terms(query)
    (updated.folder / "bm25" / TERMS).unlink()  # a generation written before terms were kept
    (corpus / "d5.txt").write_text("Project 5 in Chad on school meals.")
    ix.update()
    assert len(IndexStore(tmp_path / "index").load().terms()) == len(updated.chunks) + 1


@pytest.mark.parametrize("block", [16_384, 7])
def test_bm25_matrix_is_the_one_bm25s_builds_itself(block, monkeypatch):
    import bm25s
    from bm25s.tokenization import Tokenized

    import aidsearch.lexical as lexical
    from aidsearch.lexical import LexicalIndex, Terms

    monkeypatch.setattr(lexical, "BM25_BLOCK", block)  # pairs counted 7 passages at a time: the same matrix

    rng = np.random.default_rng(3)
    words, weights = [f"w{i}" for i in range(40)], np.linspace(2, 0.1, 40)  # some words in most passages
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 30)), p=weights / weights.sum()))
             for _ in range(300)]
    texts += ["LAO/027 budget 29,110,000 EUR", "", "riz riz riz Laos"]
    terms = Terms.of(texts)
    ours = LexicalIndex(terms)._bm25
    bounds = terms.offsets.tolist()
    docs = [terms.ids.tolist()[a:b] for a, b in zip(bounds, bounds[1:])]
    theirs = bm25s.BM25()
    theirs.index(Tokenized(docs, {t: i for i, t in enumerate(terms.vocab)}), show_progress=False)
    for key in ("data", "indices", "indptr"):
        assert ours.scores[key].dtype == theirs.scores[key].dtype
        assert np.array_equal(ours.scores[key], theirs.scores[key])
    assert ours.scores["num_docs"] == theirs.scores["num_docs"] and ours.vocab_dict == theirs.vocab_dict
    assert ours.unique_token_ids_set == theirs.unique_token_ids_set and theirs.nonoccurrence_array is None


def test_terms_a_passage_holds_come_from_the_bm25_postings_as_tokenizing_would_give(tmp_path):
    from aidsearch.features import PREFIX, overlap
    from aidsearch.lexical import LexicalIndex, tokenize

    texts = ["Projet LAO/027 au Cambodge : 29 110 000 EUR pour les hôpitaux.", "Cambodia health financing, 2019.",
             "Irrigation du riz au Laos, phase 2.", "", "Hospital equipment for Kosovo; budget 1,250,000 EUR.",
             "Cambodian hospitals and the hospital fund."]
    built = LexicalIndex(texts)
    built.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path, len(texts))
    rows = np.array([5, 0, 3, 1, 4])
    for question in ("Who funds the hospitals in Cambodia?", "LAO/027 budget 29,110,000", "riz Laos 2019",
                     "nothing matches zzz", "hospitalisation cambodgienne"):
        terms = sorted(tokenize(question))
        sets = [set(tokenize(texts[r])) for r in rows]
        for index in (built, loaded):
            exact = index.holding(terms, rows)
            assert exact.tolist() == [[t in s for s in sets] for t in terms]
            shared = index.holding(terms, rows, prefix=PREFIX)
            assert np.allclose(shared.mean(0) if terms else 0.0, [overlap(frozenset(terms), s) for s in sets])
    assert built.holding(["hospital"], rows, prefix=PREFIX)[0].tolist() == [True, False, False, False, True]
    assert LexicalIndex([]).holding(["riz"], np.array([], dtype=np.int64)).shape == (1, 0)


def _data(gen, kind: str) -> bytes:
    """The bytes of the rows of ``kind`` in a generation, its files one after another (for ``.npy`` files, the
    bytes after each header)."""
    from aidsearch.store import NpyRows

    return b"".join(p.read_bytes()[NpyRows(p).offset if p.suffix == ".npy" else 0:] for p in gen.files(kind))


def _by_text(gen) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each passage's vector and sentence vectors, by the text embedded."""
    sentences, ends = gen.sentence_rows(range(len(gen.chunks))), gen.sentence_offsets
    vectors = gen.vectors()
    return {c.embed_text(): (vectors[i], sentences[ends[i]:ends[i + 1]]) for i, c in enumerate(gen.chunks)}


def test_adding_documents_links_the_previous_files_and_anything_else_writes_them_again(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, place in enumerate(["Laos", "Kosovo", "Bénin"]):
        (corpus / f"d{i}.txt").write_text(f"Project {i} in {place} builds {i + 3} clinics.")
    ix = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "index"), embedder=EMB,
                    create=True)
    first = IndexStore(tmp_path / "index").load()
    kinds = ("chunks", "documents", "vectors", "sentences")
    before = {kind: _data(first, kind) for kind in kinds}
    inodes = {kind: os.stat(first.files(kind)[0]).st_ino for kind in kinds}
    seen = [_by_text(first)]
    (corpus / "d3.txt").write_text("Project 3 in Chad digs 12 wells.")
    ix.update()
    second = IndexStore(tmp_path / "index").load()
    for kind, old in before.items():
        new = _data(second, kind)
        assert new.startswith(old) and len(new) > len(old)
        files = second.files(kind)  # the first file is the previous one, linked: only the new rows are written
        assert len(files) == 2 and os.stat(files[0]).st_ino == inodes[kind] and files[1].name.startswith(kind)
        if kind in ("chunks", "documents"):
            assert len(new.splitlines()) == len(old.splitlines()) + 1
    held = ix.retriever().gen
    assert list(held.documents) == list(second.documents) and held.chunks == second.chunks
    seen.append(_by_text(second))
    _, found = second.faiss_index.search(second.vectors().astype(np.float32), 1)
    assert (found[:, 0] == np.arange(len(second.chunks))).all() and second.manifest["faiss"] == "flat"
    assert ix.search("wells in Chad", k=1).hits[0].chunk.source == "d3.txt"
    (corpus / "d0.txt").rename(corpus / "moved.txt")  # same text under another name: the rows change
    (corpus / "d4.txt").write_text("Project 4 in Peru trains 9 nurses.")
    ix.update()
    third = IndexStore(tmp_path / "index").load()
    assert sorted(d.source for d in third.documents.values()) == ["d1.txt", "d2.txt", "d3.txt", "d4.txt", "moved.txt"]
    assert list(ix.retriever().gen.documents) == list(third.documents)
    seen.append(_by_text(third))
    fresh = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "fresh"), embedder=EMB,
                       create=True).retriever().gen
    expected = {**seen[0], **_by_text(fresh)}  # appended, then written again: each passage keeps its own vectors
    assert len(seen[1]) == 4 and len(seen[2]) == 5 == third.faiss_index.ntotal
    for rows in seen[1:]:
        for text, (vector, sentences) in rows.items():
            assert np.array_equal(vector, expected[text][0]) and np.array_equal(sentences, expected[text][1])


def test_segments_past_the_limit_are_written_again_as_one_file(tmp_path, monkeypatch):
    import aidsearch.store as store

    monkeypatch.setattr(store, "MAX_SEGMENTS", 3)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "d0.txt").write_text("Project 0 in Laos builds 3 clinics.")
    ix = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "index"), embedder=EMB,
                    create=True)
    counts = []
    for i, place in enumerate(["Chad", "Peru", "Togo"], 1):
        (corpus / f"d{i}.txt").write_text(f"Project {i} in {place} digs {i + 10} wells.")
        ix.update()
        gen = IndexStore(tmp_path / "index").load()
        counts.append({kind: len(gen.files(kind)) for kind in store.STORED})
    assert counts == [dict.fromkeys(store.STORED, n) for n in (2, 3, 1)]
    assert gen.manifest.get("segments") is None and gen.files("vectors")[0].name == "vectors.npy"
    fresh = open_index(settings=load_settings(corpus_dir=corpus, index_dir=tmp_path / "fresh"), embedder=EMB,
                       create=True).retriever().gen
    assert [c.embed_text() for c in gen.chunks] == [c.embed_text() for c in fresh.chunks]
    assert np.array_equal(gen.vectors(), fresh.vectors())
    assert np.array_equal(gen.sentence_rows(range(4)), fresh.sentence_rows(range(4)))
    assert ix.search("wells in Peru", k=1).hits[0].chunk.source == "d2.txt"


def test_rows_of_several_files_read_as_one(tmp_path):
    from aidsearch.store import SegmentRows

    parts = [np.arange(i * 6, i * 6 + 3 * n, dtype=np.float16).reshape(n, 3) for i, n in enumerate((2, 0, 3))]
    for i, part in enumerate(parts):
        np.save(tmp_path / f"p{i}.npy", part)
    rows = SegmentRows([tmp_path / f"p{i}.npy" for i in range(3)])
    whole = np.concatenate(parts)
    assert len(rows) == 5 and rows.shape == (5, 3)
    for a, b in ((0, 5), (1, 3), (2, 2), (4, 5), (0, 1)):
        assert np.array_equal(rows.rows(a, b), whole[a:b])
    assert np.array_equal(rows.take([4, 0, 1, 3]), whole[[4, 0, 1, 3]])
    np.save(tmp_path / "wide.npy", np.zeros((1, 4), np.float16))
    with pytest.raises(ValueError, match="wide.npy: float16 rows of width 4, p0.npy has float16 rows of width 3"):
        SegmentRows([tmp_path / "p0.npy", tmp_path / "wide.npy"])


@pytest.mark.parametrize("argv, expected", [
    (["index", "--ray"], ["index", "--ray", "local"]),
    (["index", "--ray", "--json"], ["index", "--ray", "local", "--json"]),
    (["index", "--ray", "corpus/"], ["index", "--ray", "local", "corpus/"]),
    (["index", "--ray", "auto"], ["index", "--ray", "auto"]),
    (["index", "--ray", "ray://head:10001", "corpus/"], ["index", "--ray", "ray://head:10001", "corpus/"]),
    (["index", "--ray", "10.0.0.5:6379"], ["index", "--ray", "10.0.0.5:6379"]),
    (["ask", "ray?"], ["ask", "ray?"]),
])
def test_ray_flag_without_an_address_means_this_machine(argv, expected):
    from aidsearch.cli import _ray_address

    assert _ray_address(argv) == expected


@pytest.mark.parametrize("argv, message", [
    (["search", "budget", "--bogus"], "error: unrecognized arguments: --bogus"),
    (["search", "budget", "--k", "many"], "error: argument --k: 'many' is not a whole number from 1 to 100"),
    (["ask", "budget?", "--k", "101"], "error: argument --k: '101' is not a whole number from 1 to 100"),
    (["search"], "error: the following arguments are required: query"),
    (["index", "--ray-workers", "-1"], "error: argument --ray-workers: '-1' is not a whole number of at least 0"),
    (["index", "--wait", "soon"], "error: argument --wait: 'soon' is not a number of seconds"),
    (["ask", "budget?", "--generate", "--extractive"], "error: argument --extractive: not allowed with argument "
                                                       "--generate"),
    (["nosuchcommand"], "error: argument COMMAND: invalid choice: 'nosuchcommand' (choose from 'index', 'search', "
                        "'ask', 'chat', 'stats', 'eval', 'model')"),
])
def test_command_line_mistakes_get_one_line(argv, message, capsys):
    from aidsearch.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    out = capsys.readouterr()
    assert out.err.splitlines() == [message] and out.out == ""


@pytest.mark.parametrize("argv, shown", [
    ([], ["usage: aidsearch", "index", "search", "ask", "chat", "stats", "eval", "model"]),
    (["--help"], ["usage: aidsearch", "Build or update the index."]),
    (["model"], ["usage: aidsearch model", "info"]),
    (["ask", "--help"], ["usage: aidsearch ask", "--generate", "--extractive", "--server URL", "--filter KEY=VALUE"]),
    (["index", "--help"], ["usage: aidsearch index", "--ray ADDRESS", "--rebuild", "[corpus]"]),
])
def test_help_lists_the_commands_and_options(argv, shown, capsys):
    from aidsearch.cli import main

    try:
        main(argv)
    except SystemExit as stopped:
        assert stopped.code == 0
    out = capsys.readouterr()
    assert out.err == "" and all(text in out.out for text in shown), out.out


@pytest.mark.parametrize("rows", [[], [3], [0, 1, 2, 5, 6, 9, 19], [5, 4, 3], [7, 7, 8], list(range(20))])
def test_stored_rows_are_read_in_the_order_asked(tmp_path, rows):
    from aidsearch.store import NpyRows

    vectors = np.arange(60, dtype=np.float16).reshape(20, 3)
    np.save(tmp_path / "v.npy", vectors)
    assert np.array_equal(NpyRows(tmp_path / "v.npy").take(rows), vectors[rows].reshape(-1, 3))


def test_pooled_sentence_vectors_come_from_each_sentence_of_the_passage(tmp_path):
    from aidsearch.indexer import build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "fiche.md").write_text("# Health programme in Kosovo\n\n## Budget\nTotal budget: 29,110,000 EUR.\n\n"
                                     + "The programme builds district hospitals. Midwives are trained there. " * 20)
    (corpus / "laos.txt").write_text("Projet d'eau potable au Laos. Le budget est de 4 millions d'euros. " * 15)
    built = {}
    for mode in ("separate", "pooled"):
        build_index(load_settings(corpus_dir=corpus, index_dir=tmp_path / mode, chunk_tokens=60, chunk_overlap=10,
                                  sentence_vectors=mode), EMB)
        built[mode] = IndexStore(tmp_path / mode).load()
    pooled, separate = built["pooled"], built["separate"]
    assert pooled.manifest["sentence_vectors"] == "pooled" and separate.manifest["sentence_vectors"] == "separate"
    assert np.array_equal(pooled.vectors(), separate.vectors())
    assert np.array_equal(pooled.sentence_offsets, separate.sentence_offsets)
    assert any(c.context for c in pooled.chunks)
    differ = 0
    for r, c in enumerate(pooled.chunks):
        sentences = [s.text for s in passage_sentences(c.text)]
        assert np.allclose(pooled.chunk_sentence_vectors(r), EMB.encode_passages(sentences), atol=1e-3)
        differ += not np.allclose(separate.chunk_sentence_vectors(r), EMB.encode_passages(sentences), atol=1e-3)
    assert differ  # separate vectors give short sentences the passage's context
    with pytest.raises(ConfigError, match="sentence_vectors must be one of separate, pooled"):
        load_settings(sentence_vectors="mean")


def test_an_onnx_graph_the_optimizer_cannot_fuse_is_kept_as_it_is(tmp_path, caplog):
    from types import SimpleNamespace

    from aidsearch.embed import _fuse

    path = tmp_path / "encoder.onnx"
    path.write_bytes(b"not a graph")
    _fuse(path, SimpleNamespace(num_attention_heads=12, hidden_size=384))
    assert path.read_bytes() == b"not a graph" and "the ONNX graph is not fused" in caplog.text
