"""Conversations: whether a question continues the previous one, the retrieval query it stands for, its language,
and the conversations the HTTP API keeps in memory by id."""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from .errors import QueryError
from .lang import detect_en_fr
from .lexicon import FOLLOWUP_OPENING, NOT_SUBJECT, WORD

MAX_CONVERSATIONS = 1000
IDLE_SECONDS = 3600.0
FOLLOWUP_LABEL = {"en": "Follow-up on", "fr": "Suite de"}  # shown before the subject a follow-up adds
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_followup(question: str) -> bool:
    """A short question, or one opening with and/et/what about…, continues the previous one."""
    return bool(FOLLOWUP_OPENING.match(question)) or len(WORD.findall(question)) <= 3


def subject_terms(question: str) -> str:
    """The content words of a question (its subject), without question and measure words."""
    words = [w for w in WORD.findall(question) if w.lower().strip("'’") not in NOT_SUBJECT]
    return " ".join(dict.fromkeys(words))


def resolve_followup(question: str, subject: str | None) -> str:
    """The retrieval query: ``question`` plus the previous subject when it reads as a follow-up."""
    if subject and is_followup(question):
        return f"{question} {subject}"
    return question


def question_language(question: str) -> str:
    """The language of ``question``; a short follow-up ("et au Laos ?", "and Kosovo?") by its opening word."""
    m = FOLLOWUP_OPENING.match(question)
    if m and len(WORD.findall(question)) <= 4:
        return "fr" if m.group("fr") else "en"
    return detect_en_fr(question)


@dataclass(frozen=True)
class Turn:
    """One question of a conversation: the ``query`` to retrieve with, the question's ``language``, the previous
    subject the query adds (``followup_of``, None for a question on its own) and the conversation after it."""

    question: str
    query: str
    language: str
    followup_of: str | None
    after: Conversation


@dataclass(frozen=True)
class Conversation:
    """The subject of the questions so far (None before the first one)."""

    subject: str | None = None

    def turn(self, question: str) -> Turn:
        """The next ``question`` read in this conversation; keep ``Turn.after`` once it is answered."""
        query = resolve_followup(question, self.subject)
        followup_of = self.subject if query != question else None
        subject = followup_of or subject_terms(question) or self.subject
        return Turn(question, query, question_language(question), followup_of, Conversation(subject))


def check_conversation_id(value: str) -> str:
    """``value`` when it is a valid conversation id, else a one-line ``QueryError``."""
    if not _CONVERSATION_ID.fullmatch(value):
        raise QueryError("conversation_id must be 1 to 64 letters, digits, '-' or '_'")
    return value


class Conversations:
    """Conversations by id, in memory: at most ``limit`` (the least recently used dropped first), each forgotten
    after ``idle`` seconds without a question; safe to share between threads."""

    def __init__(self, limit: int = MAX_CONVERSATIONS, idle: float = IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.idle, self.clock = limit, idle, clock
        self._items: OrderedDict[str, tuple[float, Conversation]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._items)

    def _expire(self, now: float) -> None:
        while self._items:
            key, (seen, _) = next(iter(self._items.items()))
            if now - seen <= self.idle:
                break
            del self._items[key]

    def get(self, conversation_id: str) -> Conversation:
        """The conversation named ``conversation_id`` (1 to 64 letters, digits, ``-`` or ``_``, chosen by the
        client), now the most recently used; a new one when unknown or expired. Raises QueryError on a bad id."""
        check_conversation_id(conversation_id)
        with self._lock:
            now = self.clock()
            self._expire(now)
            item = self._items.pop(conversation_id, None)
            if item is None:
                return Conversation()
            self._items[conversation_id] = (now, item[1])
            return item[1]

    def put(self, conversation_id: str, conversation: Conversation) -> None:
        """Keep ``conversation`` (the conversation after its last answered question) under ``conversation_id`` (a
        valid id, see ``get``) as the most recently used one, dropping the least recently used past the limit."""
        check_conversation_id(conversation_id)
        with self._lock:
            now = self.clock()
            self._expire(now)
            self._items.pop(conversation_id, None)
            self._items[conversation_id] = (now, conversation)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
