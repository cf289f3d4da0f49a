"""Word (.docx) files: paragraphs, lists and tables as text; packages that would expand too much refused."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from .decode import unreadable
from .extracted import Extracted

MAX_UNCOMPRESSED = 200 * 1024 * 1024
MAX_RATIO = 50
_RATIO_FLOOR = 2 * 1024 * 1024  # below this uncompressed size no ratio can hurt


def _check_zip(path: Path, source: str, size: int) -> None:
    """Refuse what is not a Word package or would expand too much (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise unreadable(source, f"not a valid DOCX (not a zip archive: {err})") from None
    if "word/document.xml" not in names:
        raise unreadable(source, "not a valid DOCX (no word/document.xml)")
    total = sum(i.file_size for i in infos)
    mb = total / 1024 / 1024
    if total > MAX_UNCOMPRESSED:
        raise unreadable(source, f"refusing DOCX that expands to {mb:.0f} MB (possible zip bomb)")
    packed = max(size, 1)
    if total > _RATIO_FLOOR and total > MAX_RATIO * packed:
        raise unreadable(source, f"refusing DOCX with compression ratio {total / packed:.0f}x (possible zip bomb)")


def read(path: Path, source: str, data: bytes) -> Extracted:
    """Paragraphs, list items and table rows in document order; the title from the properties or the first heading."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    _check_zip(path, source, len(data))
    try:
        document = docx.Document(io.BytesIO(data))
        content = list(document.iter_inner_content())
        core_title = (document.core_properties.title or "").strip()
    except Exception as err:  # noqa: BLE001 - python-docx raises many types on corrupt packages
        raise unreadable(source, f"not a valid DOCX ({type(err).__name__}: {err})") from None
    blocks: list[str] = []
    heading_title = ""
    prev_list = False
    for item in content:
        if isinstance(item, Paragraph):
            text = " ".join(item.text.split())
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            is_list = style.lower().startswith(("list", "liste"))
            if style.startswith(("Title", "Titre", "Heading 1", "Heading1")) and not heading_title:
                heading_title = text
            if is_list and prev_list:
                blocks[-1] += "\n- " + text
            else:
                blocks.append(("- " if is_list else "") + text)
            prev_list = is_list
        elif isinstance(item, Table):
            prev_list = False
            rows = []
            for row in item.rows:
                cells: list[str] = []
                seen: set[int] = set()
                for cell in row.cells:
                    if id(cell._tc) in seen:
                        continue
                    seen.add(id(cell._tc))
                    cells.append(" ".join(cell.text.split()))
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                blocks.append("\n".join(rows))
    return Extracted("\n\n".join(blocks), core_title or heading_title or None)
