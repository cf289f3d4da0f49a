"""Who may reach the app: the optional HTTP Basic login, the check before serving to the network, and error
messages kept free of server paths."""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import secrets
from pathlib import Path
from typing import Any, Mapping

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..errors import ConfigError

_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/:'\"`]+/)*([^\s/:'\"`]+)")


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
    """User and password of an HTTP Basic ``Authorization`` header, or of a bearer token ``user:password`` (how
    OpenAI clients send their API key), None when it is neither."""
    if header and header[:7].lower() == b"bearer ":
        user, colon, password = header[7:].strip().partition(b":")
        return (user, password) if colon else None
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach ("localhost", 127.0.0.0/8, ::1)."""
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


def public_message(message: str, settings: Settings) -> str:
    """``message`` on one line with no absolute path of the server: the index and corpus folders by their own
    names (paths inside them relative to them), any other path by its last part."""
    line = message.splitlines()[0] if message else ""
    for folder in (Path(settings.index_dir), Path(settings.corpus_dir)):
        for form in {str(folder.resolve()), str(folder.absolute())}:
            line = line.replace(form, folder.name or ".")
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1), line)
