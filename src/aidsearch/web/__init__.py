"""The web app: a Gradio chat page, document downloads and a JSON API, in one FastAPI process.

Every piece of document or user text is passed through ``html.escape`` before it reaches a Gradio
component; Gradio's own sanitizer stays on as a second line of defence.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import secrets
import sys
import threading
import unicodedata
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from ..api import Aidsearch
from ..config import Settings
from ..errors import AidsearchError, ConfigError
from ..indexer import Progress
from ..types import Document
from .cards import esc, format_filters, render_answer, render_card, render_error, render_stats
from .followup import is_followup, question_language, resolve_followup, subject_terms
from .strings import EXAMPLES, UI, UPLOAD_MESSAGES, language_name, t

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
UPLOAD_FOLDER = "uploads"
_DOC_ID = re.compile(r"^[0-9a-f]{8,64}$")

# --------------------------------------------------------------------------- uploads

_KINDS = {".pdf": "pdf", ".docx": "docx", ".html": "text", ".htm": "text", ".txt": "text", ".md": "text",
          ".markdown": "text"}
_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*]')


class UploadLedger:
    """Files and bytes each user uploaded today (UTC), kept in ``uploads-today.json`` beside the index so that the
    daily limits hold across restarts (and in memory when that file cannot be written, e.g. on a full disk);
    callers serialize ``charge``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.memory: dict[str, Any] = {}

    def _today(self) -> dict[str, list[int]]:
        day = datetime.now(timezone.utc).date().isoformat()
        data = self.memory
        if data.get("day") != day:  # first upload of the day in this process: what earlier runs counted
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        users = data.get("users") if isinstance(data, dict) and data.get("day") == day else None
        return users if isinstance(users, dict) else {}

    def charge(self, user: str, size: int, max_files: int, max_bytes: int) -> bool:
        """Count one more file of ``size`` bytes for ``user`` if today's limits allow it."""
        users = self._today()
        files, used = users.get(user, [0, 0])
        if files + 1 > max_files or used + size > max_bytes:
            return False
        users[user] = [files + 1, used + size]
        self.memory = {"day": datetime.now(timezone.utc).date().isoformat(), "users": users}
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.memory), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("cannot save the upload counts in %s: %s", self.path.name, exc.strerror or exc)
        return True


class UploadRejected(AidsearchError):
    """An uploaded file failed validation; ``code`` and ``params`` give the message in either language."""

    kind, status = "upload_rejected", 400
    default_hint = "upload PDF, DOCX, HTML, TXT or Markdown files within the size limit"

    def __init__(self, code: str, **params: Any) -> None:
        self.code, self.params = code, params
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        return UPLOAD_MESSAGES.get(lang, UPLOAD_MESSAGES["en"])[self.code].format(**self.params)


def safe_filename(name: str) -> str:
    """A file name safe to save: no folders, ``..``, control or reserved characters; letters of any script kept."""
    name = unicodedata.normalize("NFC", str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_CHARS.sub("_", name).replace("..", "_")
    stem, dot, ext = re.sub(r"\s+", " ", name).strip().rpartition(".")
    if not dot:
        stem, ext = ext, ""
    stem, ext = stem.strip(" ._-")[:120], ext.strip()
    if not stem:
        raise UploadRejected("bad_name")
    return f"{stem}.{ext.lower()}" if ext else stem


def check_upload(name: str, data: bytes, max_bytes: int) -> str:
    """The safe name of a valid upload, or ``UploadRejected``: the type is checked on the content."""
    safe = safe_filename(name)
    ext = Path(safe).suffix.lower()
    kind = _KINDS.get(ext)
    if kind is None:
        raise UploadRejected("bad_type", ext=ext or "(none)")
    if not data:
        raise UploadRejected("empty")
    if len(data) > max_bytes:
        raise UploadRejected("too_big", mb=len(data) / 1024 / 1024, limit=max_bytes // (1024 * 1024))
    if kind == "pdf" and not data.lstrip(b"\r\n\t ")[:5] == b"%PDF-":
        raise UploadRejected("not_pdf")
    if kind == "docx":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if "word/document.xml" not in zf.namelist():
                    raise UploadRejected("not_docx")
        except (zipfile.BadZipFile, OSError):
            raise UploadRejected("not_docx") from None
    if kind == "text":
        if b"\x00" in data:
            raise UploadRejected("not_text")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                data.decode("cp1252")
            except UnicodeDecodeError:
                raise UploadRejected("not_text") from None
    return safe


def save_upload(folder: Path, name: str, data: bytes) -> tuple[Path, bool]:
    """Save under ``folder``; an existing different file is kept and a ``-n`` suffix added. Returns (path, new).

    ``name`` goes through ``safe_filename`` again, so no name can lead out of ``folder``."""
    name = safe_filename(name)
    folder.mkdir(parents=True, exist_ok=True)
    stem, ext = Path(name).stem, Path(name).suffix
    for n in range(1000):
        path = folder / (name if n == 0 else f"{stem}-{n}{ext}")
        try:
            with open(path, "xb") as fh:
                fh.write(data)
            return path, True
        except FileExistsError:
            if path.is_file() and path.read_bytes() == data:
                return path, False
    raise UploadRejected("bad_name")


# --------------------------------------------------------------------------- login


def parse_auth(spec: str) -> dict[str, str]:
    """``"user:pass,user2:pass2"`` → ``{user: pass}``; a malformed pair raises ``ConfigError``."""
    users: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in (spec or "").split(","))):
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            raise ConfigError("auth must look like user:password[,user2:password2]")
        users[user] = password
    return users


