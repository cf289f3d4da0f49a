"""aidsearch: ask in English or French, get answers with cited passages from aid-project documents."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aidsearch")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

from .api import Aidsearch, open_index  # noqa: E402
from .types import Answer, Chunk, Citation, Document, Hit, SearchResult  # noqa: E402

__all__ = ["Aidsearch", "Answer", "Chunk", "Citation", "Document", "Hit", "SearchResult", "open_index"]
