"""Generative answers: the faithfulness check on recorded model outputs, and the whole path against a real local
OpenAI-compatible server (llama.cpp's, from xllamacpp, serving a tiny model that is often wrong: these tests check
the protocol, streaming, fallbacks and the check, never the quality of its answers)."""
from __future__ import annotations

import json
from dataclasses import replace

import httpx
import numpy as np
import pytest

from aidsearch.generate import (MAX_SENTENCE, NOTICES, Draft, GenerationFailed, Notice, answer_schema, check, explain,
                                judge, parse_json, parse_text, visible_json)
from aidsearch.quantities import matches, quantities

LAO = ("Total budget\n28,400,000 EUR\nContribution breakdown\n  • Luxembourg Government\n    25,400,000 EUR\n"
       "The programme supports district hospitals in Bolikhamxay.")
KOSOVO = "Période d'exécution\n\n01.01.2016 - 31.12.2028\n\nDurée totale\n\n156 mois"
SECRET = "sk-test-never-shown-4417"


def _same_words(a, b):
    """A stand-in similarity for the unit tests: the share of words in common (1.0 for the same words)."""
    def words(t):
        return {w.strip(".,:;").lower() for w in t.split()} - {""}
    return np.array([[len(words(x) & words(y)) / max(1, len(words(x))) for y in b] for x in a])


# ------------------------------------------------------------------------------------ unit


@pytest.mark.unit
@pytest.mark.parametrize("a, b", [
    ("29 110 000 EUR", "29,110,000 EUR"), ("29,110,000 EUR", "29.11 million euros"),
    ("29,11 millions d'euros", "29 110 000 EUR"), ("EUR 3.000.000", "3 millions d'euros"), ("45 %", "45 percent"),
    ("31.12.2028", "31 December 2028"), ("156 mois", "156 months"),
])
def test_quantities_normalised_equal(a, b):
    found = quantities(b)
    assert all(matches(q, found, b) for q in quantities(a)), (quantities(a), found)


@pytest.mark.unit
@pytest.mark.parametrize("a, b", [
    ("150 millions de dollars", "150 million EUR"), ("29,110,000 EUR", "29,100,000 EUR"),
    ("29.5 million euros", "29,110,000 EUR"), ("156 months", "156 %"), ("2016", "2026"),
])
def test_quantities_that_differ(a, b):
    found = quantities(b)
    assert not all(matches(q, found, b) for q in quantities(a))


@pytest.mark.unit
def test_parse_text_and_json_outputs():
    drafts = parse_text("The budget is 28,400,000 EUR [1]. It supports hospitals [1, 2].\nNo marker here.")
    assert drafts == [Draft("The budget is 28,400,000 EUR.", (1,)), Draft("It supports hospitals.", (1, 2)),
                      Draft("No marker here.", ())]
    raw = '{"sentences": [{"text": "Le budget est de 28,4 millions d\'euros.", "cite": [1]}]}'
    assert parse_json(raw) == [Draft("Le budget est de 28,4 millions d'euros.", (1,))]
    assert visible_json(raw[:40]) == "Le budget est d"  # the sentence as far as it came
    assert visible_json(raw) == "Le budget est de 28,4 millions d'euros. [1]"
    with pytest.raises(Exception, match="not the answer format"):
        parse_json('{"sentences": [{"text": "cut off')


@pytest.mark.unit
def test_a_reply_cut_off_at_the_token_limit_keeps_its_complete_sentences():
    # The test model's reply to a held-out question, repeating itself until the token limit (shortened).
    raw = ('{\n  "sentences": [\n    {\n      "text": "The project is supporting the construction of 2,200 '
           'houses in 6 villages in Aceh Besar.",\n      "cite": [\n        1\n      ]\n    },\n    {\n      '
           '"text": "2. The project is supporting the construction of 550 houses","cite": [\n        2\n      ]\n'
           '    },\n    {\n      "text": "3. The project is supporting the construction of 1,000 houses in 1,000 '
           'houses in 2,200')
    assert parse_json(raw) == [
        Draft("The project is supporting the construction of 2,200 houses in 6 villages in Aceh Besar.", (1,)),
        Draft("2. The project is supporting the construction of 550 houses", (2,))]
    with pytest.raises(GenerationFailed, match="not the answer format"):
        parse_json(raw[:raw.index('"cite"')])  # no sentence with its citations: nothing to check
    text = answer_schema(3)["properties"]["sentences"]["items"]["properties"]["text"]
    assert text["maxLength"] == MAX_SENTENCE  # a model that repeats itself must still close its sentence


