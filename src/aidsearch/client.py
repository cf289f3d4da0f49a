"""A client of a running aidsearch server, so that ``aidsearch ask`` and ``search`` from the shell are answered by
the server's loaded model instead of loading it for every command. Imports nothing heavy."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import AidsearchError, QueryError

_CREATED = re.compile(rb'\{"created": ("[^"\\]*")')
_GENERATION = re.compile(r"gen-\d+")
PROBE_TIMEOUT = 0.5  # seconds a server found by itself (not named) has to answer
TIMEOUT = 300.0


@dataclass(frozen=True)
class Remote:
    """The aidsearch server at ``url`` (``http://127.0.0.1:7860``); ``auth`` ("user:password") is sent as a bearer
    token when the server wants a login."""

    url: str
    auth: str = field(default="", repr=False)
    timeout: float = TIMEOUT

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth}"} if self.auth else {}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """The JSON the server answers; AidsearchError with its one-line message when it refuses, or when no
        aidsearch server answers."""
        from http.client import HTTPConnection, HTTPException, HTTPSConnection  # the standard library's: quick to load
        from urllib.parse import urlsplit

        parts = urlsplit(self.url.rstrip("/") + path)
        headers = self._headers()
        payload = None
        if body is not None:
            payload, headers["Content-Type"] = json.dumps(body).encode("utf-8"), "application/json"
        connection = None
        try:
            kind = HTTPSConnection if parts.scheme == "https" else HTTPConnection
            connection = kind(parts.hostname or "", parts.port, timeout=timeout or self.timeout)
            connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), payload, headers)
            resp = connection.getresponse()
            status, data = resp.status, json.loads(resp.read() or b"null")
        except (OSError, HTTPException, ValueError):
            raise AidsearchError(f"no aidsearch server answers at {self.url}") from None
        finally:
            if connection is not None:
                connection.close()
        if status == 401:
            raise AidsearchError(f"the aidsearch server at {self.url} wants a login: set AIDSEARCH_AUTH=user:password")
        if status >= 400 or not isinstance(data, dict):
            message = data.get("error") if isinstance(data, dict) else None
            error = QueryError if status == 400 else AidsearchError
            raise error(str(message or f"the aidsearch server at {self.url} answered HTTP {status}"))
        return data

    def ask(self, question: str, *, k: int | None = None, filters: Sequence[str] | None = None,
            mode: str | None = None, conversation_id: str | None = None) -> dict[str, Any]:
        """``Aidsearch.ask(...).to_dict()``, answered by the server; with ``conversation_id`` a follow-up is read
        with the subject of that conversation's previous question (plus ``question``, ``query``, ``followup_of``)."""
        return self.call("POST", "/api/ask", {"question": question, "k": k, "filters": _filters(filters),
                                              "mode": mode, "conversation_id": conversation_id})

    def search(self, query: str, *, k: int | None = None, filters: Sequence[str] | None = None) -> dict[str, Any]:
        """``Aidsearch.search(...).to_dict()``, answered by the server."""
        return self.call("POST", "/api/search", {"query": query, "k": k, "filters": _filters(filters)})


def _filters(filters: Sequence[str] | None) -> dict[str, list[str]] | None:
    """``["country=Laos", "lang=fr"]`` as the API takes them, checked here first."""
    from .query import parse_filters

    return {key: list(values) for key, values in parse_filters(filters).items()} or None


def index_identity(index_dir: Path) -> tuple[Any, ...] | None:
    """What tells one index from another (its creation time and generation), read from the manifest of
    ``index_dir`` without loading the index; None when there is no readable index there."""
    root = Path(index_dir)
    try:
        name = (root / "CURRENT").read_text().strip()
        path = root / name / "manifest.json"
        with open(path, "rb") as fh:
            head = _CREATED.match(fh.read(256))  # the indexer writes the creation time first
        if head is not None and _GENERATION.fullmatch(name):  # gen-000012 holds generation 12
            return json.loads(head.group(1)), int(name[4:])
        manifest = json.loads(path.read_text())  # a manifest written otherwise: read it all (a large index: 15 MB)
    except (OSError, ValueError):
        return None
    return manifest.get("created"), manifest.get("generation")


def find(url: str, auth: str, index_dir: Path, *, named: bool) -> Remote | None:
    """The server at ``url`` to send questions to: when ``named`` (the user gave it) it must answer; otherwise it is
    used only if it answers within PROBE_TIMEOUT and serves the index in ``index_dir`` (same creation time and
    generation), so that a shell command never answers from another index than the one it names."""
    remote = Remote(url, auth)
    if named:
        return remote
    local = index_identity(index_dir)
    if local is None:
        return None
    try:
        stats = remote.call("GET", "/api/stats", timeout=PROBE_TIMEOUT)
    except AidsearchError:
        return None
    return remote if (stats.get("created"), stats.get("generation")) == local else None
