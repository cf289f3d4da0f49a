"""Language identification tuned for short English/French questions.

langdetect alone is unreliable on a handful of words ("objectifs du projet" comes out
Croatian), so for short texts its English/French probabilities are combined with
stop-word, vocabulary, elision and accent cues.
"""
from __future__ import annotations

import re
import threading
from typing import Any

__all__ = ["detect_language", "detect_en_fr", "language_scores"]

_EN_WORDS = frozenset(
    """
    the an of and or to in for with by from at as into about is are was were be been being
    will would can could should shall may might must has have had do does did done not no
    what who whom whose which when where why how much many any some all there this that these those
    it its they their them he she his her we our you your i my
    project projects programme program objective objectives goal goals country countries
    fund funds funded funding funder funders donor donors finances financed financing
    health education water sanitation agriculture governance insurance hospital hospitals
    duration period start starts started end ends ended date dates status closed active
    partner partners agency agencies ministry government support sector results outcome outcomes
    activities beneficiaries women children people total amount cost costs spent year years month months
    list show find give tell describe summary summarize main key who's what's which
    """.split()
) - {"total"}

_FR_WORDS = frozenset(
    """
    le la les un une des du de d l et ou où est sont était étaient sera seront été être
    qu que qui quoi quel quelle quels quelles combien comment pourquoi quand
    pour par avec dans sur sous au aux ce cet cette ces il elle ils elles y son sa ses leur leurs
    nous vous notre votre mon ma mes je ne pas se
    projet projets programme objectif objectifs pays financement financé financée financés bailleur
    bailleurs santé éducation eau assainissement agriculture gouvernance assurance maladie hôpital
    hôpitaux durée période début fin date dates statut clôturé clôturés actif actifs partenaire
    partenaires agence agences ministère gouvernement appui soutien secteur résultats activités
    bénéficiaires femmes enfants montant coût coûts année années mois ans
    liste listez montre montrez trouve trouvez donne donnez décris décrivez résumé résume termine
    commence
    """.split()
) - {"programme", "date", "dates", "agriculture"}

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
    en = float(sum(1 for w in words if w in _EN_WORDS))
    fr = float(sum(1 for w in words if w in _FR_WORDS))
    for w in words:
        head, _, tail = w.partition("'")
        if tail and head in {"l", "d", "qu", "n", "j", "c", "s", "m", "t", "jusqu", "lorsqu", "puisqu"}:
            fr += 1.0 + (1.0 if tail in _FR_WORDS else 0.0)
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


def detect_en_fr(text: str) -> str:
    """"en" or "fr" for choosing the interface/answer language; undecided texts give "en"."""
    lang = detect_language(text)
    if lang in ("en", "fr"):
        return lang
    if lang == "und":
        return "en"
    scores = language_scores(text)
    return "fr" if scores["fr"] > scores["en"] else "en"
