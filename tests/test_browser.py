"""The chat page in headless Chromium against a real index served by uvicorn."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM_ARGS, MARKUP, MARKUP_QUESTION, ROOT, open_engine, start_server

pytestmark = [pytest.mark.browser, pytest.mark.model]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
KOSOVO_FR = "002_7c5a3c9fa8d73ed7.txt"
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder):
    return open_engine(tmp_path_factory.mktemp("webui"), embedder)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: apt-get install -y chromium chromium-driver (or `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    pg.goto(server.url)
    pg.wait_for_selector("#question textarea")
    yield pg
    assert dialogs == [], f"a dialog fired: {dialogs}"
    context.close()


def ask(page, question: str):
    """Type and send ``question``; returns the locator of the new answer."""
    before = page.locator("#chat .as-answer").count()
    page.fill("#question textarea", question)
    page.click("#ask-btn")
    answer = page.locator("#chat .as-answer").nth(before)
    answer.wait_for()
    return answer


def screenshot(page, name: str) -> None:
    """Save the page with the latest question scrolled to the top of the chat."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator('#chat [data-testid="user"]').last.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / name))


def test_english_question_answered_by_french_document(page, engine):
    answer = ask(page, "Which hospitals in Kosovo receive investments?")
    assert "Gjilan" in answer.locator(".as-text").inner_text()
    assert answer.locator(".as-ref").first.inner_text() == "[1]"
    card = answer.locator(".as-card").first
    assert card.locator(".as-n").inner_text() == "[1]"
    assert "Kosovo" in card.locator(".as-title").inner_text()
    chips = card.locator(".as-chips").inner_text()
    assert "Kosovo" in chips and "French" in chips and "Similarity" in chips and KOSOVO_FR in chips
    assert "Gjilan" in card.locator(".as-passage mark").first.inner_text()
    context = card.locator(".as-context")
    assert not context.is_visible()
    card.locator("summary").click()
    context.wait_for(state="visible")
    assert ("Gjilan" in context.inner_text()
            and len(context.inner_text()) > len(card.locator(".as-passage").inner_text()))
    doc_id = next(d.id for d in engine.documents() if d.source == KOSOVO_FR)
    assert card.locator("a.as-doc-link").get_attribute("href") == f"/documents/{doc_id}"
    assert card.locator("a.as-doc-text").get_attribute("href") == f"/documents/{doc_id}/text"
    card.locator("summary").click()  # collapse again for an overview screenshot
    screenshot(page, "answer.png")


def test_follow_up_keeps_the_conversation(page):
    ask(page, "Which hospitals in Kosovo receive investments?")
    second = ask(page, "and its budget?")
    assert "29 110 000" in second.locator(".as-text").inner_text()
    assert "Kosovo" in second.locator(".as-followup").inner_text()
    users = page.locator('#chat [data-testid="user"]')
    assert users.count() == 2
    assert users.nth(1).inner_text().strip() == "and its budget?"
    assert page.locator("#chat .as-answer").count() == 2


def test_language_filter_applies_to_next_question(page):
    page.locator("#filter-lang label", has_text="French").click()
    answer = ask(page, "What is the total budget of the health programme?")
    assert "lang=fr" in answer.locator(".as-filters").inner_text()
    cards = answer.locator(".as-card")
    assert cards.count() > 0 and cards.count() == answer.locator(".as-card.as-lang-fr").count()
    assert set(answer.locator(".as-chip-lang .as-chip-v").all_inner_texts()) == {"French"}
    page.click("#clear-filters")
    answer = ask(page, "What is the total budget of the Lao-Luxembourg Health Sector Support Programme Phase II?")
    assert answer.locator(".as-filters").count() == 0
    assert "28,400,000" in answer.locator(".as-text").inner_text()


def test_country_filter(page):
    page.locator("#filter-country input").click()
    page.locator("ul[role=listbox] li", has_text="Laos").first.click()
    page.keyboard.press("Escape")
    answer = ask(page, "What is the total budget?")
    assert "country=Laos" in answer.locator(".as-filters").inner_text()
    countries = answer.locator(".as-chip-country .as-chip-v").all_inner_texts()
    assert countries and set(countries) == {"Laos"}


def test_french_question_switches_the_interface(page):
    assert page.locator("#ask-btn").inner_text().strip() == "Ask"
    answer = ask(page, "Quelle est la durée totale du projet au Kosovo ?")
    assert "156" in answer.locator(".as-text").inner_text()
    assert answer.locator(".as-text mark.as-span").inner_text() == "156 mois"  # the answer itself, marked
    page.wait_for_function("document.querySelector('#ask-btn').innerText.trim() === 'Demander'")
    assert "Voir le passage" in answer.locator(".as-expand").first.inner_text()
    assert "Ouvrir l'original" in answer.locator(".as-doc-link").first.text_content()
    assert "Pays" in answer.locator(".as-chips").first.inner_text()
    assert "Pays" in page.locator("#filter-country").inner_text()
    assert "Filtres" in page.locator("#filters").inner_text()
    assert "français" in page.locator("#filter-lang").inner_text()
    assert page.locator(".as-heading.as-lang-fr").count() == 1
    assert "Langues" in page.locator("#index-status").inner_text()
    screenshot(page, "answer-fr.png")
    none = ask(page, "Quelle est la capitale de l'Australie ?")
    assert "Aucune réponse" in none.inner_text()


