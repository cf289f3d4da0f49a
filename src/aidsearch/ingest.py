"""Ingestion: find corpus files, extract and clean their text, and build ``Document`` objects."""
from __future__ import annotations

import codecs
import io
import logging
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import IngestError
from .lang import detect_language
from .lexicon import BULLET, COOKIE_NOTICE, NAVIGATION, NAVIGATION_PHRASES, SCRIPT_NOTICE
from .metadata import extract_metadata, is_label
from .types import Document, Page, content_hash

__all__ = [
    "SUPPORTED",
    "Skipped",
    "clean_text",
    "guess_title",
    "is_boilerplate",
    "iter_corpus",
    "load_corpus",
    "printable",
    "read_document",
    "repair_mojibake",
]

log = logging.getLogger("aidsearch")

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
MAX_BYTES = 50 * 1024 * 1024
DOCX_MAX_UNCOMPRESSED = 200 * 1024 * 1024
DOCX_MAX_RATIO = 50
_DOCX_RATIO_FLOOR = 2 * 1024 * 1024  # below this uncompressed size no ratio can hurt


@dataclass(frozen=True)
class Skipped:
    """A corpus file that was not ingested, with a one-line reason."""

    source: str
    reason: str


# ---------------------------------------------------------------- mojibake

def _cp1252_continuations() -> str:
    chars = []
    for b in range(0x80, 0xC0):
        try:
            chars.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(b))
    return "".join(chars)


_CONT = "[" + re.escape(_cp1252_continuations()) + "]"
_MOJIBAKE_RE = re.compile(rf"[\u00c2-\u00df]{_CONT}|[\u00e0-\u00ef]{_CONT}{{2}}|[\u00f0-\u00f4]{_CONT}{{3}}")
_BROKEN_RE = re.compile(r"\ufffd|Ã[\s\u0080-\u00bf]|â€|Â[\u0080-\u00bf]")


def _to_cp1252_bytes(text: str) -> bytes | None:
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) > 0xFF:
                return None
            out.append(ord(ch))
    return bytes(out)


def _plausible(ch: str) -> bool:
    """Characters a repaired sequence may yield: Latin letters, punctuation, currency and letterlike signs."""
    return 0xA0 <= ord(ch) <= 0x24F or 0x2000 <= ord(ch) <= 0x214F


def _repair_match(m: re.Match[str]) -> str:
    raw = _to_cp1252_bytes(m.group(0))
    if raw is None:
        return m.group(0)
    try:
        fixed = raw.decode("utf-8")
    except UnicodeDecodeError:
        return m.group(0)
    return fixed if all(_plausible(ch) for ch in fixed) else m.group(0)


def repair_mojibake(text: str) -> str:
    """Undo UTF-8-read-as-cp1252 damage ("Ã©" → "é", "â€™" → "’"); drop lines that stay broken."""
    if not _MOJIBAKE_RE.search(text) and not _BROKEN_RE.search(text):
        return text
    lines = []
    for line in text.split("\n"):
        for _ in range(2):
            fixed = _MOJIBAKE_RE.sub(_repair_match, line)
            if fixed == line:
                break
            line = fixed
        line = line.replace("Ã\u00a0", "à").replace("Ã ", "à ")
        if not _BROKEN_RE.search(line):
            lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------- boilerplate

_WEAK_MAX = 3


_URL_LINE = re.compile(r"(?:https?://|www\.)\S+|mailto:\S+|/|#")
_LOGO_LINE = re.compile(
    r"(?:[\w&'’.-]+\s+){0,3}logo|logo(?:\s+[\w&'’.-]+){0,3}|\S+\.(?:png|jpe?g|gif|svg|webp)", re.IGNORECASE
)


def _bare(line: str) -> str:
    return BULLET.sub("", line).strip()


def is_boilerplate(line: str) -> bool:
    """True for a web-navigation/login/cookie/JavaScript line, a lone URL, separator or logo text."""
    if not any(ch.isalnum() for ch in line):
        return bool(line.strip())
    text = _bare(line)
    words = text.split()
    if _URL_LINE.fullmatch(text) or (len(words) <= 4 and _LOGO_LINE.fullmatch(text)):
        return True
    if len(words) <= 8 and NAVIGATION.search(text):
        return True
    if len(words) <= 80 and (SCRIPT_NOTICE.search(text) or COOKIE_NOTICE.search(text)):
        return True
    if len(words) <= 12 and len(re.findall(r"›|\s>\s" + ("" if "«" in text else r"|\s»\s"), text)) >= 2:
        return True
    return _only_weak(re.findall(r"[\w'-]+", text.lower()))


