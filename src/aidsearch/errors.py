"""Errors aidsearch raises; each message is one line meant for the user. Each kind of error carries what the HTTP
API answers with it: ``kind`` (a stable name), ``status`` (the HTTP status) and a ``hint`` (what to do), the hint
given where the error is raised or else the kind's default."""
from __future__ import annotations

from typing import ClassVar


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none (libraries raise many kinds, with
    messages of many lines; a user or a log needs one)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class AidsearchError(Exception):
    """Base class: ``str(err)`` is a one-line message fit for a user."""

    kind: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    default_hint: ClassVar[str] = ""

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = self.default_hint if hint is None else hint


class ConfigError(AidsearchError):
    kind, status = "config", 500
    default_hint = "fix the setting named in the message (aidsearch.toml, AIDSEARCH_* variables or options)"


class ModelError(AidsearchError):
    kind, status = "model", 500
    default_hint = "reinstall the project's packages (make install)"


class IngestError(AidsearchError):
    """A single file could not be read; ingestion skips it and goes on."""

    kind, status = "bad_document", 400
    default_hint = "check the file: it may be damaged, empty or of an unsupported type"


class IndexMissingError(AidsearchError):
    kind, status = "index_missing", 503
    default_hint = "build the index with `aidsearch index` (the web app builds it when it starts)"


class IndexMismatchError(AidsearchError):
    kind, status = "index_mismatch", 500
    default_hint = "rebuild the index with `aidsearch index --rebuild`"


class IndexCorruptError(AidsearchError):
    kind, status = "index_corrupt", 500
    default_hint = "rebuild the index with `aidsearch index --rebuild`"


class IndexLockedError(AidsearchError):
    kind, status = "index_busy", 503
    default_hint = "the index is being written: try again in a few seconds"


class QueryError(AidsearchError):
    kind, status = "bad_request", 400
    default_hint = "rephrase the question or correct the filters"


class IndexWriteError(AidsearchError):
    """A new index generation could not be written (e.g. the disk is full); the previous one is kept."""

    kind, status = "index_write", 500
    default_hint = "free disk space or fix the index folder's permissions, then index again"
