"""The web app: a Gradio chat page, document downloads and a JSON API, in one FastAPI process.

Modules, each using only those listed before it:

- ``strings``: the page's texts in English and French, and ``t(lang, key)``;
- ``cards``: the HTML of answers, source cards, errors and index statistics;
- ``uploads``: the daily limits of uploads per user;
- ``security``: the optional login, the check before serving to the network, messages without server paths;
- ``routes``: the HTTP API, the document routes, ``/docs`` and the JSON errors;
- ``openai``: ``/v1/models`` and ``/v1/chat/completions`` for OpenAI clients, and ``/api/ask/stream``;
- ``panels``: the chat page's Gradio Blocks and its events.

Here: ``Page`` (the handlers behind the page; follow-up questions are read by ``aidsearch.conversation``),
``build_app`` and ``serve``. Every piece of document or user text is passed through ``html.escape`` before it
reaches a Gradio component; Gradio's own sanitizer stays on as a second line of defence.
"""
from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import gradio as gr
from fastapi import FastAPI

from ..api import Aidsearch, RejectedFile
from ..config import Settings
from ..conversation import Conversation, is_followup, question_language, resolve_followup, subject_terms
from ..errors import AidsearchError
from ..incoming import UPLOAD_FOLDER, UPLOAD_MESSAGES, UploadRejected, check_upload, safe_filename, save_upload
from ..indexer import Pace, Progress
from .cards import esc, format_filters, render_answer, render_card, render_error, render_stats, render_writing
from .openai import add_openai_routes
from .panels import build_blocks, footer_html
from .routes import AskRequest, SearchRequest, add_api_docs, add_routes, error_response
from .security import (BasicAuthMiddleware, basic_credentials, check_exposure, is_loopback, open_to_network,
                       parse_auth, public_message, request_user)
from .strings import EXAMPLES, UI, progress_text, t
from .uploads import UploadLedger

__all__ = [
    "EXAMPLES", "FEEDBACK_MAX_BYTES", "UI", "UPLOAD_FOLDER", "UPLOAD_MESSAGES", "AskRequest", "BasicAuthMiddleware",
    "Page", "SearchRequest", "UploadLedger", "UploadRejected", "add_api_docs", "add_routes", "basic_credentials",
    "build_app", "check_exposure", "check_upload", "ensure_index", "error_response", "format_filters", "is_followup",
    "is_loopback", "open_to_network", "parse_auth", "public_message", "question_language", "render_answer",
    "render_card", "render_error", "render_stats", "request_user", "resolve_followup", "safe_filename", "save_upload",
    "serve", "subject_terms", "t",
]

ASSETS = Path(__file__).parent.parent / "web_assets"
FEEDBACK_MAX_BYTES = 5 * 1024 * 1024  # feedback.jsonl is rotated to feedback.jsonl.1 past this size


def _year_filter(years: Sequence[int], lo: str | None, hi: str | None) -> str | None:
    """The year filter ``"from-to"`` of the two year choices, an open end taken from the indexed ``years``."""
    if not lo and not hi:
        return None
    a = int(lo) if lo else min(years, default=1900)
    b = int(hi) if hi else max(years, default=2100)
    return f"{min(a, b)}-{max(a, b)}"


