"""Language identification tuned for short English/French questions.

langdetect alone is unreliable on a handful of words ("objectifs du projet" comes out
Croatian), so for short texts its English/French probabilities are combined with
stop-word, vocabulary, elision and accent cues.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any

from .lexicon import EN_CUES, FR_CUES

__all__ = ["detect_language", "detect_en_fr", "language_scores"]

_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_FR_ACCENTS = re.compile(r"[éèêëàâçîïôûùœæ]", re.IGNORECASE)
_FR_ELISION = re.compile(r"\b(?:l|d|qu|n|j|c|s|m|t|jusqu|lorsqu|puisqu)['’][^\W\d_]", re.IGNORECASE)
_EN_CONTRACTION = re.compile(r"[^\W\d_](?:['’](?:s|t|re|ve|ll|d|m))\b", re.IGNORECASE)
_FR_SPACED_PUNCT = re.compile(r"\w[ \u00a0\u202f][?!:;]")

_LONG_TEXT_WORDS = 20
_factory: Any = None
_lock = threading.Lock()


def _get_factory() -> Any:
    """Load the langdetect profiles once (thread-safe); detection stays deterministic."""
    global _factory
    if _factory is None:
        with _lock:
            if _factory is None:
                from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

                DetectorFactory.seed = 0
                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.set_seed(0)
                _factory = factory
    return _factory


def _langdetect_probs(text: str) -> dict[str, float]:
    """langdetect probabilities from a fresh detector; empty when it finds no features."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _get_factory().create()
    detector.append(text[:10000])
    try:
        return {item.lang: float(item.prob) for item in detector.get_probabilities()}
    except LangDetectException:
        return {}


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD_RE.findall(text)]


def _cues(text: str, words: list[str]) -> tuple[float, float]:
    """English and French cue scores from vocabulary, elisions, contractions and accents."""
    en = float(sum(1 for w in words if w in EN_CUES))
    fr = float(sum(1 for w in words if w in FR_CUES))
    for w in words:
        head, _, tail = w.partition("'")
        if tail and head in {"l", "d", "qu", "n", "j", "c", "s", "m", "t", "jusqu", "lorsqu", "puisqu"}:
            fr += 1.0 + (1.0 if tail in FR_CUES else 0.0)
    fr += 0.0 if _FR_ELISION.search(text) is None else 0.5
    en += 0.5 * len(_EN_CONTRACTION.findall(text))
    if _FR_ACCENTS.search(text):
        fr += 1.0
    if _FR_SPACED_PUNCT.search(text):
        fr += 0.5
    return en, fr


def language_scores(text: str) -> dict[str, float]:
    """English and French scores (cues plus langdetect probability) used by the detectors."""
    words = _words(text)
    probs = _langdetect_probs(text) if words else {}
    en, fr = _cues(text, words)
    return {"en": en + probs.get("en", 0.0), "fr": fr + probs.get("fr", 0.0)}


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``: "en", "fr", another code, or "und" when it has no letters."""
    if not any(ch.isalpha() for ch in text):
        return "und"
    words = _words(text)
    probs = _langdetect_probs(text)
    top, top_p = max(probs.items(), key=lambda kv: kv[1]) if probs else ("und", 0.0)
    if len(words) >= _LONG_TEXT_WORDS and top != "und":
        if top in ("en", "fr") or top_p >= 0.5:
            return top
    en, fr = _cues(text, words)
    if top not in ("en", "fr", "und") and top_p >= 0.9 and len(words) >= 4 and max(en, fr) <= 1.0:
        return top
    en += probs.get("en", 0.0)
    fr += probs.get("fr", 0.0)
    return "fr" if fr > en else "en"


@lru_cache(maxsize=1024)
def detect_en_fr(text: str) -> str:
    """"en" or "fr" for choosing the interface/answer language; undecided texts give "en" (remembered: a question
    is looked up more than once)."""
    lang = detect_language(text)
    if lang in ("en", "fr"):
        return lang
    if lang == "und":
        return "en"
    scores = language_scores(text)
    return "fr" if scores["fr"] > scores["en"] else "en"