# A reply the test model really gave (the amount is made up), then edits of it.
RECORDED = '{"sentences": [{"text": "The total budget of the programme is 72,000,000 EUR.", "cite": [1]}]}'


@pytest.mark.unit
def test_check_drops_a_changed_amount():
    [c] = check(parse_json(RECORDED), [LAO], _same_words, 0.5)
    assert c.status == "dropped" and "72,000,000 EUR not in the cited passage" in c.reason
    assert not judge([c], "en").ok


@pytest.mark.unit
def test_check_keeps_the_right_amount_however_written():
    drafts = [Draft("Total budget: 28.4 million euros.", (1,)), Draft("Total budget: 28 400 000 EUR.", (1,))]
    assert [c.status for c in check(drafts, [LAO], _same_words, 0.4)] == ["kept", "kept"]


@pytest.mark.unit
def test_check_drops_a_wrong_currency():
    [c] = check([Draft("The total budget is 28,400,000 USD.", (1,))], [LAO], _same_words, 0.5)
    assert c.status == "dropped" and "28,400,000 USD" in c.reason


@pytest.mark.unit
def test_check_recites_a_sentence_without_marker_or_drops_it():
    drafts = [Draft("Durée totale: 156 mois.", ()), Draft("The project plants trees.", ())]
    kept, dropped = check(drafts, [LAO, KOSOVO], _same_words, 0.5)
    assert (kept.status, kept.cites, kept.reason) == ("recited", (2,), "no citation")
    assert dropped.status == "dropped"


@pytest.mark.unit
def test_check_recites_a_marker_to_a_missing_passage():
    [c] = check([Draft("Total budget: 28,400,000 EUR.", (3,))], [KOSOVO, LAO], _same_words, 0.5)
    assert c.status == "recited" and c.cites == (2,) and "[3], which does not exist" in c.reason
    [d] = check([Draft("Total budget: 99 EUR.", (0,))], [LAO], _same_words, 0.5)
    assert d.status == "dropped"


@pytest.mark.unit
def test_check_moves_a_sentence_to_the_passage_holding_its_number():
    [c] = check([Draft("Durée totale: 156 mois.", (1,))], [LAO, KOSOVO], _same_words, 0.5)
    assert c.status == "recited" and c.cites == (2,) and c.support is not None and c.support[0] == 2


@pytest.mark.unit
def test_judge_wants_the_question_language_and_enough_sentences():
    checked = check([Draft("Le budget total est de 28 400 000 EUR, selon la fiche du programme.", (1,))], [LAO],
                    lambda a, b: np.ones((len(a), len(b))), 0.5)
    assert checked[0].status == "kept"
    assert judge(checked, "fr").ok
    wrong = judge(checked, "en").notice
    assert wrong is not None and wrong.text("en") == "the model answered in French, not in English"
    assert wrong.text("fr") == "le modèle a répondu en français, pas en anglais"
    assert judge([], "fr").notice == Notice("empty")
    dropped = [replace(checked[0], status="dropped")] * 2 + checked
    assert explain(judge(dropped, "fr").notice, "fr") == {
        "notice": "2 of 3 generated sentences failed the check against the sources",
        "notice_text": "2 des 3 phrases générées n'ont pas passé la vérification contre les sources",
        "notice_code": "failed"}


