"""Web-page junk told apart from content, line by line: navigation, login, cookie and JavaScript notices, lone
URLs, separators and logo captions."""
from __future__ import annotations

import re

from ..lexicon import BULLET, COOKIE_NOTICE, NAVIGATION, NAVIGATION_PHRASES, SCRIPT_NOTICE

_LONGEST_PHRASE = max(len(p.split()) for p in NAVIGATION_PHRASES)
_URL_LINE = re.compile(r"(?:https?://|www\.)\S+|mailto:\S+|/|#")
_LOGO_LINE = re.compile(
    r"(?:[\w&'’.-]+\s+){0,3}logo|logo(?:\s+[\w&'’.-]+){0,3}|\S+\.(?:png|jpe?g|gif|svg|webp)", re.IGNORECASE
)


def bare(line: str) -> str:
    """``line`` without its bullet and outer spaces."""
    return BULLET.sub("", line).strip()


def is_boilerplate(line: str) -> bool:
    """True for a web-navigation/login/cookie/JavaScript line, a lone URL, separator or logo text."""
    if not any(ch.isalnum() for ch in line):
        return bool(line.strip())
    text = bare(line)
    words = text.split()
    if _URL_LINE.fullmatch(text) or (len(words) <= 4 and _LOGO_LINE.fullmatch(text)):
        return True
    if len(words) <= 8 and NAVIGATION.search(text):
        return True
    if len(words) <= 80 and (SCRIPT_NOTICE.search(text) or COOKIE_NOTICE.search(text)):
        return True
    if len(words) <= 12 and len(re.findall(r"›|\s>\s" + ("" if "«" in text else r"|\s»\s"), text)) >= 2:
        return True
    return _only_navigation(re.findall(r"[\w'-]+", text.lower()))


def _only_navigation(tokens: list[str]) -> bool:
    """True when ``tokens`` (at most 6) are entirely covered by navigation phrases ("read more", "home", ...)."""
    if not tokens or len(tokens) > 6:
        return False
    i = 0
    while i < len(tokens):
        for n in range(min(_LONGEST_PHRASE, len(tokens) - i), 0, -1):
            if " ".join(tokens[i:i + n]) in NAVIGATION_PHRASES:
                i += n
                break
        else:
            return False
    return True
