"""The chat page as Gradio Blocks: its panels (chat, filters, uploads, index status) and the events between them.

The page's texts follow the language of the last question; ``localize`` gives all of them in one mapping.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

import gradio as gr
from gradio.blocks import Block

from ..api import Aidsearch
from ..config import Settings
from ..conversation import question_language
from ..errors import AidsearchError
from ..indexer import Pace, Progress
from .cards import esc, render_error, render_stats
from .security import open_to_network, public_message, request_user
from .strings import EXAMPLES, language_name, progress_text, t

log = logging.getLogger("aidsearch")
Updates = dict[Block, Any]  # a component → its new value or ``gr.update(...)``; components left out are unchanged


class Chat(Protocol):
    """The engine and the handlers the page's events call (``aidsearch.web.Page``)."""

    engine: Aidsearch

    def filters(self, country: Sequence[str] | None, langs: Sequence[str] | None, funders: Sequence[str] | None,
                y_from: str | None, y_to: str | None) -> dict[str, list[str]]: ...

    def answer_stream(self, question: str, state: dict[str, Any],
                      filters: dict[str, list[str]]) -> Iterator[tuple[str, dict[str, Any] | None]]: ...

    def feedback(self, record: Mapping[str, Any], liked: bool | str) -> None: ...

    def add_files(self, files: Sequence[str], lang: str, progress: Progress | None = None,
                  user: str = "") -> list[str]: ...


@dataclass(frozen=True)
class Panels:
    """The components of the page that its events read or update."""

    state: gr.State
    heading: gr.HTML
    chatbot: gr.Chatbot
    question: gr.Textbox
    ask: gr.Button
    new_chat: gr.Button
    footer: gr.HTML
    filters: gr.Accordion
    country: gr.Dropdown
    lang: gr.CheckboxGroup
    funder: gr.Dropdown
    year_from: gr.Dropdown
    year_to: gr.Dropdown
    clear_filters: gr.Button
    upload: gr.Accordion
    files: gr.File
    upload_btn: gr.Button
    upload_status: gr.HTML
    status: gr.Accordion
    stats: gr.HTML

    @property
    def filter_inputs(self) -> list[Block]:
        return [self.country, self.lang, self.funder, self.year_from, self.year_to]


def heading_html(lang: str) -> str:
    """The page title and subtitle."""
    return (f'<div class="as-heading as-lang-{lang}"><h1>{esc(t(lang, "title"))}</h1>'
            f'<p>{esc(t(lang, "subtitle"))}</p></div>')


def footer_html(lang: str, settings: Settings) -> str:
    """The line under the chat, after a warning when the page is open to the network without a login."""
    warning = (f'<div class="as-open" role="alert">{esc(t(lang, "open_network"))}</div>'
               if open_to_network(settings) else "")
    return (f'{warning}<div class="as-footer">{esc(t(lang, "footer"))} · '
            f'<a href="/docs" target="_blank" rel="noopener">{esc(t(lang, "api_docs"))}</a></div>')


def lang_choices(lang: str, codes: Sequence[str]) -> list[tuple[str, str]]:
    """The language filter's choices: (name in ``lang``, code)."""
    return [(language_name(lang, c), c) for c in codes]


def localize(p: Panels, engine: Aidsearch, lang: str) -> Updates:
    """Every text of the page in ``lang``, by component."""
    return {
        p.heading: gr.update(value=heading_html(lang)),
        p.question: gr.update(placeholder=t(lang, "placeholder")),
        p.ask: gr.update(value=t(lang, "ask")),
        p.new_chat: gr.update(value=t(lang, "new_chat")),
        p.footer: gr.update(value=footer_html(lang, engine.settings)),
        p.filters: gr.update(label=t(lang, "filters")),
        p.country: gr.update(label=t(lang, "country")),
        p.lang: gr.update(label=t(lang, "language"), choices=lang_choices(lang, engine.facets()["lang"])),
        p.funder: gr.update(label=t(lang, "funder")),
        p.year_from: gr.update(label=t(lang, "year_from")),
        p.year_to: gr.update(label=t(lang, "year_to")),
        p.clear_filters: gr.update(value=t(lang, "clear_filters")),
        p.upload: gr.update(label=t(lang, "upload")),
        p.files: gr.update(label=t(lang, "upload_files")),
        p.upload_btn: gr.update(value=t(lang, "upload_btn")),
        p.status: gr.update(label=t(lang, "status")),
        p.stats: gr.update(value=render_stats(engine.stats(), lang)),
    }