@pytest.mark.unit
def test_every_notice_reads_in_both_languages():
    values = {"url": "http://x/v1", "status": 503, "seconds": 5, "dropped": 1, "total": 2, "got": "fr",
              "wanted": "en"}
    for code, (en, _) in NOTICES.items():
        notice = Notice.of(code, **{k: v for k, v in values.items() if "{" + k + "}" in en})
        assert "{" not in notice.text("en") + notice.text("fr") and notice.text("en") != notice.text("fr")
    failure = GenerationFailed("timeout", seconds="0.5")
    assert str(failure) == "the model took more than 0.5 s"
    assert failure.notice.text("fr") == "le modèle a mis plus de 0.5 s"


# ------------------------------------------------------------------------------------ the bundled model


@pytest.mark.model
def test_check_keeps_a_french_answer_to_an_english_passage(embedder):
    from aidsearch.api import check_threshold

    def similarity(a, b):
        return embedder.encode_passages(list(a)) @ embedder.encode_passages(list(b)).T

    drafts = [Draft("Le budget total du programme est de 28,4 millions d'euros.", (1,)),
              Draft("Le programme soutient les hôpitaux de district de Bolikhamxay.", (1,)),
              Draft("Le programme construit des écoles pour les filles.", (1,))]
    checked = check(drafts, [LAO], similarity, check_threshold())
    assert [c.status for c in checked] == ["kept", "kept", "dropped"], [c.to_dict() for c in checked]
    assert "too far from the cited passage" in checked[2].reason
    assert judge(checked, "fr").ok


# ------------------------------------------------------------------------------------ a real chat server


@pytest.fixture(scope="module")
def gen_engine(tmp_path_factory, embedder, chat_model):
    from browser_helpers import open_engine
    from llm_server import MODEL_NAME

    return open_engine(tmp_path_factory.mktemp("generate"), embedder, llm_url=chat_model.url, llm_model=MODEL_NAME,
                       llm_api_key=SECRET, llm_timeout=300, k=2)


QUESTION = "What is the total budget of the Lao-Luxembourg health programme phase II?"


def _engine_with(engine, **overrides):
    from aidsearch.api import Aidsearch

    return Aidsearch(engine.settings.with_overrides(**overrides), engine.embedder, models=engine.models)


@pytest.mark.model
def test_generative_answer_streams_then_is_checked(gen_engine):
    items = list(gen_engine.ask_stream(QUESTION))
    partial, answer = items[:-1], items[-1]
    assert partial and all(isinstance(p, str) for p in partial)
    gen = answer.generation
    assert gen["model"] == "smollm2-135m" and gen["format"] == "json" and gen["status"] in ("checked", "fallback")
    assert gen["sentences"] and {s["status"] for s in gen["sentences"]} <= {"kept", "recited", "dropped"}
    assert answer.timings_ms["first_token"] <= answer.timings_ms["generate"] + answer.timings_ms["embed"] + \
        answer.timings_ms["retrieve"] + answer.timings_ms["answer"]
    if gen["status"] == "checked":
        assert answer.mode == "generative" and not gen["notice"]
        markers = {int(n) for n in __import__("re").findall(r"\[(\d+)\]", answer.text)}
        assert markers == {c.n for c in answer.citations}
    else:
        assert answer.mode == "extractive" and gen["notice"] and answer.text == gen["extractive"]["answer"]
    assert SECRET not in json.dumps(answer.to_dict())


@pytest.mark.model
def test_server_down_gives_the_extractive_answer_and_a_reason(gen_engine):
    from browser_helpers import free_port

    port = free_port()
    answer = _engine_with(gen_engine, llm_url=f"http://127.0.0.1:{port}/v1").ask(QUESTION)
    assert answer.mode == "extractive" and answer.found
    assert answer.generation["notice"] == f"no model server answers at http://127.0.0.1:{port}/v1"


@pytest.mark.model
def test_timeout_gives_the_extractive_answer(gen_engine):
    answer = _engine_with(gen_engine, llm_timeout=0.05).ask(QUESTION)
    assert answer.mode == "extractive" and answer.generation["notice"] == "the model took more than 0.05 s"


