"""The web app: a Gradio chat page, document downloads and a JSON API, in one FastAPI process.

Every piece of document or user text is passed through ``html.escape`` before it reaches a Gradio
component; Gradio's own sanitizer stays on as a second line of defence.
"""
from __future__ import annotations

import base64
import binascii
import html
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
from ..lang import detect_en_fr
from ..types import Answer, Document

log = logging.getLogger("aidsearch")
ASSETS = Path(__file__).parent.parent / "web_assets"
CONTEXT_CHARS = 600
EXCERPT_CHARS = 180
UPLOAD_FOLDER = "uploads"
_DOC_ID = re.compile(r"^[0-9a-f]{8,64}$")

# --------------------------------------------------------------------------- interface strings

UI: dict[str, dict[str, str]] = {
    "en": {
        "title": "Project document assistant",
        "subtitle": "Ask in English or French. Answers quote the indexed documents, with numbered sources.",
        "placeholder": "Ask a question in English or French…",
        "ask": "Ask",
        "new_chat": "New conversation",
        "filters": "Filters",
        "country": "Country",
        "language": "Language",
        "funder": "Funder",
        "year_from": "From year",
        "year_to": "To year",
        "clear_filters": "Clear filters",
        "upload": "Add documents",
        "upload_files": "PDF, DOCX, HTML, TXT or MD files",
        "upload_btn": "Add to the index",
        "status": "Index status",
        "documents": "Documents",
        "passages": "Passages",
        "languages": "Languages",
        "updated": "Last update",
        "model": "Model",
        "sources": "Sources",
        "page": "Page",
        "score": "Similarity",
        "in_context": "Show the passage in its context",
        "open": "Open the original",
        "open_text": "Plain text",
        "filters_header": "Filters",
        "followup": "Follow-up on",
        "none": "No answer found in the indexed documents.",
        "hint_none": "Try other words, a more specific question, or fewer filters.",
        "error": "Could not answer",
        "searching": "Searching the documents…",
        "en": "English",
        "fr": "French",
        "added": "added and indexed",
        "unchanged": "already in the index",
        "rejected": "rejected",
        "no_files": "Choose one or more files first.",
        "reading": "Reading documents",
        "embedding": "Indexing passages",
        "api_docs": "HTTP API",
        "footer": "Answers are extracts of the documents; check the cited sources.",
        "open_network": "Open to the network without login: anyone who reaches this address can ask and upload "
                        "documents.",
    },
    "fr": {
        "title": "Assistant documentaire des projets",
        "subtitle": "Posez vos questions en français ou en anglais. Les réponses citent les documents indexés, "
                    "avec des sources numérotées.",
        "placeholder": "Posez une question en français ou en anglais…",
        "ask": "Demander",
        "new_chat": "Nouvelle conversation",
        "filters": "Filtres",
        "country": "Pays",
        "language": "Langue",
        "funder": "Bailleur",
        "year_from": "Depuis l'année",
        "year_to": "Jusqu'à l'année",
        "clear_filters": "Effacer les filtres",
        "upload": "Ajouter des documents",
        "upload_files": "Fichiers PDF, DOCX, HTML, TXT ou MD",
        "upload_btn": "Ajouter à l'index",
        "status": "État de l'index",
        "documents": "Documents",
        "passages": "Passages",
        "languages": "Langues",
        "updated": "Dernière mise à jour",
        "model": "Modèle",
        "sources": "Sources",
        "page": "Page",
        "score": "Similarité",
        "in_context": "Voir le passage dans son contexte",
        "open": "Ouvrir l'original",
        "open_text": "Texte brut",
        "filters_header": "Filtres",
        "followup": "Suite de",
        "none": "Aucune réponse trouvée dans les documents indexés.",
        "hint_none": "Essayez d'autres mots, une question plus précise ou moins de filtres.",
        "error": "Impossible de répondre",
        "searching": "Recherche dans les documents…",
        "en": "anglais",
        "fr": "français",
        "added": "ajouté et indexé",
        "unchanged": "déjà dans l'index",
        "rejected": "refusé",
        "no_files": "Choisissez d'abord un ou plusieurs fichiers.",
        "reading": "Lecture des documents",
        "embedding": "Indexation des passages",
        "api_docs": "API HTTP",
        "footer": "Les réponses sont des extraits des documents ; vérifiez les sources citées.",
        "open_network": "Ouvert au réseau sans connexion : toute personne qui atteint cette adresse peut poser des questions "
                "et déposer des documents.",
    },
}

