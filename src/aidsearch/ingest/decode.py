"""Bytes to text: byte-order marks, declared and guessed encodings, binary files refused, mojibake repaired."""
from __future__ import annotations

import codecs
import re
import unicodedata

from ..errors import IngestError


def printable(name: str) -> str:
    """``name`` fit for a one-line message: control characters and undecodable bytes shown as escapes."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


def unreadable(source: str, reason: str) -> IngestError:
    """The one-line error for a file that cannot be used."""
    reason = re.sub(r"\s+", " ", reason).strip()
    return IngestError(f"cannot read {printable(source)}: {reason[:200]}")


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


# Typographic marks (U+2013, 2014, 2018, 2019, 201C, 201D) whose high byte an export dropped: "Egypt\x19s" is "Egypt’s"
_STRIPPED_PUNCTUATION = str.maketrans({"\x13": "\u2013", "\x14": "\u2014", "\x18": "\u2018", "\x19": "\u2019",
                                       "\x1c": "\u201c", "\x1d": "\u201d"})


def decode(data: bytes, source: str, declared: str | None = None) -> str:
    """Text of ``data``: BOM, declared charset, UTF-8, cp1252, charset-normalizer, latin-1; typographic marks that lost
    their high byte restored."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError as err:
                raise unreadable(source, f"undecodable {enc} text ({err.reason})") from None
    if b"\x00" in data[:65536]:
        raise unreadable(source, "binary file (NUL bytes)")
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
    text = text.translate(_STRIPPED_PUNCTUATION)
    controls = sum(1 for ch in text[:100_000] if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    if controls > max(2, 0.01 * min(len(text), 100_000)):
        raise unreadable(source, "binary or undecodable content")
    return text


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