def test_example_question_on_empty_chat(page):
    page.locator("#chat button.example", has_text="Quelle est la durée totale").click()
    answer = page.locator("#chat .as-answer").first
    answer.wait_for()
    assert "156" in answer.locator(".as-text").inner_text()
    assert page.locator('#chat [data-testid="user"]').first.inner_text().strip().startswith("Quelle est la durée")


def test_markup_in_a_passage_stays_inert(page):
    answer = ask(page, MARKUP_QUESTION)
    assert "1,234" in answer.locator(".as-text").inner_text()
    passage = answer.locator(".as-card .as-passage").first
    assert MARKUP.replace("<b>bold</b>", "") in passage.inner_text()
    assert "<b>bold</b>" in passage.inner_text()
    assert page.locator("#chat .as-card script, #chat .as-card b").count() == 0
    page.wait_for_timeout(500)
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_upload_docx_then_ask(page, engine, tmp_path):
    import docx

    path = tmp_path / "Zanzibar mangroves — rapport.docx"
    d = docx.Document()
    d.add_heading("Zanzibar mangrove restoration project", level=1)
    d.add_paragraph("Country: Tanzania. The Zanzibar mangrove project planted 47,000 seedlings along the coast of "
                    "Pemba island in 2022, with the help of fourteen village committees.")
    d.save(path)
    bad = tmp_path / "not-really.pdf"
    bad.write_bytes(b"GIF89a fake image")
    page.click("#upload button.label-wrap")
    page.locator("#upload-files input[type=file]").set_input_files([str(path), str(bad)])
    page.locator("#upload-files").get_by_text("not-really", exact=True).wait_for()
    page.evaluate("""() => {
        window.progressSeen = [];
        new MutationObserver(() => {
            const text = document.body.innerText;
            for (const m of text.matchAll(/(Reading documents|Indexing passages): [^\\n]*/g))
                if (!window.progressSeen.includes(m[0])) window.progressSeen.push(m[0]);
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    page.click("#upload-btn")
    status = page.locator("#upload-status")
    status.locator(".as-ok").wait_for(timeout=120_000)
    seen = page.evaluate("window.progressSeen")
    assert any(line.startswith("Indexing passages: 1 of 1 (") and "per second" in line for line in seen), seen
    assert "added and indexed" in status.locator(".as-ok").inner_text()
    assert "not a PDF" in status.locator(".as-bad").inner_text()
    saved = Path(engine.settings.corpus_dir) / "uploads" / path.name
    assert saved.is_file()
    page.wait_for_function("document.querySelector('#index-status').innerText.includes('7')")
    answer = ask(page, "How many seedlings did the Zanzibar mangrove project plant?")
    assert "47,000" in answer.locator(".as-text").inner_text()
    assert "uploads/" in answer.locator(".as-card .as-source").first.inner_text()


def test_thumbs_feedback_is_recorded(page, engine):
    answer = ask(page, "Which hospitals in Kosovo receive investments?")
    log = Path(engine.settings.index_dir) / "feedback.jsonl"
    before = log.read_text().splitlines() if log.exists() else []
    answer.wait_for()
    page.locator('#chat button[aria-label="Dislike"]').last.click()
    page.wait_for_function("true", timeout=1000)
    for _ in range(50):
        if log.exists() and len(log.read_text().splitlines()) > len(before):
            break
        page.wait_for_timeout(100)
    row = json.loads(log.read_text().splitlines()[-1])
    assert row["vote"] == "down" and row["question"] == "Which hospitals in Kosovo receive investments?"
    assert re.search("Gjilan", row["answer"]) and row["sources"][0]["source"] == KOSOVO_FR


def test_login_protects_the_page_and_lets_users_in(browser, engine):
    from aidsearch.api import Aidsearch
    from aidsearch.web import build_app

    guarded = Aidsearch(engine.settings.with_overrides(auth="alice:pa55"), engine.embedder)
    live = start_server(build_app(guarded))
    try:
        from playwright.sync_api import Error as PlaywrightError

        anonymous = browser.new_context()
        try:  # headless Chromium turns a 401 without a login dialog into a navigation error
            status: object = anonymous.new_page().goto(live.url).status
        except PlaywrightError as exc:
            status = 401 if "ERR_INVALID_AUTH_CREDENTIALS" in str(exc) else exc
        assert status == 401
        assert anonymous.request.get(live.url + "/api/stats").status == 401
        anonymous.close()
        context = browser.new_context(http_credentials={"username": "alice", "password": "pa55"})
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT)
        assert pg.goto(live.url).status == 200
        pg.wait_for_selector("#question textarea")
        assert "Gjilan" in ask(pg, "Which hospitals in Kosovo receive investments?").locator(".as-text").inner_text()
        context.close()
    finally:
        live.stop()


def test_api_docs_render_offline(browser, server):
    """/docs draws the API reference from assets the app serves itself: every request stays on the app's host."""
    from urllib.parse import urlparse

    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    hosts: set[str] = set()
    pg.on("request", lambda r: hosts.add(urlparse(r.url).netloc))
    pg.goto(f"{server.url}/docs")
    pg.wait_for_selector(".swagger-ui .opblock")
    paths = pg.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/ask" in p for p in paths) and any("/api/search" in p for p in paths), paths
    assert hosts == {urlparse(server.url).netloc}, hosts
    context.close()
