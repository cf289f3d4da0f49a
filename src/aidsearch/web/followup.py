"""Follow-up questions: whether a question continues the previous one, its subject, and its language."""
from __future__ import annotations

import re

from ..lang import detect_en_fr

_FOLLOWUP = re.compile(
    r"^\s*(?:(?P<fr>et|qu['’]en est-il|quid|pareil|idem)|(?P<en>and|what about|how about|same for|also))\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)
_NOT_SUBJECT = frozenset("""
a an the of in on at for to from by with and or is are was were be been does do did has have had what which who whom
whose when where why how long many much its their this that these those there it about any all last lasts take takes
total cost costs budget budgets duration amount funding funded fund contribution contribute contributes start starts
started end ends ended period date dates year years month months number give gave receive received
le la les l de du des d un une et ou en au aux à est sont était par pour sur dans avec quel quelle quels quelles qui
que qu quoi quand où comment combien son sa ses leur leurs ce cet cette ces y il elle se s totale coût montant durée
financement finance financé période année années mois début fin
""".split())


def is_followup(question: str) -> bool:
    """A short question, or one opening with and/et/what about…, continues the previous one."""
    return bool(_FOLLOWUP.match(question)) or len(_WORD.findall(question)) <= 3


def subject_terms(question: str) -> str:
    """The content words of a question (its subject), without question and measure words."""
    words = [w for w in _WORD.findall(question) if w.lower().strip("'’") not in _NOT_SUBJECT]
    return " ".join(dict.fromkeys(words))


def resolve_followup(question: str, subject: str | None) -> str:
    """The retrieval query: ``question`` plus the previous subject when it reads as a follow-up."""
    if subject and is_followup(question):
        return f"{question} {subject}"
    return question


def question_language(question: str) -> str:
    """The language of ``question``; a short follow-up ("et au Laos ?", "and Kosovo?") by its opening word."""
    m = _FOLLOWUP.match(question)
    if m and len(_WORD.findall(question)) <= 4:
        return "fr" if m.group("fr") else "en"
    return detect_en_fr(question)