EXAMPLES = (
    "What is the total budget of the Lao-Luxembourg Health Sector Support Programme Phase II?",
    "Quelle est la durée totale du projet au Kosovo ?",
    "Which hospitals in Kosovo receive investments?",
    "Combien de fonctionnaires locaux ont reçu un appui technique au Laos ?",
)


def t(lang: str, key: str) -> str:
    return UI.get(lang, UI["en"])[key]


# --------------------------------------------------------------------------- follow-up questions

_FOLLOWUP = re.compile(
    r"^\s*(?:(?P<fr>et|qu['’]en est-il|quid|pareil|idem)|(?P<en>and|what about|how about|same for|also))\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)
_NOT_SUBJECT = frozenset("""
a an the of in on at for to from by with and or is are was were be been does do did has have had what which who whom
whose when where why how long many much its their this that these those there it about any all last lasts take takes
total cost costs budget budgets duration amount funding funded fund contribution contribute contributes start starts
started end ends ended period date dates year years month months number give gave receive received
le la les l de du des d un une et ou en au aux à est sont était par pour sur dans avec quel quelle quels quelles qui
que qu quoi quand où comment combien son sa ses leur leurs ce cet cette ces y il elle se s totale coût montant durée
financement finance financé période année années mois début fin
""".split())


def is_followup(question: str) -> bool:
    """A short question, or one opening with and/et/what about…, continues the previous one."""
    return bool(_FOLLOWUP.match(question)) or len(_WORD.findall(question)) <= 3


def subject_terms(question: str) -> str:
    """The content words of a question (its subject), without question and measure words."""
    words = [w for w in _WORD.findall(question) if w.lower().strip("'’") not in _NOT_SUBJECT]
    return " ".join(dict.fromkeys(words))


def resolve_followup(question: str, subject: str | None) -> str:
    """The retrieval query: ``question`` plus the previous subject when it reads as a follow-up."""
    if subject and is_followup(question):
        return f"{question} {subject}"
    return question


def question_language(question: str) -> str:
    m = _FOLLOWUP.match(question)
    if m and len(_WORD.findall(question)) <= 4:
        return "fr" if m.group("fr") else "en"
    return detect_en_fr(question)


# --------------------------------------------------------------------------- HTML rendering


def _esc(text: Any) -> str:
    """Escaped text with newlines as ``<br>`` so a message stays one markdown HTML block."""
    out = html.escape(str(text), quote=True).replace("\r", "")
    out = re.sub(r"\n[ \t]*\n\s*", '<span class="as-gap"></span>', out)
    return out.replace("\n", "<br>")


def _marked(text: str, spans: Sequence[Sequence[int]], offset: int = 0) -> str:
    """``text`` escaped, with the char ``spans`` (shifted by ``offset``) wrapped in ``<mark>``."""
    out, pos = [], 0
    for s, e in sorted((max(0, s - offset), min(len(text), e - offset)) for s, e in spans):
        if e <= pos or s >= len(text):
            continue
        s = max(s, pos)
        out += [_esc(text[pos:s]), "<mark>", _esc(text[s:e]), "</mark>"]
        pos = e
    out.append(_esc(text[pos:]))
    return "".join(out)


def _excerpt(text: str, spans: Sequence[Sequence[int]], pad: int = EXCERPT_CHARS) -> str:
    """The part of a passage around its highlighted sentences (the whole passage is in the context view)."""
    first = min((int(s) for s, _ in spans), default=0)
    last = max((int(e) for _, e in spans), default=min(len(text), pad))
    lo, hi = max(0, first - pad), min(len(text), last + pad)
    if lo > 0:  # start and stop at a line break, else at a word boundary
        cut = text.find("\n", lo, first)
        cut = cut if cut >= 0 else text.find(" ", lo, first)
        lo = cut + 1 if cut >= 0 else lo
    if hi < len(text):
        cut = text.rfind("\n", last, hi)
        cut = cut if cut >= 0 else text.rfind(" ", last, hi)
        hi = cut if cut > 0 else hi
    return ("…" if lo else "") + _marked(text[lo:hi], spans, lo) + ("…" if hi < len(text) else "")


def format_filters(filters: Mapping[str, Sequence[str]]) -> str:
    return ", ".join(f"{k}={'|'.join(map(str, v))}" for k, v in filters.items() if v)


def _context_html(doc: Document | None, cit: Mapping[str, Any]) -> str:
    if doc is None:
        return ""
    start, end = int(cit["start"]), int(cit["end"])
    lo, hi = max(0, start - CONTEXT_CHARS), min(len(doc.text), end + CONTEXT_CHARS)
    spans = [(start + s, start + e) for s, e in cit["highlights"]]
    before = ("…" if lo else "") + doc.text[lo:start]
    after = doc.text[end:hi] + ("…" if hi < len(doc.text) else "")
    return (f'<div class="as-context">{_esc(before)}<span class="as-context-passage">'
            f'{_marked(doc.text[start:end], spans, start)}</span>{_esc(after)}</div>')


_CHIPS = {"country": "country", "lang": "language", "page": "page", "score": "score"}  # chip → UI label key


def _token(value: Any) -> str:
    """A value reduced to a safe CSS class suffix."""
    return re.sub(r"[^a-z0-9-]", "", str(value).lower()) or "x"


def render_card(cit: Mapping[str, Any], doc: Document | None, lang: str) -> str:
    """One numbered source: title, facts, highlighted passage; expands to the surrounding text and links."""
    doc_id = html.escape(str(cit["doc_id"]), quote=True)
    language = t(lang, cit["lang"]) if cit["lang"] in UI else cit["lang"]
    facts = {"country": cit.get("country"), "lang": language, "page": cit.get("page"),
             "score": f"{float(cit.get('similarity', cit['score'])):.2f}"}
    chips = "".join(f'<span class="as-chip as-chip-{key}"><span class="as-chip-k">{_esc(t(lang, _CHIPS[key]))}</span> '
                    f'<span class="as-chip-v">{_esc(v)}</span></span>' for key, v in facts.items() if v not in (None, ""))
    return (
        f'<details class="as-card as-lang-{_token(cit["lang"])}">'
        f'<summary><div class="as-card-head"><span class="as-n">[{int(cit["n"])}]</span>'
        f'<span class="as-title">{_esc(cit["title"])}</span></div>'
        f'<div class="as-chips">{chips}<span class="as-source">{_esc(cit["source"])}</span></div>'
        f'<div class="as-passage">{_excerpt(cit["text"], cit["highlights"])}</div>'
        f'<div class="as-expand">{_esc(t(lang, "in_context"))}</div></summary>'
        f'{_context_html(doc, cit)}'
        f'<div class="as-links"><a class="as-doc-link" href="/documents/{doc_id}" target="_blank" rel="noopener">'
        f'{_esc(t(lang, "open"))}</a><a class="as-doc-text" href="/documents/{doc_id}/text" target="_blank" '
        f'rel="noopener">{_esc(t(lang, "open_text"))}</a></div></details>'
    )


def render_answer(answer: Answer, lang: str, documents: Callable[[str], Document | None],
                  subject: str | None = None) -> str:
    """The assistant message: header (filters, follow-up), answer with ``[n]`` markers, source cards."""
    data = answer.to_dict()
    header = []
    if data["filters"]:
        shown = f'{t(lang, "filters_header")}: {format_filters(data["filters"])}'
        header.append(f'<span class="as-filters">{_esc(shown)}</span>')
    if subject:
        header.append(f'<span class="as-followup">{_esc(t(lang, "followup"))}: {_esc(subject)}</span>')
    head = f'<div class="as-header">{"".join(header)}</div>' if header else ""
    if not data["found"]:
        return (f'<div class="as-answer as-none as-lang-{lang}">{head}<p class="as-text">{_esc(t(lang, "none"))}</p>'
                f'<p class="as-hint">{_esc(t(lang, "hint_none"))}</p></div>')
    marked = _marked(data["answer"], [(h["start"], h["end"]) for h in data["highlights"]])
    text = re.sub(r"\[(\d+)\]", r'<span class="as-ref">[\1]</span>', marked.replace("<mark>", '<mark class="as-span">'))
    cards = "".join(render_card(c, documents(c["doc_id"]), lang) for c in data["citations"])
    return (f'<div class="as-answer as-lang-{lang}">{head}<p class="as-text">{text}</p>'
            f'<div class="as-sources"><div class="as-sources-title">{_esc(t(lang, "sources"))}</div>{cards}</div></div>')


def render_error(message: str, lang: str) -> str:
    text = _esc(f'{t(lang, "error")}: {message}')
    return f'<div class="as-answer as-error as-lang-{lang}"><p class="as-text">{text}</p></div>'


def render_stats(stats: Mapping[str, Any], lang: str) -> str:
    langs = ", ".join(f"{t(lang, k) if k in UI else k} {v}" for k, v in sorted((stats.get("languages") or {}).items()))
    updated = str(stats.get("updated") or "–").replace("T", " ").replace("+00:00", " UTC")
    rows = [(t(lang, "documents"), stats.get("documents")), (t(lang, "passages"), stats.get("passages")),
            (t(lang, "languages"), langs or "–"), (t(lang, "updated"), updated),
            (t(lang, "model"), (stats.get("model") or {}).get("name"))]
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows)
    return f'<dl class="as-stats">{items}</dl>'


