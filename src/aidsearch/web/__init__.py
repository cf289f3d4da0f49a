"""The web app: a Gradio chat page, document downloads and a JSON API, in one FastAPI process.

Every piece of document or user text is passed through ``html.escape`` before it reaches a Gradio
component; Gradio's own sanitizer stays on as a second line of defence.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import gradio as gr
from fastapi import FastAPI

from ..api import Aidsearch
from ..config import Settings
from ..errors import AidsearchError
from ..indexer import Progress
from .cards import esc, format_filters, render_answer, render_card, render_error, render_stats
from .followup import is_followup, question_language, resolve_followup, subject_terms
from .routes import AskRequest, SearchRequest, add_api_docs, add_routes, error_response
from .security import (BasicAuthMiddleware, basic_credentials, check_exposure, is_loopback, open_to_network,
                       parse_auth, public_message, request_user)
from .strings import EXAMPLES, UI, UPLOAD_MESSAGES, language_name, t
from .uploads import UPLOAD_FOLDER, UploadLedger, UploadRejected, check_upload, safe_filename, save_upload

__all__ = [
    "EXAMPLES", "FEEDBACK_MAX_BYTES", "UI", "UPLOAD_FOLDER", "UPLOAD_MESSAGES", "AskRequest", "BasicAuthMiddleware",
    "Page", "SearchRequest", "UploadLedger", "UploadRejected", "add_api_docs", "add_routes", "basic_credentials",
    "build_app", "check_exposure", "check_upload", "ensure_index", "error_response", "format_filters", "is_followup",
    "is_loopback", "open_to_network", "parse_auth", "public_message", "question_language", "render_answer",
    "render_card", "render_error", "render_stats", "request_user", "resolve_followup", "safe_filename", "save_upload",
    "serve", "subject_terms", "t",
]

log = logging.getLogger("aidsearch")
ASSETS = Path(__file__).parent.parent / "web_assets"
FEEDBACK_MAX_BYTES = 5 * 1024 * 1024  # feedback.jsonl is rotated to feedback.jsonl.1 past this size

# --------------------------------------------------------------------------- the page


def _year_filter(years: Sequence[int], lo: str | None, hi: str | None) -> str | None:
    if not lo and not hi:
        return None
    a = int(lo) if lo else min(years, default=1900)
    b = int(hi) if hi else max(years, default=2100)
    return f"{min(a, b)}-{max(a, b)}"


class Page:
    """Builds the Gradio Blocks and holds the handlers; all state lives in ``gr.State`` per session."""

    def __init__(self, engine: Aidsearch) -> None:
        self.engine = engine
        self.upload_lock = threading.Lock()
        self.ledger = UploadLedger(Path(engine.settings.index_dir) / "uploads-today.json")
        self.feedback_lock = threading.Lock()

    # -- handlers ----------------------------------------------------------------------------

    def filters(self, country: Sequence[str] | None, langs: Sequence[str] | None, funders: Sequence[str] | None,
                y_from: str | None, y_to: str | None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if country:
            out["country"] = list(country)
        if langs:
            out["lang"] = list(langs)
        if funders:
            out["funder"] = list(funders)
        year = _year_filter(self.engine.facets()["year"], y_from, y_to) if (y_from or y_to) else None
        if year:
            out["year"] = [year]
        return out

    def answer(self, question: str, state: dict[str, Any], filters: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
        """The rendered reply to ``question`` and the record kept for feedback."""
        lang = question_language(question)
        subject = state.get("subject")
        query = resolve_followup(question, subject)
        followup = query != question
        try:
            ans = self.engine.ask(query, filters=filters)
        except AidsearchError as exc:
            message = public_message(str(exc), self.engine.settings)
            return render_error(message, lang), {"lang": lang, "error": message}
        state["subject"] = subject if followup else (subject_terms(question) or subject)
        state["lang"] = lang
        html_out = render_answer(ans, lang, self.engine.document, subject if followup else None)
        data = ans.to_dict()
        record = {"question": question, "query": query, "language": lang, "found": data["found"],
                  "answer": data["answer"], "filters": data["filters"],
                  "sources": [{k: c[k] for k in ("n", "doc_id", "source", "title", "page")} for c in data["citations"]]}
        return html_out, record

    def feedback(self, record: Mapping[str, Any], liked: bool | str) -> None:
        if not self.engine.settings.feedback:
            return
        vote = "up" if liked is True or str(liked).lower() in ("like", "true") else "down"
        row = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "vote": vote, **record}
        path = Path(self.engine.settings.index_dir) / "feedback.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.feedback_lock:
            if path.exists() and path.stat().st_size >= FEEDBACK_MAX_BYTES:
                path.replace(path.with_suffix(".jsonl.1"))  # one older file kept: at most twice the limit on disk
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def add_files(self, files: Sequence[str], lang: str, progress: Progress | None = None,
                  user: str = "") -> list[str]:
        """Validate, save into ``corpus/uploads`` and index; one HTML ``<li>`` per file. A bad file stops nothing;
        ``user`` (login name or address) is charged against the daily limits."""
        settings = self.engine.settings
        max_bytes = int(settings.max_upload_mb) * 1024 * 1024
        folder = Path(settings.corpus_dir) / UPLOAD_FOLDER
        saved: list[tuple[str, Path, bool]] = []  # (shown name, saved path, newly written)
        rows: list[tuple[str, bool, str]] = []  # (shown name, ok, message); ``saved`` entries are filled in below
        for item in files:
            src = Path(item)
            try:
                if not settings.uploads:
                    raise UploadRejected("disabled")
                size = src.stat().st_size
                if size > max_bytes:
                    raise UploadRejected("too_big", mb=size / 1024 / 1024, limit=settings.max_upload_mb)
                data = src.read_bytes()
                name = check_upload(src.name, data, max_bytes)
                with self.upload_lock:
                    if not self.ledger.charge(user, size, settings.max_uploads_per_day,
                                         settings.max_upload_mb_per_day * 1024 * 1024):
                        raise UploadRejected("quota", files=settings.max_uploads_per_day,
                                             mb=settings.max_upload_mb_per_day)
                path, new = save_upload(folder, name, data)
                saved.append((src.name, path, new))
            except UploadRejected as exc:
                rows.append((src.name, False, f"{t(lang, 'rejected')}: {exc.message(lang)}"))
            except OSError as exc:
                rows.append((src.name, False, f"{t(lang, 'rejected')}: {exc.strerror or exc}"))
        if saved:
            with self.upload_lock:
                try:
                    report = self.engine.update(progress=progress)
                except AidsearchError as exc:  # e.g. disk full or index locked: the files are not kept
                    for shown, path, new in saved:
                        if new:
                            path.unlink(missing_ok=True)
                        rows.append((shown, False, f"{t(lang, 'rejected')}: {public_message(str(exc), settings)}"))
                    saved = []
                    report = None
            skipped = {s.source: s.reason for s in report.skipped} if report else {}
            fresh = set(report.added) | set(report.updated) if report else set()
            for shown, path, new in saved:
                source = path.relative_to(settings.corpus_dir).as_posix()
                if source in skipped:  # unreadable after all (e.g. a PDF without text): do not keep it
                    if new:
                        path.unlink(missing_ok=True)
                    rows.append((shown, False, f"{t(lang, 'rejected')}: {skipped[source]}"))
                else:
                    rows.append((shown, True, t(lang, "added" if source in fresh else "unchanged")))
        order = {name: i for i, name in enumerate(Path(f).name for f in files)}
        rows.sort(key=lambda r: order.get(r[0], 0))
        return [f'<li class="{"as-ok" if ok else "as-bad"}"><b>{esc(name)}</b>: {esc(msg)}</li>'
                for name, ok, msg in rows]

    # -- layout -------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        facets, settings = self.engine.facets(), self.engine.settings
        with gr.Blocks(title="aidsearch", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
            state = gr.State({"subject": None, "lang": "en", "records": {}})
            with gr.Row(elem_id="top"):
                heading = gr.HTML(self._heading("en"), elem_id="heading")
            with gr.Row(equal_height=False, elem_id="main"):
                with gr.Column(scale=3, min_width=480, elem_id="chat-column"):
                    chatbot = gr.Chatbot(
                        elem_id="chat", show_label=False, height="68vh", latex_delimiters=[], line_breaks=False,
                        sanitize_html=True, render_markdown=True, group_consecutive_messages=False,
                        placeholder="<b>Ask a question in English or French</b><br>"
                                    "Posez une question en anglais ou en français",
                        examples=[{"text": q} for q in EXAMPLES], feedback_options=("Like", "Dislike") if settings.feedback else (),
                        buttons=["copy"], autoscroll=True,
                    )
                    with gr.Row(elem_id="ask-row"):
                        question = gr.Textbox(placeholder=t("en", "placeholder"), show_label=False, lines=1,
                                              max_lines=4, scale=6, elem_id="question", autofocus=True,
                                              container=False)
                        ask_btn = gr.Button(t("en", "ask"), variant="primary", scale=1, min_width=90, elem_id="ask-btn")
                    with gr.Row(elem_id="chat-tools"):
                        new_btn = gr.Button(t("en", "new_chat"), size="sm", variant="secondary", elem_id="new-chat")
                        footer = gr.HTML(self._footer("en"), elem_id="footer")
                with gr.Column(scale=1, min_width=280, elem_id="side"):
                    with gr.Accordion(t("en", "filters"), open=True, elem_id="filters") as acc_filters:
                        f_country = gr.Dropdown(facets["country"], multiselect=True, label=t("en", "country"),
                                                elem_id="filter-country")
                        f_lang = gr.CheckboxGroup(self._lang_choices("en", facets["lang"]), label=t("en", "language"),
                                                  elem_id="filter-lang")
                        f_funder = gr.Dropdown(facets["funder"], multiselect=True, label=t("en", "funder"),
                                               elem_id="filter-funder")
                        with gr.Row():
                            f_from = gr.Dropdown([str(y) for y in facets["year"]], label=t("en", "year_from"),
                                                 elem_id="filter-year-from", value=None, min_width=100)
                            f_to = gr.Dropdown([str(y) for y in facets["year"]], label=t("en", "year_to"),
                                               elem_id="filter-year-to", value=None, min_width=100)
                        clear_btn = gr.Button(t("en", "clear_filters"), size="sm", elem_id="clear-filters")
                    with gr.Accordion(t("en", "upload"), open=False, elem_id="upload",
                                      visible=settings.uploads) as acc_upload:
                        files = gr.File(file_count="multiple", label=t("en", "upload_files"), elem_id="upload-files",
                                        height=120)
                        upload_btn = gr.Button(t("en", "upload_btn"), variant="primary", size="sm", elem_id="upload-btn")
                        upload_status = gr.HTML("", elem_id="upload-status")
                    with gr.Accordion(t("en", "status"), open=True, elem_id="status") as acc_status:
                        status = gr.HTML(render_stats(self.engine.stats(), "en"), elem_id="index-status")

            filter_inputs = [f_country, f_lang, f_funder, f_from, f_to]
            localized = [heading, question, ask_btn, new_btn, footer, acc_filters, f_country, f_lang, f_funder,
                         f_from, f_to, clear_btn, acc_upload, files, upload_btn, acc_status, status]

            def localize(lang: str) -> list[Any]:
                return [
                    gr.update(value=self._heading(lang)), gr.update(placeholder=t(lang, "placeholder")),
                    gr.update(value=t(lang, "ask")), gr.update(value=t(lang, "new_chat")),
                    gr.update(value=self._footer(lang)), gr.update(label=t(lang, "filters")),
                    gr.update(label=t(lang, "country")),
                    gr.update(label=t(lang, "language"), choices=self._lang_choices(lang, self.engine.facets()["lang"])),
                    gr.update(label=t(lang, "funder")), gr.update(label=t(lang, "year_from")),
                    gr.update(label=t(lang, "year_to")), gr.update(value=t(lang, "clear_filters")),
                    gr.update(label=t(lang, "upload")), gr.update(label=t(lang, "upload_files")),
                    gr.update(value=t(lang, "upload_btn")), gr.update(label=t(lang, "status")),
                    gr.update(value=render_stats(self.engine.stats(), lang)),
                ]

            def respond(message: str, history: list[dict[str, Any]], st: dict[str, Any],
                        *fvals: Any) -> Iterator[list[Any]]:
                message = (message or "").strip()
                history = list(history or [])
                if not message:
                    yield [history, gr.update(), st] + [gr.skip()] * len(localized)
                    return
                lang = question_language(message)
                history.append({"role": "user", "content": esc(message)})
                waiting = f'<div class="as-pending">{esc(t(lang, "searching"))}</div>'
                pending = history + [{"role": "assistant", "content": waiting}]
                yield [pending, "", st] + [gr.skip()] * len(localized)
                st = dict(st)
                try:
                    filters = self.filters(*fvals)
                except (ValueError, AidsearchError) as exc:
                    reply, record = render_error(public_message(str(exc), self.engine.settings), lang), {"lang": lang}
                else:
                    try:
                        reply, record = self.answer(message, st, filters)
                    except Exception:  # noqa: BLE001 - show a message instead of a stuck "searching…"
                        log.exception("answering %r failed", message)
                        reply, record = render_error("internal error (see the server log)", lang), {"lang": lang}
                history.append({"role": "assistant", "content": reply})
                st["records"] = {**st.get("records", {}), str(len(history) - 1): record}
                st["lang"] = lang
                yield [history, "", st] + localize(lang)

            def pick_example(evt: gr.SelectData) -> str:
                value = evt.value
                return value.get("text", "") if isinstance(value, dict) else str(value)

            def on_like(st: dict[str, Any], data: gr.LikeData) -> None:
                index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
                record = (st or {}).get("records", {}).get(str(index))
                if record and "answer" in record:
                    self.feedback(record, data.liked)

            def new_chat(st: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
                return [], {"subject": None, "lang": (st or {}).get("lang", "en"), "records": {}}

            def upload(paths: list[str] | None, st: dict[str, Any], request: gr.Request,
                       progress: gr.Progress = gr.Progress()) -> list[Any]:
                lang = (st or {}).get("lang", "en")
                if not paths:
                    return [f'<p class="as-bad">{esc(t(lang, "no_files"))}</p>', gr.update()] + [gr.skip()] * 6

                def tick(stage: str, done: int, total: int) -> None:
                    label = t(lang, "reading") if stage == "read" else t(lang, "embedding")
                    progress((done, total) if total else None, desc=label)

                try:
                    lines = self.add_files(paths, lang, tick, user=request_user(request))
                finally:
                    for p in paths:  # Gradio's temporary copies: the corpus keeps its own
                        Path(p).unlink(missing_ok=True)
                facets = self.engine.facets()
                years = [str(y) for y in facets["year"]]
                return [f'<ul class="as-upload-list">{"".join(lines)}</ul>', None,
                        render_stats(self.engine.stats(), lang), gr.update(choices=facets["country"]),
                        gr.update(choices=facets["funder"]), gr.update(choices=self._lang_choices(lang, facets["lang"])),
                        gr.update(choices=years), gr.update(choices=years)]

            def refresh(st: dict[str, Any]) -> list[Any]:
                lang = (st or {}).get("lang", "en")
                facets = self.engine.facets()
                years = [str(y) for y in facets["year"]]
                return [render_stats(self.engine.stats(), lang), gr.update(choices=facets["country"]),
                        gr.update(choices=facets["funder"]), gr.update(choices=self._lang_choices(lang, facets["lang"])),
                        gr.update(choices=years), gr.update(choices=years)]

            chat_io: dict[str, Any] = dict(fn=respond, inputs=[question, chatbot, state, *filter_inputs],
                                           outputs=[chatbot, question, state, *localized], api_visibility="private")
            question.submit(**chat_io)
            ask_btn.click(**chat_io)
            chatbot.example_select(pick_example, None, question, api_visibility="private").then(**chat_io)
            chatbot.like(on_like, [state], None, api_visibility="private", queue=False)
            new_btn.click(new_chat, [state], [chatbot, state], api_visibility="private", queue=False)
            clear_btn.click(lambda: [[], [], [], None, None], None, filter_inputs, api_visibility="private", queue=False)
            upload_btn.click(upload, [files, state],
                             [upload_status, files, status, f_country, f_funder, f_lang, f_from, f_to],
                             api_visibility="private", concurrency_limit=1)
            demo.load(refresh, [state], [status, f_country, f_funder, f_lang, f_from, f_to], api_visibility="private")
        demo.queue(default_concurrency_limit=4, max_size=64)
        return demo

    @staticmethod
    def _lang_choices(lang: str, codes: Sequence[str]) -> list[tuple[str, str]]:
        return [(language_name(lang, c), c) for c in codes]

    @staticmethod
    def _heading(lang: str) -> str:
        return (f'<div class="as-heading as-lang-{lang}"><h1>{esc(t(lang, "title"))}</h1>'
                f'<p>{esc(t(lang, "subtitle"))}</p></div>')

    def _footer(self, lang: str) -> str:
        warning = (f'<div class="as-open" role="alert">{esc(t(lang, "open_network"))}</div>'
                   if open_to_network(self.engine.settings) else "")
        return (f'{warning}<div class="as-footer">{esc(t(lang, "footer"))} · '
                f'<a href="/docs" target="_blank" rel="noopener">{esc(t(lang, "api_docs"))}</a></div>')


# --------------------------------------------------------------------------- assembly


def build_app(engine: Aidsearch) -> FastAPI:
    """FastAPI app with the API and document routes, the Gradio page at ``/``, and the optional login."""
    settings = engine.settings
    users = parse_auth(settings.auth)
    api = FastAPI(title="aidsearch", version="1", docs_url=None, redoc_url=None,
                  description="Cross-lingual (English/French) search and extractive answers over aid-project documents.")
    add_routes(api, engine)  # before mounting Gradio, or the routes are shadowed
    add_api_docs(api)
    demo = Page(engine).build()
    theme = gr.themes.Default(primary_hue="blue", secondary_hue="slate", neutral_hue="slate", radius_size="md",
                              font=["Aidsearch Sans", "ui-sans-serif", "system-ui", "sans-serif"])
    css = (ASSETS / "style.css").read_text(encoding="utf-8")
    app = gr.mount_gradio_app(api, demo, path="/", theme=theme, css=css, footer_links=[],
                              max_file_size=f"{max(2 * settings.max_upload_mb, settings.max_upload_mb + 10)}mb",
                              show_error=False)
    if users:
        app.add_middleware(BasicAuthMiddleware, users=users)
    return app


def ensure_index(settings: Settings, echo: Callable[[str], None] = print) -> Aidsearch:
    """Load the model, bring the index up to date with the corpus (building it if missing) and open it."""
    from ..embed import load_embedder
    from ..indexer import build_index

    echo("aidsearch: loading the model…")
    embedder = load_embedder(settings)
    shown: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done - shown.get(stage, -step) >= step:
            shown[stage] = done
            echo(f"aidsearch: {'reading' if stage == 'read' else 'embedding'} {done}/{total}")

    if Path(settings.corpus_dir).is_dir():
        echo(f"aidsearch: checking the index in {settings.index_dir} against {settings.corpus_dir}…")
        report = build_index(settings, embedder, progress=progress, lock_timeout=60)
        changes = len(report.added) + len(report.updated) + len(report.removed)
        echo(f"aidsearch: {report.documents} documents, {report.chunks} passages"
             + (f" ({changes} changed, {report.seconds:.1f} s)" if report.written else " (up to date)"))
        for s in report.skipped:
            echo(f"aidsearch: skipped {s.source}: {s.reason}")
    else:
        echo(f"aidsearch: corpus folder {settings.corpus_dir} not found; serving the existing index")
    return Aidsearch(settings, embedder)


def serve(settings: Settings, echo: Callable[[str], None] | None = None) -> None:
    """Index if needed, then serve the page and the API with uvicorn until interrupted."""
    import uvicorn

    say = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
    parse_auth(settings.auth)  # fail before the slow start
    check_exposure(settings)
    if open_to_network(settings):
        say(f"aidsearch: WARNING: serving on {settings.host} without a login (--public-without-login): anyone on "
            "the network can ask and upload documents")
    app = build_app(ensure_index(settings, say))
    say(f"aidsearch: open http://{settings.host}:{settings.port}/  (API docs: /docs)"
        + ("  [login required]" if settings.auth else ""))
    uvicorn.run(app, host=settings.host, port=int(settings.port), log_level="warning")