def _only_weak(tokens: list[str]) -> bool:
    """True when ``tokens`` (at most 6) are entirely covered by navigation phrases ("read more", "home", ...)."""
    if not tokens or len(tokens) > 6:
        return False
    i = 0
    while i < len(tokens):
        for n in range(min(_WEAK_MAX, len(tokens) - i), 0, -1):
            if " ".join(tokens[i:i + n]) in NAVIGATION_PHRASES:
                i += n
                break
        else:
            return False
    return True


# ---------------------------------------------------------------- titles

def _title_key(text: str) -> str:
    text = _bare(text).replace("’", "'").replace("‘", "'")
    return re.sub(r"\s+", " ", text).strip(" .:").casefold()


def _title_keys(title: str) -> set[str]:
    key = _title_key(title)
    keys = {key} if key else set()
    for sep in (" | ", " - ", " – ", " — "):
        head, found, _ = key.rpartition(sep)
        if found and len(head.split()) >= 3:
            keys.add(head)
    return keys


def _is_title_candidate(line: str) -> bool:
    if BULLET.match(line) or is_boilerplate(line):
        return False
    text = line.strip()
    words = text.split()
    letters = sum(ch.isalpha() for ch in text)
    visible = sum(not ch.isspace() for ch in text)
    return (
        2 <= len(words) <= 25
        and letters >= 8
        and letters >= 0.6 * visible
        and not text[0].isdigit()
        and not text.endswith((".", ":", ";", ",", "?", "!"))
        and not is_label(text)
    )


def guess_title(text: str) -> str | None:
    """The first heading-like line of ``text`` that is neither boilerplate nor a metadata label."""
    for line in text.splitlines()[:200]:
        if _is_title_candidate(line):
            return re.sub(r"\s+", " ", line.strip().lstrip("#").strip())
    return None


def lead_title(text: str, limit: int = 90) -> str | None:
    """A title made from the first full sentence, cut at a word boundary, for documents without a heading."""
    for line in text.splitlines():
        words = line.split()
        alpha = sum(w.isalpha() for w in words)
        if len(words) >= 8 and alpha >= 0.7 * len(words) and not is_boilerplate(line):
            sentence = re.split(r"(?<=[.!?:;])\s", line.strip(), maxsplit=1)[0].rstrip(".:;")
            return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0] + "…"
    return None


# ---------------------------------------------------------------- cleaning

_SPACES = re.compile(r"[\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]|[\x00-\x08\x0b\x0e-\x1f\x7f]")


