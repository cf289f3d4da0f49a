"""aidsearch: ask in English or French, get answers with cited passages from aid-project documents."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Aidsearch, open_index
    from .types import Answer, Chunk, Citation, Document, Hit, SearchResult

__all__ = ["Aidsearch", "Answer", "Chunk", "Citation", "Document", "Hit", "SearchResult", "open_index"]
_FROM = {"Aidsearch": "api", "open_index": "api", **{name: "types" for name in __all__[1:7]}}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use: the command line starts without numpy, FAISS or torch."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("aidsearch")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    if name in _FROM:
        import importlib

        return getattr(importlib.import_module(f".{_FROM[name]}", __name__), name)
    raise AttributeError(f"module 'aidsearch' has no attribute {name!r}")
