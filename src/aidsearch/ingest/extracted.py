"""What a format reader hands back: the raw text of a file, or of its pages, and the title the file names."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Extracted:
    """Raw text and title of one file; ``pages`` (raw page texts, numbered from 1) is set for paged formats."""

    text: str = ""
    title: str | None = None
    pages: tuple[str, ...] | None = None


Reader = Callable[[Path, str, bytes], Extracted]
"""A format reader: (path, source name for messages, file bytes) -> ``Extracted``; raises ``IngestError``."""
