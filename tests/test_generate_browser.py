"""The chat page with generative answers, in headless Chromium: the answer streams in and comes back checked, and
when the model server stops mid-conversation the next answer is the quoted one with a one-line notice in the
question's language."""
from __future__ import annotations

from pathlib import Path

import pytest

from browser_helpers import CHROMIUM_ARGS, open_engine, start_server

pytestmark = [pytest.mark.browser, pytest.mark.model]
CHROMIUM = Path("/usr/bin/chromium")
TOP = "#chat .as-answer:not(.as-quoted .as-answer)"  # the answers, not the quoted one inside a generated answer
SLOW = 900_000  # the tiny model shares the CPU with everything else: generous waits, never asserted on


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder, chat_model):
    from aidsearch.web import build_app
    from llm_server import MODEL_NAME

    engine = open_engine(tmp_path_factory.mktemp("genweb"), embedder, llm_url=chat_model.url, llm_model=MODEL_NAME,
                         llm_timeout=600, k=2)
    live = start_server(build_app(engine))
    yield live
    live.stop()


def test_streamed_checked_answer_then_fallback_when_the_server_stops(site, chat_model):
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: apt-get install -y chromium chromium-driver (or `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(SLOW)
        page.goto(site.url)
        page.wait_for_selector("#question textarea")

        page.fill("#question textarea", "What is the total budget of the Lao-Luxembourg health programme phase II?")
        page.click("#ask-btn")
        page.locator("#chat .as-writing .as-text").first.wait_for()  # the model's words, before the check
        first = page.locator(TOP).first
        first.locator(".as-written, .as-notice").first.wait_for()
        if first.locator(".as-written").count():
            assert first.locator(".as-written").inner_text() == \
                "written by smollm2-135m, checked against the sources"
            assert first.locator(":scope > .as-sources .as-card").count() >= 1
            assert first.locator(":scope > .as-sources .as-passage mark").count() >= 1  # the supporting sentence
            toggle = first.locator(".as-quoted")
            assert not toggle.locator(".as-answer").is_visible()
            toggle.locator("summary").click()
            assert "28,400,000 EUR" in toggle.locator(".as-answer .as-text").inner_text()
        else:  # the model's answer failed the check: the quoted answer and why
            assert first.locator(".as-notice").inner_text().endswith(": quoting the documents instead")
            assert "28,400,000 EUR" in first.locator(":scope > .as-text").inner_text()

        chat_model.stop()  # the model server goes away mid-conversation; the next question is in French
        page.fill("#question textarea", "Combien de temps dure le projet de santé au Kosovo ?")
        page.click("#ask-btn")
        second = page.locator(TOP).nth(1)
        second.locator(".as-notice").wait_for()
        notice = second.locator(".as-notice").inner_text()
        assert notice == f"aucun serveur de modèle ne répond à {chat_model.url}: réponse citée des documents à la place"
        assert "156" in second.locator(":scope > .as-text").inner_text()
        assert second.locator(":scope > .as-sources .as-card").count() >= 1
        browser.close()
