"""The HTTP API (``/api/…``), the document routes, the API reference at ``/docs`` and the JSON error responses."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..api import Aidsearch
from ..query import check_question
from ..config import Settings
from ..conversation import Conversations
from ..errors import AidsearchError
from ..types import Document
from .security import public_message

RETRY_AFTER_S = 5
DOCS_ASSETS = "/docs-assets"
_DOC_ID = re.compile(r"^[0-9a-f]{8,64}$")


class AskRequest(BaseModel):
    question: str = Field(description="The question, in English or French.")
    k: int | None = Field(None, ge=1, le=50, description="How many passages to retrieve.")
    filters: dict[str, str | list[str]] | None = Field(
        None, description='e.g. {"country": ["Laos"], "lang": ["fr"], "year": ["2014-2016"]}')
    conversation_id: str | None = Field(
        None, description="1 to 64 letters, digits, '-' or '_', chosen by the client: a follow-up question "
                          '("and its budget?") is read with the subject of the previous question of this conversation.')
    mode: Literal["extractive", "generative"] | None = Field(
        None, description="extractive: quote the documents; generative: the configured model writes the answer, "
                          "checked against the sources (default: generative when a model server is set).")


class SearchRequest(BaseModel):
    query: str = Field(description="The search text, in English or French.")
    k: int | None = Field(None, ge=1, le=50)
    filters: dict[str, str | list[str]] | None = None


def _one_line(exc: RequestValidationError) -> str:
    """The first problems of an invalid request, on one line."""
    parts = []
    for err in exc.errors()[:3]:
        if err.get("type") == "json_invalid":
            return "the request body is not valid JSON"
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts).replace("\n", " ") or "invalid request"


class _NotFound(Exception):
    """An unknown document id, or a file no longer inside the corpus folder."""


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": 'Bad question or filters: {"error": "<one line>", "kind": "bad_request", "hint": "…"}'},
    500: {"description": "Index damaged, unwritable or built differently, or the model failed "
                         "(one line, a kind, a hint)"},
    503: {"description": "No index yet, or the index is being written: try again after Retry-After seconds"},
}


def error_response(exc: AidsearchError, settings: Settings) -> JSONResponse:
    """The JSON of a library error: its one-line message without server paths, its kind and hint; the status by
    kind (bad input 400, index missing or busy 503 with Retry-After, a server-side failure 500)."""
    body = {"error": public_message(str(exc), settings) or type(exc).__name__, "kind": exc.kind, "hint": exc.hint}
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


_SECURE = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_SANDBOX = {**_SECURE,
            "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"}


def add_routes(api: FastAPI, engine: Aidsearch) -> None:
    """The JSON API and the document routes (all sync: FastAPI runs them in its threadpool); the conversations of
    ``/api/ask`` are kept in memory, bounded in number and idle time."""
    conversations = Conversations()

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
        return {"status": "ok", "documents": engine.stats()["documents"], "generation": engine.generation_status()}

    @api.get("/api/stats", tags=["api"], summary="Index statistics")
    def stats() -> dict[str, Any]:
        return engine.stats()

    @api.post("/api/ask", tags=["api"], summary="Answer a question with cited passages",
              responses=_ERROR_RESPONSES)
    def ask(body: AskRequest) -> dict[str, Any]:
        if body.conversation_id is None:
            return engine.ask(body.question, k=body.k, filters=body.filters, answer_mode=body.mode).to_dict()
        turn = conversations.get(body.conversation_id).turn(check_question(body.question))
        answer = engine.ask(turn.query, k=body.k, filters=body.filters, answer_mode=body.mode)
        conversations.put(body.conversation_id, turn.after)
        return {**answer.to_dict(), "question": turn.question, "query": turn.query, "followup_of": turn.followup_of,
                "conversation_id": body.conversation_id}

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
