"""Errors aidsearch raises; each message is one line meant for the user."""
from __future__ import annotations


class AidsearchError(Exception):
    """Base class: ``str(err)`` is a one-line message fit for a user."""


class ConfigError(AidsearchError):
    pass


class ModelError(AidsearchError):
    pass


class IngestError(AidsearchError):
    """A single file could not be read; ingestion skips it and goes on."""


class IndexMissingError(AidsearchError):
    pass


class IndexMismatchError(AidsearchError):
    pass


class IndexCorruptError(AidsearchError):
    pass


class IndexLockedError(AidsearchError):
    pass


class QueryError(AidsearchError):
    pass


class IndexWriteError(AidsearchError):
    """A new index generation could not be written (e.g. the disk is full); the previous one is kept."""