def index_view(p: Panels, engine: Aidsearch, lang: str) -> Updates:
    """The index status and the filters' choices, as the index is now."""
    facets = engine.facets()
    years = [str(y) for y in facets["year"]]
    return {p.stats: render_stats(engine.stats(), lang), p.country: gr.update(choices=facets["country"]),
            p.funder: gr.update(choices=facets["funder"]),
            p.lang: gr.update(choices=lang_choices(lang, facets["lang"])),
            p.year_from: gr.update(choices=years), p.year_to: gr.update(choices=years)}


def build_blocks(chat: Chat) -> gr.Blocks:
    """The page of ``chat.engine``, its events handled by ``chat``; all state lives in ``gr.State`` per session."""
    with gr.Blocks(title="aidsearch", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        panels = _layout(chat.engine)
        _connect(demo, panels, chat)
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo


def _layout(engine: Aidsearch) -> Panels:
    """The components, in English until the first question."""
    facets, settings = engine.facets(), engine.settings
    years = [str(y) for y in facets["year"]]
    state = gr.State({"subject": None, "lang": "en", "records": {}})
    with gr.Row(elem_id="top"):
        heading = gr.HTML(heading_html("en"), elem_id="heading")
    with gr.Row(equal_height=False, elem_id="main"):
        with gr.Column(scale=3, min_width=480, elem_id="chat-column"):
            chatbot = gr.Chatbot(
                elem_id="chat", show_label=False, height="68vh", latex_delimiters=[], line_breaks=False,
                sanitize_html=True, render_markdown=True, group_consecutive_messages=False,
                placeholder="<b>Ask a question in English or French</b><br>"
                            "Posez une question en anglais ou en français",
                examples=[{"text": q} for q in EXAMPLES],
                feedback_options=("Like", "Dislike") if settings.feedback else (),
                buttons=["copy"], autoscroll=True,
            )
            with gr.Row(elem_id="ask-row"):
                question = gr.Textbox(placeholder=t("en", "placeholder"), show_label=False, lines=1, max_lines=4,
                                      scale=6, elem_id="question", autofocus=True, container=False)
                ask = gr.Button(t("en", "ask"), variant="primary", scale=1, min_width=90, elem_id="ask-btn")
            with gr.Row(elem_id="chat-tools"):
                new_chat = gr.Button(t("en", "new_chat"), size="sm", variant="secondary", elem_id="new-chat")
                footer = gr.HTML(footer_html("en", settings), elem_id="footer")
        with gr.Column(scale=1, min_width=280, elem_id="side"):
            with gr.Accordion(t("en", "filters"), open=True, elem_id="filters") as filters:
                country = gr.Dropdown(facets["country"], multiselect=True, label=t("en", "country"),
                                      elem_id="filter-country")
                lang = gr.CheckboxGroup(lang_choices("en", facets["lang"]), label=t("en", "language"),
                                        elem_id="filter-lang")
                funder = gr.Dropdown(facets["funder"], multiselect=True, label=t("en", "funder"),
                                     elem_id="filter-funder")
                with gr.Row():
                    year_from = gr.Dropdown(years, label=t("en", "year_from"), elem_id="filter-year-from",
                                            value=None, min_width=100)
                    year_to = gr.Dropdown(years, label=t("en", "year_to"), elem_id="filter-year-to", value=None,
                                          min_width=100)
                clear_filters = gr.Button(t("en", "clear_filters"), size="sm", elem_id="clear-filters")
            with gr.Accordion(t("en", "upload"), open=False, elem_id="upload", visible=settings.uploads) as upload:
                files = gr.File(file_count="multiple", label=t("en", "upload_files"), elem_id="upload-files",
                                height=120)
                upload_btn = gr.Button(t("en", "upload_btn"), variant="primary", size="sm", elem_id="upload-btn")
                upload_status = gr.HTML("", elem_id="upload-status")
            with gr.Accordion(t("en", "status"), open=True, elem_id="status") as status:
                stats = gr.HTML(render_stats(engine.stats(), "en"), elem_id="index-status")
    return Panels(state, heading, chatbot, question, ask, new_chat, footer, filters, country, lang, funder,
                  year_from, year_to, clear_filters, upload, files, upload_btn, upload_status, status, stats)


def _connect(demo: gr.Blocks, p: Panels, chat: Chat) -> None:
    """The events: ask, pick an example, rate an answer, start over, clear the filters, upload, load the page."""
    engine = chat.engine
    localized = list(localize(p, engine, "en"))
    refreshed = list(index_view(p, engine, "en"))

    def respond(message: str, history: list[dict[str, Any]], st: dict[str, Any], *fvals: Any) -> Iterator[Updates]:
        message = (message or "").strip()
        history = list(history or [])
        if not message:
            yield {p.chatbot: history, p.state: st}
            return
        lang = question_language(message)
        history.append({"role": "user", "content": esc(message)})
        waiting = f'<div class="as-pending">{esc(t(lang, "searching"))}</div>'
        yield {p.chatbot: history + [{"role": "assistant", "content": waiting}], p.question: "", p.state: st}
        st = dict(st)
        try:
            filters = chat.filters(*fvals)
        except (ValueError, AidsearchError) as exc:
            reply, record = render_error(public_message(str(exc), engine.settings), lang), {"lang": lang}
        else:
            reply, record = waiting, {"lang": lang}
            try:
                for reply, done in chat.answer_stream(message, st, filters):
                    if done is None:  # the model is writing
                        yield {p.chatbot: history + [{"role": "assistant", "content": reply}]}
                    else:
                        record = done
            except Exception:  # noqa: BLE001 - show a message instead of a stuck "searching…"
                log.exception("answering %r failed", message)
                reply, record = render_error("internal error (see the server log)", lang), {"lang": lang}
        history.append({"role": "assistant", "content": reply})
        st["records"] = {**st.get("records", {}), str(len(history) - 1): record}
        st["lang"] = lang
        texts = localize(p, engine, lang)
        yield {**texts, p.chatbot: history, p.question: {**texts[p.question], "value": ""}, p.state: st}

    def pick_example(evt: gr.SelectData) -> str:
        value = evt.value
        return value.get("text", "") if isinstance(value, dict) else str(value)

    def on_like(st: dict[str, Any], data: gr.LikeData) -> None:
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = (st or {}).get("records", {}).get(str(index))
        if record and "answer" in record:
            chat.feedback(record, data.liked)

    def new_chat(st: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        return [], {"subject": None, "lang": (st or {}).get("lang", "en"), "records": {}}

    def upload(paths: list[str] | None, st: dict[str, Any], request: gr.Request,
               progress: gr.Progress = gr.Progress()) -> Updates:  # noqa: B008 - how Gradio passes a progress bar
        lang = (st or {}).get("lang", "en")
        if not paths:
            return {p.upload_status: f'<p class="as-bad">{esc(t(lang, "no_files"))}</p>'}

        pace = Pace()

        def tick(stage: str, done: int, total: int) -> None:
            desc = progress_text(lang, stage, done, total, *pace(stage, done, total))
            progress((done, total) if total else None, desc=desc)

        try:
            lines = chat.add_files(paths, lang, tick, user=request_user(request))
        finally:
            for path in paths:  # Gradio's temporary copies: the corpus keeps its own
                Path(path).unlink(missing_ok=True)
        return {p.upload_status: f'<ul class="as-upload-list">{"".join(lines)}</ul>', p.files: None,
                **index_view(p, engine, lang)}

    def refresh(st: dict[str, Any]) -> Updates:
        return index_view(p, engine, (st or {}).get("lang", "en"))

    chat_io: dict[str, Any] = dict(fn=respond, inputs=[p.question, p.chatbot, p.state, *p.filter_inputs],
                                   outputs=[p.chatbot, p.state, *localized], api_visibility="private")
    p.question.submit(**chat_io)
    p.ask.click(**chat_io)
    p.chatbot.example_select(pick_example, None, p.question, api_visibility="private").then(**chat_io)
    p.chatbot.like(on_like, [p.state], None, api_visibility="private", queue=False)
    p.new_chat.click(new_chat, [p.state], [p.chatbot, p.state], api_visibility="private", queue=False)
    p.clear_filters.click(lambda: [[], [], [], None, None], None, p.filter_inputs, api_visibility="private",
                          queue=False)
    p.upload_btn.click(upload, [p.files, p.state], [p.upload_status, p.files, *refreshed], api_visibility="private",
                       concurrency_limit=1)
    demo.load(refresh, [p.state], refreshed, api_visibility="private")