# --------------------------------------------------------------------------- uploads

UPLOAD_MESSAGES = {
    "en": {"bad_name": "no usable file name", "bad_type": "unsupported type {ext}: use PDF, DOCX, HTML, TXT or MD",
           "empty": "empty file", "too_big": "file too large ({mb:.1f} MB; the limit is {limit} MB)",
           "not_pdf": "not a PDF: the content does not start with %PDF-",
           "not_docx": "not a DOCX: no word/document.xml inside", "not_text": "not a text file: binary content",
           "disabled": "uploads are turned off on this server",
           "quota": "daily upload limit reached ({files} files or {mb} MB per user and day): try again tomorrow"},
    "fr": {"bad_name": "nom de fichier inutilisable",
           "bad_type": "type {ext} non pris en charge : PDF, DOCX, HTML, TXT ou MD",
           "empty": "fichier vide", "too_big": "fichier trop volumineux ({mb:.1f} Mo ; la limite est de {limit} Mo)",
           "not_pdf": "pas un PDF : le contenu ne commence pas par %PDF-",
           "not_docx": "pas un DOCX : pas de word/document.xml", "not_text": "pas un fichier texte : contenu binaire",
           "disabled": "l'ajout de documents est désactivé sur ce serveur",
           "quota": "limite quotidienne d'ajout atteinte ({files} fichiers ou {mb} Mo par utilisateur et par jour) : "
                    "réessayez demain"},
}
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
        return [f'<li class="{"as-ok" if ok else "as-bad"}"><b>{_esc(name)}</b>: {_esc(msg)}</li>'
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
                history.append({"role": "user", "content": _esc(message)})
                waiting = f'<div class="as-pending">{_esc(t(lang, "searching"))}</div>'
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
                    return [f'<p class="as-bad">{_esc(t(lang, "no_files"))}</p>', gr.update()] + [gr.skip()] * 6

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
        return [(t(lang, c) if c in UI else c, c) for c in codes]

    @staticmethod
    def _heading(lang: str) -> str:
        return (f'<div class="as-heading as-lang-{lang}"><h1>{_esc(t(lang, "title"))}</h1>'
                f'<p>{_esc(t(lang, "subtitle"))}</p></div>')

    def _footer(self, lang: str) -> str:
        warning = (f'<div class="as-open" role="alert">{_esc(t(lang, "open_network"))}</div>'
                   if open_to_network(self.engine.settings) else "")
        return (f'{warning}<div class="as-footer">{_esc(t(lang, "footer"))} · '
                f'<a href="/docs" target="_blank" rel="noopener">{_esc(t(lang, "api_docs"))}</a></div>')


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