def basic_credentials(header: bytes | None) -> tuple[bytes, bytes] | None:
    """User and password of an HTTP Basic ``Authorization`` header, None when it is not one."""
    if not header or not header[:6].lower() == b"basic ":
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    return user, password


class BasicAuthMiddleware:
    """HTTP Basic login in front of everything: the page, Gradio's own calls, the API and the documents."""

    def __init__(self, app: ASGIApp, users: Mapping[str, str], realm: str = "aidsearch") -> None:
        self.app = app
        self.users = {u.encode(): p.encode() for u, p in users.items()}
        self.realm = realm

    def _allowed(self, header: bytes | None) -> bool:
        credentials = basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        ok = False
        for name, secret in self.users.items():
            ok |= secrets.compare_digest(user, name) & secrets.compare_digest(password, secret)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(dict(scope["headers"]).get(b"authorization")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = JSONResponse({"error": "login required", "kind": "login_required",
                                 "hint": "give a user name and password (HTTP Basic authentication)"}, status_code=401,
                                headers={"WWW-Authenticate": f'Basic realm="{self.realm}", charset="UTF-8"'})
        await response(scope, receive, send)


# --------------------------------------------------------------------------- HTTP API


class AskRequest(BaseModel):
    question: str = Field(description="The question, in English or French.")
    k: int | None = Field(None, ge=1, le=50, description="How many passages to retrieve.")
    filters: dict[str, str | list[str]] | None = Field(
        None, description='e.g. {"country": ["Laos"], "lang": ["fr"], "year": ["2014-2016"]}')


class SearchRequest(BaseModel):
    query: str = Field(description="The search text, in English or French.")
    k: int | None = Field(None, ge=1, le=50)
    filters: dict[str, str | list[str]] | None = None


def _one_line(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        if err.get("type") == "json_invalid":
            return "the request body is not valid JSON"
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts).replace("\n", " ") or "invalid request"


class _NotFound(Exception):
    """An unknown document id, or a file no longer inside the corpus folder."""


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/:'\"`]+/)*([^\s/:'\"`]+)")
RETRY_AFTER_S = 5
FEEDBACK_MAX_BYTES = 5 * 1024 * 1024  # feedback.jsonl is rotated to feedback.jsonl.1 past this size


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": 'Bad question or filters: {"error": "<one line>", "kind": "bad_request", "hint": "…"}'},
    500: {"description": "Index damaged, unwritable or built differently, or the model failed (one line, a kind, a hint)"},
    503: {"description": "No index yet, or the index is being written: try again after Retry-After seconds"},
}


def public_message(message: str, settings: Settings) -> str:
    """``message`` on one line with no absolute path of the server: the index and corpus folders by their own
    names (paths inside them relative to them), any other path by its last part."""
    line = message.splitlines()[0] if message else ""
    for folder in (Path(settings.index_dir), Path(settings.corpus_dir)):
        for form in {str(folder.resolve()), str(folder.absolute())}:
            line = line.replace(form, folder.name or ".")
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1), line)


def error_response(exc: AidsearchError, settings: Settings) -> JSONResponse:
    """The JSON of a library error: its one-line message without server paths, its kind and hint; the status by
    kind (bad input 400, index missing or busy 503 with Retry-After, a server-side failure 500)."""
    body = {"error": public_message(str(exc), settings) or type(exc).__name__, "kind": exc.kind, "hint": exc.hint}
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


_SECURE = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_SANDBOX = {**_SECURE, "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"}


