"""Plain text and Markdown files; Markdown markup is reduced to its text and the first "# " heading is the title."""
from __future__ import annotations

import re
from pathlib import Path

from .decode import decode
from .extracted import Extracted

_MD_SUFFIXES = {".md", ".markdown"}
_MD_TITLE = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_MD_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"<!--.*?-->", re.DOTALL), ""),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE), r"\1"),
    (re.compile(r"^\s*```.*$|^\s*~~~.*$", re.MULTILINE), ""),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"^\s{0,3}>\s?", re.MULTILINE), ""),
)


def read(path: Path, source: str, data: bytes) -> Extracted:
    """Text of a .txt or .md file; the title of a Markdown file is its first level-1 heading."""
    text = decode(data, source)
    if path.suffix.lower() not in _MD_SUFFIXES:
        return Extracted(text)
    m = _MD_TITLE.search(text)
    for pattern, repl in _MD_SUBS:
        text = pattern.sub(repl, text)
    return Extracted(text, m.group(1).strip() if m else None)