@pytest.mark.model
def test_http_error_gives_the_extractive_answer(gen_engine, chat_model):
    answer = _engine_with(gen_engine, llm_url=chat_model.url + "/nowhere").ask(QUESTION)
    assert answer.mode == "extractive" and answer.generation["notice"] == "the model server answered HTTP 404"


@pytest.mark.model
def test_server_error_5xx_gives_the_extractive_answer(gen_engine, chat_model):
    from llm_server import Gateway

    gateway = Gateway(chat_model.url, status=503)
    try:
        answer = _engine_with(gen_engine, llm_url=gateway.url).ask(QUESTION)
    finally:
        gateway.stop()
    assert answer.mode == "extractive" and answer.found
    assert answer.generation["notice"] == "the model server answered HTTP 503" and gateway.schemas == [True]


@pytest.mark.model
def test_a_server_refusing_the_schema_is_asked_for_plain_text(gen_engine, chat_model):
    from llm_server import Gateway

    gateway = Gateway(chat_model.url, refuse_schema=True)
    try:
        auto = _engine_with(gen_engine, llm_url=gateway.url).ask(QUESTION)
        assert gateway.schemas == [True, False]
        assert auto.generation["format"] == "text" and not auto.generation["raw"].lstrip().startswith("{")
        assert auto.generation["sentences"] or auto.generation["notice"] == "the model gave an empty answer"
        strict = _engine_with(gen_engine, llm_url=gateway.url, llm_format="json").ask(QUESTION)
        assert gateway.schemas == [True, False, True]
        assert strict.mode == "extractive" and strict.generation["notice"] == "the model server answered HTTP 400"
        text = _engine_with(gen_engine, llm_url=gateway.url, llm_format="text").ask(QUESTION)
        assert gateway.schemas == [True, False, True, False] and text.generation["format"] == "text"
    finally:
        gateway.stop()


def test_llm_format_setting_is_checked():
    from aidsearch.config import load_settings
    from aidsearch.errors import ConfigError

    assert load_settings(llm_format="text").llm_format == "text"
    with pytest.raises(ConfigError, match="setting llm_format must be one of auto, json, text, got 'yaml'"):
        load_settings(llm_format="yaml")


@pytest.mark.model
def test_extractive_mode_asks_no_model(gen_engine):
    answer = _engine_with(gen_engine, llm_url="http://127.0.0.1:9/v1").ask(QUESTION, answer_mode="extractive")
    assert answer.generation is None and answer.mode == "extractive" and answer.found


@pytest.mark.model
def test_generation_status_reports_reachability_without_the_key(gen_engine, chat_model):
    status = gen_engine.generation_status()
    assert status["configured"] and status["reachable"] and status["model"] == "smollm2-135m"
    down = _engine_with(gen_engine, llm_url="http://127.0.0.1:9/v1").generation_status()
    assert down["configured"] and not down["reachable"]
    assert SECRET not in json.dumps(status) + repr(gen_engine.settings)


@pytest.mark.model
def test_http_api_generative_mode_and_health(gen_engine):
    from aidsearch.web import build_app
    from browser_helpers import start_server

    live = start_server(build_app(_engine_with(gen_engine, llm_timeout=60)))  # a timeout is a valid outcome here
    try:
        with httpx.Client(base_url=live.url, timeout=600) as client:
            health = client.get("/api/health").json()
            assert health["generation"]["reachable"] is True
            data = client.post("/api/ask", json={"question": QUESTION, "mode": "generative"}).json()
            assert data["generation"]["status"] in ("checked", "fallback") and data["mode"] in ("generative",
                                                                                                 "extractive")
            plain = client.post("/api/ask", json={"question": QUESTION, "mode": "extractive"}).json()
            assert plain["mode"] == "extractive" and "generation" not in plain
            bad = client.post("/api/ask", json={"question": QUESTION, "mode": "poetry"})
            assert bad.status_code == 400
            assert SECRET not in json.dumps(health) + json.dumps(data)
    finally:
        live.stop()