def add_routes(api: FastAPI, engine: Aidsearch) -> None:
    """The JSON API and the document routes (all sync: FastAPI runs them in its threadpool)."""

    @api.exception_handler(AidsearchError)
    async def _aidsearch_error(request: Request, exc: AidsearchError) -> JSONResponse:
        return error_response(exc, engine.settings)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return JSONResponse({"error": str(exc.detail).splitlines()[0].lower() if exc.detail else kind, "kind": kind,
                             "hint": "see /docs for the routes and request formats"}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _one_line(exc), "kind": "bad_request",
                             "hint": "see /docs for the request format"}, status_code=400)

    @api.get("/api/health", tags=["api"], summary="Liveness check")
    def health() -> dict[str, Any]:
        return {"status": "ok", "documents": engine.stats()["documents"]}

    @api.get("/api/stats", tags=["api"], summary="Index statistics")
    def stats() -> dict[str, Any]:
        return engine.stats()

    @api.post("/api/ask", tags=["api"], summary="Answer a question with cited passages",
              responses=_ERROR_RESPONSES)
    def ask(body: AskRequest) -> dict[str, Any]:
        return engine.ask(body.question, k=body.k, filters=body.filters).to_dict()

    @api.post("/api/search", tags=["api"], summary="Retrieve the passages closest to a query",
              responses=_ERROR_RESPONSES)
    def search(body: SearchRequest) -> dict[str, Any]:
        return engine.search(body.query, k=body.k, filters=body.filters).to_dict()

    def _document(doc_id: str) -> tuple[Document, Path | None]:
        doc = engine.document(doc_id) if _DOC_ID.match(doc_id) else None
        if doc is None:
            raise _NotFound()
        root = Path(engine.settings.corpus_dir).resolve()
        path = (root / doc.source).resolve()
        inside = path.is_relative_to(root) and path != root and path.is_file()
        return doc, path if inside else None

    @api.get("/documents/{doc_id}", tags=["documents"], summary="The original file of an indexed document")
    def document_file(doc_id: str) -> Response:
        _, path = _document(doc_id)
        if path is None:
            raise _NotFound()
        suffix = path.suffix.lower()
        if suffix == ".pdf":
            return FileResponse(path, media_type="application/pdf", filename=path.name,
                                content_disposition_type="inline", headers=_SECURE)
        if suffix in (".html", ".htm"):
            return FileResponse(path, media_type="text/html", headers=_SANDBOX)
        if suffix in (".txt", ".md", ".markdown"):
            return FileResponse(path, media_type="text/plain", headers=_SANDBOX)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name,
                            content_disposition_type="attachment", headers=_SECURE)

    @api.get("/documents/{doc_id}/text", tags=["documents"], summary="The cleaned text of an indexed document",
             response_class=PlainTextResponse)
    def document_text(doc_id: str) -> PlainTextResponse:
        doc, _ = _document(doc_id)
        return PlainTextResponse(doc.text, headers=_SANDBOX)

    @api.exception_handler(_NotFound)
    async def _not_found(request: Request, exc: _NotFound) -> JSONResponse:
        return JSONResponse({"error": "document not found", "kind": "not_found",
                             "hint": "search again: the document may have been removed from the index"},
                            status_code=404)


# --------------------------------------------------------------------------- the page


def _year_filter(years: Sequence[int], lo: str | None, hi: str | None) -> str | None:
    if not lo and not hi:
        return None
    a = int(lo) if lo else min(years, default=1900)
    b = int(hi) if hi else max(years, default=2100)
    return f"{min(a, b)}-{max(a, b)}"


def request_user(request: Any) -> str:
    """Who sent a page request: the login name with ``auth``, else the client's address."""
    name = getattr(request, "username", None)
    if name:
        return f"user:{name}"
    headers = getattr(request, "headers", None) or {}
    credentials = basic_credentials((headers.get("authorization") or "").encode("latin-1", "replace"))
    if credentials is not None:
        return f"user:{credentials[0].decode('utf-8', 'replace')}"
    client = getattr(request, "client", None)
    return f"address:{getattr(client, 'host', '') or 'unknown'}"


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


DOCS_ASSETS = "/docs-assets"


def add_api_docs(api: FastAPI) -> None:
    """The interactive API reference at ``/docs``, its scripts and styles served from the Swagger UI copy of the
    installed ``swagger-ui-py`` package (no CDN: it works offline)."""
    import swagger_ui
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = Path(swagger_ui.__file__).parent / "static"
    api.mount(DOCS_ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(openapi_url=api.openapi_url or "/openapi.json", title="aidsearch API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")


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


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach ("localhost", 127.0.0.0/8, ::1)."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def open_to_network(settings: Settings) -> bool:
    """Serving on an address other machines can reach, without a login."""
    return not settings.auth and not is_loopback(settings.host)


def check_exposure(settings: Settings) -> None:
    """Refuse to serve the page, uploads included, to the network without a login unless explicitly asked."""
    if open_to_network(settings) and not settings.public_without_login:
        raise ConfigError(f"refusing to serve on {settings.host} without a login: set AIDSEARCH_AUTH=user:password, "
                          "or pass --public-without-login to let anyone on the network ask and upload")


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
