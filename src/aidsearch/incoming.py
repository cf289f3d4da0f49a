"""Files added to the corpus folder: safe names, types checked on the content, and saving without overwriting."""
from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

from .errors import AidsearchError

UPLOAD_FOLDER = "uploads"
_KINDS = {".pdf": "pdf", ".docx": "docx", ".html": "text", ".htm": "text", ".txt": "text", ".md": "text",
          ".markdown": "text"}
_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*]')
UPLOAD_MESSAGES = {  # why a file is refused, by ``UploadRejected.code``
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