@pytest.mark.model
def test_cli_ask_generate(gen_engine, monkeypatch, capsys):
    from aidsearch.cli import main

    monkeypatch.setenv("AIDSEARCH_LLM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AIDSEARCH_LLM_API_KEY", SECRET)
    main(["ask", QUESTION, "--generate", "--json", "--index-dir", str(gen_engine.settings.index_dir)])
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "extractive" and data["generation"]["notice"].startswith("no model server answers")
    main(["ask", QUESTION, "--generate", "--index-dir", str(gen_engine.settings.index_dir)])
    out = capsys.readouterr()
    assert "quoting the documents instead" in out.err and "[1]" in out.out and SECRET not in out.out + out.err


def _events(resp: httpx.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in resp.iter_lines() if line.startswith("data:") and "[DONE]" not in line]


@pytest.mark.model
def test_ask_stream_sends_deltas_then_the_checked_answer(gen_engine):
    from aidsearch.web import build_app
    from browser_helpers import start_server

    live = start_server(build_app(_engine_with(gen_engine, llm_timeout=120)))
    try:
        with httpx.Client(base_url=live.url, timeout=600) as client:
            with client.stream("POST", "/api/ask/stream", json={"question": QUESTION, "mode": "generative"}) as resp:
                assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
                events = _events(resp)
            assert events[-1]["type"] == "answer" and all(e["type"] in ("delta", "replace") for e in events[:-1])
            gen = events[-1]["answer"]["generation"]
            if "format" in gen:  # the model wrote something before the check (not a timeout)
                assert any(e["type"] == "delta" and e["text"] for e in events[:-1])
            bad = client.post("/api/ask/stream", json={"question": "  "})
            assert bad.status_code == 400 and bad.json()["kind"] == "bad_request"
    finally:
        live.stop()


@pytest.fixture(scope="module")
def openai_client(gen_engine):
    """The web app of an engine without a model server, behind a login, for the OpenAI-compatible routes."""
    from aidsearch.web import build_app
    from browser_helpers import start_server

    live = start_server(build_app(_engine_with(gen_engine, llm_url="", auth="alice:secret")))
    with httpx.Client(base_url=live.url, timeout=300, headers={"Authorization": "Bearer alice:secret"}) as client:
        yield client
    live.stop()


@pytest.mark.model
def test_openai_models_and_login(openai_client):
    assert openai_client.get("/v1/models").json()["data"][0]["id"] == "aidsearch"
    url = str(openai_client.base_url).rstrip("/") + "/v1/models"
    assert httpx.get(url).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer alice:nope"})
    assert wrong.status_code == 401


@pytest.mark.model
def test_openai_chat_completion_with_sources_and_follow_up(openai_client):
    body = {"model": "aidsearch", "messages": [
        {"role": "user", "content": "What is the total budget of the Lao-Luxembourg health programme phase II?"},
        {"role": "assistant", "content": "…"},
        {"role": "user", "content": [{"type": "text", "text": "and its duration?"}]}]}
    data = openai_client.post("/v1/chat/completions", json=body).json()
    content = data["choices"][0]["message"]["content"]
    assert data["object"] == "chat.completion" and data["choices"][0]["finish_reason"] == "stop"
    assert "84 months" in content and "Sources:" in content and "[1] Lao-Luxembourg Health Sector" in content


@pytest.mark.model
def test_openai_chat_completion_streams(openai_client):
    body = {"stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with openai_client.stream("POST", "/v1/chat/completions", json=body) as resp:
        lines = [line for line in resp.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[5:]) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and chunks[-1]["choices"][0]["finish_reason"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "28,400,000 EUR" in text and len(chunks) > 5
    bad = openai_client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "hi"}]})
    assert bad.status_code == 400 and bad.json()["error"] == "the conversation has no user message to answer"