class Page:
    """The handlers behind the chat page of one engine, and ``build`` for its Gradio Blocks."""

    def __init__(self, engine: Aidsearch) -> None:
        self.engine = engine
        self.upload_lock = threading.Lock()
        self.ledger = UploadLedger(Path(engine.settings.index_dir) / "uploads-today.json")
        self.feedback_lock = threading.Lock()

    def filters(self, country: Sequence[str] | None, langs: Sequence[str] | None, funders: Sequence[str] | None,
                y_from: str | None, y_to: str | None) -> dict[str, list[str]]:
        """The engine's filters from the values of the filter panel."""
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

    def answer(self, question: str, state: dict[str, Any],
               filters: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
        """The rendered reply to ``question`` and the record kept for feedback."""
        *_, (html_out, record) = self.answer_stream(question, state, filters)
        return html_out, record or {}

    def answer_stream(self, question: str, state: dict[str, Any],
                      filters: dict[str, list[str]]) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """The reply to ``question`` as it comes: (the text the model has written so far, None) while it writes,
        then (the rendered reply, the record kept for feedback)."""
        turn = Conversation(state.get("subject")).turn(question)
        lang = turn.language
        ans = None
        try:
            for item in self.engine.ask_stream(turn.query, filters=filters):
                if isinstance(item, str):
                    yield render_writing(item, lang), None
                else:
                    ans = item
        except AidsearchError as exc:
            message = public_message(str(exc), self.engine.settings)
            yield render_error(message, lang), {"lang": lang, "error": message}
            return
        assert ans is not None
        state["subject"] = turn.after.subject
        state["lang"] = lang
        html_out = render_answer(ans, lang, self.engine.document, turn.followup_of)
        data = ans.to_dict()
        record = {"question": question, "query": turn.query, "language": lang, "found": data["found"],
                  "answer": data["answer"], "filters": data["filters"], "mode": data["mode"],
                  "sources": [{k: c[k] for k in ("n", "doc_id", "source", "title", "page")} for c in data["citations"]]}
        yield html_out, record

    def feedback(self, record: Mapping[str, Any], liked: bool | str) -> None:
        """Append a rated answer to ``feedback.jsonl`` beside the index, unless feedback is turned off."""
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
        rejected = t(lang, "rejected")
        if not settings.uploads:
            rows = [(Path(f).name, False, f"{rejected}: {UploadRejected('disabled').message(lang)}") for f in files]
        else:
            with self.upload_lock:  # one upload at a time: the daily counts, then the index update
                report = self.engine.add_files(files, accept=lambda _path, size: self._charge(user, size),
                                               progress=progress)
            rows = [(f.name, True, t(lang, "added" if f.fresh else "unchanged")) for f in report.added]
            rows += [(f.name, False, f"{rejected}: {self._reason(f, lang)}") for f in report.rejected]
        order = {name: i for i, name in enumerate(Path(f).name for f in files)}
        rows.sort(key=lambda r: order.get(r[0], 0))
        return [f'<li class="{"as-ok" if ok else "as-bad"}"><b>{esc(name)}</b>: {esc(msg)}</li>'
                for name, ok, msg in rows]

    def _charge(self, user: str, size: int) -> None:
        """Count one more file of ``size`` bytes for ``user``, or UploadRejected past today's limits."""
        settings = self.engine.settings
        if not self.ledger.charge(user, size, settings.max_uploads_per_day,
                                  settings.max_upload_mb_per_day * 1024 * 1024):
            raise UploadRejected("quota", files=settings.max_uploads_per_day, mb=settings.max_upload_mb_per_day)

    def _reason(self, rejected: RejectedFile, lang: str) -> str:
        """Why a file was not kept, in ``lang`` when it failed a check, without server paths."""
        if isinstance(rejected.error, UploadRejected):
            return rejected.error.message(lang)
        return public_message(rejected.reason, self.engine.settings)

    def build(self) -> gr.Blocks:
        """The Gradio page, its events handled here."""
        return build_blocks(self)

    def _footer(self, lang: str) -> str:
        """The page footer in ``lang``."""
        return footer_html(lang, self.engine.settings)


def build_app(engine: Aidsearch) -> FastAPI:
    """FastAPI app with the API and document routes, the Gradio page at ``/``, and the optional login."""
    settings = engine.settings
    users = parse_auth(settings.auth)
    api = FastAPI(title="aidsearch", version="1", docs_url=None, redoc_url=None,
                  description="Cross-lingual (English/French) search and extractive answers over aid-project "
                              "documents.")
    add_routes(api, engine)  # before mounting Gradio, or the routes are shadowed
    add_openai_routes(api, engine)
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
    from ..api import open_index
    from ..embed import load_embedder

    echo("aidsearch: loading the model…")
    embedder = load_embedder(settings)
    shown: dict[str, int] = {}
    pace = Pace()

    def progress(stage: str, done: int, total: int) -> None:
        step = max(1, total // 10)
        rate_left = pace(stage, done, total)
        if done and (done == total or done - shown.get(stage, 0) >= step):
            shown[stage] = done
            echo(f"aidsearch: {progress_text('en', stage, done, total, *rate_left)}")

    if not Path(settings.corpus_dir).is_dir():
        echo(f"aidsearch: corpus folder {settings.corpus_dir} not found; serving the existing index")
        return open_index(settings=settings, embedder=embedder)
    echo(f"aidsearch: checking the index in {settings.index_dir} against {settings.corpus_dir}…")
    engine = open_index(settings=settings, embedder=embedder, create=True, progress=progress, lock_timeout=60)
    report = engine.created or engine.update(progress=progress, lock_timeout=60)
    changes = len(report.added) + len(report.updated) + len(report.removed)
    echo(f"aidsearch: {report.documents} documents, {report.chunks} passages"
         + (f" ({changes} changed, {report.seconds:.1f} s)" if report.written else " (up to date)"))
    for s in report.skipped:
        echo(f"aidsearch: skipped {s.source}: {s.reason}")
    return engine


def serve(settings: Settings, echo: Callable[[str], None] | None = None) -> None:
    """Index if needed, then serve the page and the API with uvicorn until interrupted."""
    import uvicorn

    say = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
    parse_auth(settings.auth)  # fail before the slow start
    check_exposure(settings)
    if open_to_network(settings):
        say(f"aidsearch: WARNING: serving on {settings.host} without a login (--public-without-login): anyone on "
            "the network can ask and upload documents")
    engine = ensure_index(settings, say)
    if settings.answerer == "reader":
        say("aidsearch: loading the answer reader…")
        engine.answer_models()  # now rather than on the first question
    app = build_app(engine)
    say(f"aidsearch: open http://{settings.host}:{settings.port}/  (API docs: /docs)"
        + ("  [login required]" if settings.auth else ""))
    uvicorn.run(app, host=settings.host, port=int(settings.port), log_level="warning")
