"""Web pages: the main text by trafilatura, or by a plain parser that drops scripts, navigation and footers."""
from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .clean import clean_text
from .decode import decode, unreadable
from .extracted import Extracted

log = logging.getLogger("aidsearch")


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


def read(path: Path, source: str, data: bytes) -> Extracted:
    """Main text of a web page (trafilatura, else the plain parser); the title is its first h1 or <title>."""
    m = re.search(rb"<meta[^>]+charset\s*=\s*[\"']?([\w-]+)", data[:4096], re.IGNORECASE)
    html = decode(data, source, m.group(1).decode("ascii", "ignore") if m else None)
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception as err:  # noqa: BLE001 - html.parser is lenient; anything here means garbage
        raise unreadable(source, f"not valid HTML ({err})") from None
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
    return Extracted(text, title)
