"""The corpus folder: which files are read, in which order, and each one read into a ``Document``."""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IngestError
from ..lang import detect_language
from ..metadata import extract_metadata
from ..types import Document, Page, content_hash
from . import read_docx, read_html, read_pdf, read_text
from .clean import clean_pages, clean_text, guess_title, lead_title
from .decode import printable, unreadable
from .extracted import Reader

log = logging.getLogger("aidsearch")

# files, or bytes of them, to read before reading them in worker processes pays for starting them (under a second)
PARALLEL_FROM, PARALLEL_FROM_BYTES = 100, 2 * 1024 * 1024
SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
MAX_BYTES = 50 * 1024 * 1024
_READERS: dict[str, Reader] = {
    ".txt": read_text.read, ".md": read_text.read, ".markdown": read_text.read,
    ".html": read_html.read, ".htm": read_html.read, ".pdf": read_pdf.read, ".docx": read_docx.read,
}

_VERSIONS = {".pdf": read_pdf.VERSION}  # a file read by an earlier version of its reader is read again


def reading_version(path: str | Path) -> int:
    """The version of the reader of ``path``'s file type (1 unless its reading changed since indexes first held it)."""
    return _VERSIONS.get(os.path.splitext(path)[1].lower(), 1)


@dataclass(frozen=True)
class Skipped:
    """A corpus file that was not ingested, with a one-line reason."""

    source: str
    reason: str


def _source_of(path: Path, root: Path) -> str:
    for base in (root, root.resolve()):
        for p in (path, path.resolve()):
            try:
                rel = p.relative_to(base)
            except ValueError:
                continue
            if rel.parts:
                return rel.as_posix()
    return path.name


def iter_corpus(root: Path, skipped: list[Skipped] | None = None) -> Iterator[Path]:
    """Supported files under ``root``, sorted by relative path; hidden entries and symlinks leaving root skipped.

    Symbolic links that are broken or lead out of ``root`` are appended to ``skipped`` (when given) with a reason.
    """
    root = Path(root)
    for _, path in corpus_files(root, skipped):
        yield Path(path)


def corpus_files(root: Path, skipped: list[Skipped] | None = None) -> list[tuple[str, str]]:
    """``iter_corpus`` as (relative path with ``/``, path) strings: quick to list for a corpus of 100,000 files."""
    root = Path(root)
    if root.is_file():
        return [(root.name, str(root))] if root.suffix.lower() in SUPPORTED else []
    base = root.resolve()
    found: list[tuple[str, str]] = []

    def refuse(relative: str, reason: str) -> None:
        if skipped is not None:
            shown = printable(relative)
            skipped.append(Skipped(shown, f"cannot read {shown}: {reason}"))

    folders = [(str(root), "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            if entry.is_dir(follow_symlinks=False):
                folders.append((path, f"{prefix}{name}/"))
                continue
            link = entry.is_symlink()
            if link and entry.is_dir():  # folder links are never followed; say so when they lead out of the corpus
                try:
                    outside = not Path(path).resolve().is_relative_to(base)
                except (OSError, RuntimeError):
                    outside = True
                if outside:
                    refuse(prefix + name, "symbolic link to a folder outside the corpus folder")
                continue
            if name.startswith("~$") or os.path.splitext(name)[1].lower() not in SUPPORTED:
                continue
            if link:
                try:
                    target = Path(path).resolve(strict=True)
                except (OSError, RuntimeError):
                    refuse(prefix + name, "broken symbolic link")
                    continue
                if not target.is_relative_to(base):
                    refuse(prefix + name, "symbolic link to a file outside the corpus folder")
                    continue
            if entry.is_file():
                found.append((f"{prefix}{name}", path))
    return sorted(found)


def read_document(path: Path, root: Path, max_bytes: int = MAX_BYTES) -> Document:
    """Read, clean and describe one file; raises ``IngestError`` (one line) when it cannot be used."""
    path, root = Path(path), Path(root)
    source = _source_of(path, root)
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        raise unreadable(source, "file name is not valid UTF-8 (rename the file)") from None
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise unreadable(source, f"unsupported file type {path.suffix or '(none)'}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            mb, limit = size / 1024 / 1024, max_bytes / 1024 / 1024
            raise unreadable(source, f"file too large ({mb:.1f} MB > {limit:.0f} MB limit)")
        if size == 0:
            raise unreadable(source, "empty file")
        data = path.read_bytes()
    except OSError as err:
        raise unreadable(source, err.strerror or str(err)) from None
    extracted = reader(path, source, data)
    pages: tuple[Page, ...]
    if extracted.pages is None:
        text, pages = clean_text(extracted.text, extracted.title), ()
    else:
        text, pages = clean_pages(extracted.pages, extracted.title)
        if not pages:
            raise unreadable(source, "no extractable text (scanned or image-only PDF?)")
    if not any(ch.isalnum() for ch in text):
        raise unreadable(source, "no text after cleaning")
    title = extracted.title or guess_title(text) or lead_title(text) or path.stem
    title = " ".join(title.split())[:300]
    return Document(
        id=content_hash(text),
        source=source,
        title=title,
        text=text,
        lang=detect_language(text),
        metadata=extract_metadata(text, title=title),
        pages=pages,
    )


def _read_or_error(path: str, root: str) -> Document | IngestError:
    try:
        return read_document(Path(path), Path(root))
    except IngestError as exc:
        return exc


_PREPARE: Callable[[Document], Any] | None = None  # what worker processes do next with a document they read
_PREPARE_LOCK = threading.Lock()


def _read_and_prepare(path: str, root: str) -> tuple[Document | IngestError, Any]:
    read = _read_or_error(path, root)
    return read, (None if _PREPARE is None or isinstance(read, IngestError) else _PREPARE(read))


def _size(paths: Sequence[str]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass  # read_document says what is wrong with it
    return total


def read_documents(paths: Sequence[str], root: Path, workers: int = 1,
                   prepare: Callable[[Document], Any] | None = None, size: int | None = None
                   ) -> Generator[tuple[Document | IngestError, Any], None, None]:
    """``read_document`` of each path in order, as (document, ``prepare(document)`` or None), or (``IngestError``,
    None) for a file that cannot be used. With ``workers`` > 1 and at least ``PARALLEL_FROM`` paths (or
    ``PARALLEL_FROM_BYTES`` of them: ``size``, when the caller knows it), files are read, and prepared, by that
    many processes forked from this one (``prepare`` need not be picklable). A document read here comes with None,
    for the caller to prepare after reading (reading all, then preparing all, is faster in one process than taking
    turns), and so does one read by a process started afresh (where processes are not forked). Should the workers
    stop (a reader that crashes one), the files left are read here."""
    done = 0
    many = len(paths) >= PARALLEL_FROM or (_size(paths) if size is None else size) >= PARALLEL_FROM_BYTES
    if workers > 1 and len(paths) > 1 and many:
        global _PREPARE
        with _PREPARE_LOCK:  # the processes are started, holding it, while the tasks are handed out
            _PREPARE = prepare
            try:
                pool = ProcessPoolExecutor(max_workers=workers)
                results = pool.map(_read_and_prepare, paths, [str(root)] * len(paths), chunksize=16)
            finally:
                _PREPARE = None
        try:
            for read in results:
                yield read
                done += 1
        except BrokenProcessPool:
            log.warning("the processes reading the corpus stopped: the other %d files are read one at a time",
                        len(paths) - done)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    for path in paths[done:]:
        yield _read_or_error(path, str(root)), None
