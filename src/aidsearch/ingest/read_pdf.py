"""PDF files: the text of each page (pypdf), for page numbers to be kept; encrypted and broken files refused."""
from __future__ import annotations

import io
import logging
import re
from pathlib import Path

from ..errors import IngestError
from .clean import guess_title
from .decode import unreadable
from .extracted import Extracted

log = logging.getLogger("aidsearch")

VERSION = 2  # 2: the lines that the layout wrapped are joined back (clean.unwrap)
_TITLE_JUNK = re.compile(r"^(?:microsoft\s+(?:word|powerpoint)\s*-\s*)|\.(?:docx?|pdf|pptx?|odt)$", re.I)


def read(path: Path, source: str, data: bytes) -> Extracted:
    """Raw text of every page; the title from the PDF's metadata when it reads as one, else from its first pages."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    if b"%PDF-" not in data[:1024]:
        raise unreadable(source, "not a valid PDF (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except (DependencyError, NotImplementedError) as err:
                raise unreadable(source, f"encrypted PDF ({err})") from None
            if not ok:
                raise unreadable(source, "encrypted PDF (password required)")
        pages = list(reader.pages)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except IngestError:
        raise
    except (PdfReadError, FileNotDecryptedError, ValueError, KeyError, TypeError, AttributeError, OSError,
            RecursionError) as err:
        raise unreadable(source, f"not a valid PDF ({err})") from None
    raw_pages: list[str] = []
    for page in pages:
        try:
            raw_pages.append(page.extract_text() or "")
        except Exception as err:  # noqa: BLE001 - one unreadable page must not lose the document
            log.debug("page text failed in %s: %s", source, err)
            raw_pages.append("")
    title = " ".join(_TITLE_JUNK.sub("", str(meta_title)).split())
    if len(re.findall(r"[^\W\d_]{2,}", title)) < 2 or title.lower() in {"sans titre", "untitled document"}:
        title = guess_title("\n".join(raw_pages[:2]).replace("\r", "\n")) or ""
    return Extracted(title=title or None, pages=tuple(raw_pages))
