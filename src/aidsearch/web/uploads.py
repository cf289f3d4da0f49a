"""Uploaded files: safe names, types checked on the content, saving without overwriting, and daily limits."""
from __future__ import annotations

import io
import json
import logging
import re
import unicodedata
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import AidsearchError
from .strings import UPLOAD_MESSAGES

log = logging.getLogger("aidsearch")
UPLOAD_FOLDER = "uploads"
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