class _Cleaner:
    """Line-level cleaner; remembers whether the title line was already kept (shared across PDF pages)."""

    def __init__(self, title: str | None) -> None:
        self.keys = _title_keys(title) if title else set()
        self.title_seen = False

    def __call__(self, text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
        text = unicodedata.normalize("NFC", repair_mojibake(text))
        text = _INVISIBLE.sub("", _SPACES.sub(" ", text))
        out: list[str] = []
        for line in text.split("\n"):
            line = line.rstrip()
            stripped = line.strip()
            if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
                line = stripped.strip("|").strip()
            if not line.strip():
                out.append("")
                continue
            if is_boilerplate(line):
                continue
            if self.keys and _title_key(line) in self.keys:
                if self.title_seen:
                    continue
                self.title_seen = True
            out.append(line)
        return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def clean_text(text: str, title: str | None = None) -> str:
    """NFC, newline/space normalisation, mojibake repair and rule-based web-boilerplate removal.

    Repeats of the title (given, or guessed from the text) are dropped after the first.
    """
    if title is None:
        title = guess_title(text.replace("\r", "\n"))
    return _Cleaner(title)(text)


# ---------------------------------------------------------------- decoding

def printable(name: str) -> str:
    """``name`` fit for a one-line message: control characters and undecodable bytes shown as escapes."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _fail(source: str, reason: str) -> IngestError:
    reason = re.sub(r"\s+", " ", reason).strip()
    return IngestError(f"cannot read {printable(source)}: {reason[:200]}")


def _decode(data: bytes, source: str, declared: str | None = None) -> str:
    """Text of ``data``: BOM, declared charset, UTF-8, cp1252, charset-normalizer, latin-1."""
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError as err:
                raise _fail(source, f"undecodable {enc} text ({err.reason})") from None
    if b"\x00" in data[:65536]:
        raise _fail(source, "binary file (NUL bytes)")
    text: str | None = None
    for enc in filter(None, (declared, "utf-8-sig", "cp1252")):
        try:
            text = data.decode(enc)
            break
        except (UnicodeDecodeError, LookupError):
            continue
    if text is None:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:1_000_000]).best()
        text = data.decode(best.encoding, errors="replace") if best else data.decode("latin-1")
    controls = sum(1 for ch in text[:100_000] if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    if controls > max(2, 0.01 * min(len(text), 100_000)):
        raise _fail(source, "binary or undecodable content")
    return text


# ---------------------------------------------------------------- formats

@dataclass
class _Extracted:
    text: str
    title: str | None = None
    pages: tuple[Page, ...] = ()


_MD_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"<!--.*?-->", re.DOTALL), ""),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE), r"\1"),
    (re.compile(r"^\s*```.*$|^\s*~~~.*$", re.MULTILINE), ""),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"^\s{0,3}>\s?", re.MULTILINE), ""),
)


def _read_text(path: Path, source: str, data: bytes) -> _Extracted:
    text = _decode(data, source)
    title = None
    if path.suffix.lower() in {".md", ".markdown"}:
        m = re.search(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
        title = m.group(1).strip() if m else None
        for pattern, repl in _MD_SUBS:
            text = pattern.sub(repl, text)
    return _Extracted(text, title)


class _HTMLText(HTMLParser):
    """Minimal HTML-to-text: block tags become line breaks; scripts, styles, nav and footers are dropped."""

    SKIP = {"script", "style", "noscript", "template", "svg", "nav", "footer", "iframe", "object", "head",
            "button", "select"}
    BLOCK = {"p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
             "section", "article", "header", "main", "aside", "blockquote", "pre", "hr", "figure", "figcaption",
             "address", "caption"}
    VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.title = ""
        self.h1 = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            if tag in ("br", "hr"):
                self.parts.append("\n")
            return
        if tag == "title" or (tag == "h1" and not self.h1):
            self._in = tag
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "table") else "\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "table") else "\n")

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "h1" and not self.skip:
            self.h1 += data
        if not self.skip:
            self.parts.append(data)

    def text(self) -> str:
        raw = "".join(self.parts)
        lines = (re.sub(r"[ \t]+", " ", ln).strip().strip("|").strip() for ln in raw.split("\n"))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _itertext(el: Any) -> str:
    parts = [el.text or ""]
    for child in el:
        parts.append("\n" if child.tag == "lb" else _itertext(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _trafilatura_text(html: str) -> str:
    """Main text from trafilatura's XML output: paragraphs/headings as blocks, lists and table rows as lines."""
    import trafilatura
    from lxml import etree

    xml = trafilatura.extract(html, favor_recall=True, include_tables=True, include_comments=False,
                              include_images=False, output_format="xml", include_formatting=False)
    if not xml:
        return ""
    root = etree.fromstring(xml.encode("utf-8"))
    main = root.find("main")
    blocks: list[str] = []
    for el in (main if main is not None else root):
        if el.tag == "list":
            items = ["- " + " ".join(_itertext(it).split()) for it in el.iter("item")]
            blocks.append("\n".join(i for i in items if i.strip() != "-"))
        elif el.tag == "table":
            rows = [" | ".join(" ".join(_itertext(c).split()) for c in row.iter("cell")) for row in el.iter("row")]
            blocks.append("\n".join(r for r in rows if r.strip(" |")))
        elif el.tag != "graphic":
            blocks.append("\n".join(" ".join(ln.split()) for ln in _itertext(el).split("\n")))
    return "\n\n".join(b for b in blocks if b.strip())


_warned: list[bool] = []


def _read_html(path: Path, source: str, data: bytes) -> _Extracted:
    m = re.search(rb"<meta[^>]+charset\s*=\s*[\"']?([\w-]+)", data[:4096], re.IGNORECASE)
    html = _decode(data, source, m.group(1).decode("ascii", "ignore") if m else None)
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception as err:  # noqa: BLE001 - html.parser is lenient; anything here means garbage
        raise _fail(source, f"not valid HTML ({err})") from None
    title = " ".join(parser.h1.split()) or " ".join(parser.title.split()) or None
    try:
        text = _trafilatura_text(html)
    except ImportError as err:
        if not _warned:
            log.warning("trafilatura unavailable (%s); using the plain HTML parser", err)
            _warned.append(True)
        text = ""
    except Exception as err:  # noqa: BLE001 - extractor failure falls back to the plain parser
        log.debug("trafilatura failed on %s: %s", source, err)
        text = ""
    if not clean_text(text, title).strip():
        text = parser.text()
    return _Extracted(text, title)


_PDF_TITLE_JUNK = re.compile(r"^(?:microsoft\s+(?:word|powerpoint)\s*-\s*)|\.(?:docx?|pdf|pptx?|odt)$", re.I)


def _read_pdf(path: Path, source: str, data: bytes) -> _Extracted:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    if b"%PDF-" not in data[:1024]:
        raise _fail(source, "not a valid PDF (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except (DependencyError, NotImplementedError) as err:
                raise _fail(source, f"encrypted PDF ({err})") from None
            if not ok:
                raise _fail(source, "encrypted PDF (password required)")
        pages = list(reader.pages)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except IngestError:
        raise
    except (PdfReadError, FileNotDecryptedError, ValueError, KeyError, TypeError, AttributeError, OSError,
            RecursionError) as err:
        raise _fail(source, f"not a valid PDF ({err})") from None
    raw_pages: list[str] = []
    for page in pages:
        try:
            raw_pages.append(page.extract_text() or "")
        except Exception as err:  # noqa: BLE001 - one unreadable page must not lose the document
            log.debug("page text failed in %s: %s", source, err)
            raw_pages.append("")
    title = " ".join(_PDF_TITLE_JUNK.sub("", str(meta_title)).split())
    if len(re.findall(r"[^\W\d_]{2,}", title)) < 2 or title.lower() in {"sans titre", "untitled document"}:
        title = guess_title("\n".join(raw_pages[:2]).replace("\r", "\n")) or ""
    cleaner = _Cleaner(title or None)
    parts: list[str] = []
    spans: list[Page] = []
    pos = 0
    for number, raw in enumerate(raw_pages, start=1):
        text = cleaner(raw)
        if not text.strip():
            continue
        if parts:
            pos += 2
        parts.append(text)
        spans.append(Page(number, pos, pos + len(text)))
        pos += len(text)
    if not parts:
        raise _fail(source, "no extractable text (scanned or image-only PDF?)")
    return _Extracted("\n\n".join(parts), title or None, tuple(spans))


def _check_docx_zip(path: Path, source: str, size: int) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise _fail(source, f"not a valid DOCX (not a zip archive: {err})") from None
    if "word/document.xml" not in names:
        raise _fail(source, "not a valid DOCX (no word/document.xml)")
    total = sum(i.file_size for i in infos)
    mb = total / 1024 / 1024
    if total > DOCX_MAX_UNCOMPRESSED:
        raise _fail(source, f"refusing DOCX that expands to {mb:.0f} MB (possible zip bomb)")
    if total > _DOCX_RATIO_FLOOR and total > DOCX_MAX_RATIO * max(size, 1):
        raise _fail(source, f"refusing DOCX with compression ratio {total / max(size, 1):.0f}x (possible zip bomb)")


def _read_docx(path: Path, source: str, data: bytes) -> _Extracted:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    _check_docx_zip(path, source, len(data))
    try:
        document = docx.Document(io.BytesIO(data))
        content = list(document.iter_inner_content())
        core_title = (document.core_properties.title or "").strip()
    except Exception as err:  # noqa: BLE001 - python-docx raises many types on corrupt packages
        raise _fail(source, f"not a valid DOCX ({type(err).__name__}: {err})") from None
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
    return _Extracted("\n\n".join(blocks), core_title or heading_title or None)


_READERS: dict[str, Callable[[Path, str, bytes], _Extracted]] = {
    ".txt": _read_text, ".md": _read_text, ".markdown": _read_text,
    ".html": _read_html, ".htm": _read_html, ".pdf": _read_pdf, ".docx": _read_docx,
}


# ---------------------------------------------------------------- public API

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
    if root.is_file():
        if root.suffix.lower() in SUPPORTED:
            yield root
        return
    base = root.resolve()
    found: list[tuple[str, Path]] = []

    def refuse(path: Path, reason: str) -> None:
        if skipped is not None:
            shown = printable(path.relative_to(root).as_posix())
            skipped.append(Skipped(shown, f"cannot read {shown}: {reason}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in dirnames:  # folder links are never followed; say so when they lead out of the corpus
            path = Path(dirpath) / name
            try:
                outside = path.is_symlink() and not path.resolve().is_relative_to(base)
            except (OSError, RuntimeError):
                outside = True
            if outside:
                refuse(path, "symbolic link to a folder outside the corpus folder")
        for name in filenames:
            if name.startswith((".", "~$")) or Path(name).suffix.lower() not in SUPPORTED:
                continue
            path = Path(dirpath) / name
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    refuse(path, "broken symbolic link")
                    continue
                if not target.is_relative_to(base):
                    refuse(path, "symbolic link to a file outside the corpus folder")
                    continue
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    for _, path in sorted(found):
        yield path


def read_document(path: Path, root: Path, max_bytes: int = MAX_BYTES) -> Document:
    """Read, clean and describe one file; raises ``IngestError`` (one line) when it cannot be used."""
    path, root = Path(path), Path(root)
    source = _source_of(path, root)
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(source, "file name is not valid UTF-8 (rename the file)") from None
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise _fail(source, f"unsupported file type {path.suffix or '(none)'}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            mb, limit = size / 1024 / 1024, max_bytes / 1024 / 1024
            raise _fail(source, f"file too large ({mb:.1f} MB > {limit:.0f} MB limit)")
        if size == 0:
            raise _fail(source, "empty file")
        data = path.read_bytes()
    except OSError as err:
        raise _fail(source, err.strerror or str(err)) from None
    extracted = reader(path, source, data)
    if extracted.pages:
        text = extracted.text
    else:
        text = clean_text(extracted.text, extracted.title)
    if not any(ch.isalnum() for ch in text):
        raise _fail(source, "no text after cleaning")
    title = extracted.title or guess_title(text) or lead_title(text) or path.stem
    title = " ".join(title.split())[:300]
    return Document(
        id=content_hash(text),
        source=source,
        title=title,
        text=text,
        lang=detect_language(text),
        metadata=extract_metadata(text, title=title),
        pages=extracted.pages,
    )


def load_corpus(
    root: Path, paths: Iterable[Path] | None = None, max_bytes: int = MAX_BYTES
) -> tuple[list[Document], list[Skipped]]:
    """Read every corpus file (or just ``paths``); bad files are logged and returned as ``Skipped``."""
    root = Path(root)
    docs: list[Document] = []
    skipped: list[Skipped] = []
    by_id: dict[str, str] = {}

    def skip(source: str, reason: str) -> None:
        reason = " ".join(reason.split())
        log.warning("%s", reason)
        skipped.append(Skipped(source, reason))

    links: list[Skipped] = []
    candidates = list(iter_corpus(root, skipped=links)) if paths is None else [Path(p) for p in paths]
    for item in links:
        skip(item.source, item.reason)
    for path in candidates:
        if paths is not None and not path.is_absolute() and not path.exists() and (root / path).exists():
            path = root / path
        source = _source_of(path, root)
        if path.suffix.lower() not in SUPPORTED:
            skip(source, f"cannot read {source}: unsupported file type {path.suffix or '(none)'}")
            continue
        if not path.is_file():
            skip(source, f"cannot read {source}: file not found")
            continue
        try:
            doc = read_document(path, root, max_bytes=max_bytes)
        except IngestError as err:
            skip(source, str(err))
            continue
        except Exception as err:  # noqa: BLE001 - one bad file must never stop ingestion
            skip(source, f"cannot read {source}: unexpected {type(err).__name__}: {err}")
            continue
        if doc.id in by_id:
            skip(source, f"skipped {source}: duplicate of {by_id[doc.id]}")
            continue
        by_id[doc.id] = doc.source
        docs.append(doc)
    return docs, skipped
