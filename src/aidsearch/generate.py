"""Generated answers: the prompt with the numbered passages, a client of any OpenAI-compatible chat server (Ollama,
vLLM, llama.cpp's server, LM Studio), and the faithfulness check every generated sentence goes through."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .chunk import passage_sentences
from .lang import detect_en_fr
from .quantities import matches, quantities

LANGUAGE_NAMES = {"en": "English", "fr": "French"}
_LANGUAGE_NAMES_FR = {"en": "anglais", "fr": "français"}
MAX_TOKENS = 512
MAX_SENTENCE = 300  # characters of one generated sentence, so that a model that repeats itself still closes its answer
# Why a generated answer is not shown, in English (the API's ``notice``) and in French.
NOTICES: dict[str, tuple[str, str]] = {
    "down": ("no model server answers at {url}", "aucun serveur de modèle ne répond à {url}"),
    "http": ("the model server answered HTTP {status}", "le serveur de modèle a répondu HTTP {status}"),
    "timeout": ("the model took more than {seconds} s", "le modèle a mis plus de {seconds} s"),
    "malformed": ("the model server sent a malformed reply", "le serveur de modèle a envoyé une réponse mal formée"),
    "format": ("the model's output was not the answer format asked for",
               "la réponse du modèle n'avait pas le format demandé"),
    "empty": ("the model gave an empty answer", "le modèle a donné une réponse vide"),
    "failed": ("{dropped} of {total} generated sentences failed the check against the sources",
               "{dropped} des {total} phrases générées n'ont pas passé la vérification contre les sources"),
    "language": ("the model answered in {got}, not in {wanted}", "le modèle a répondu en {got}, pas en {wanted}"),
    "no_answer": ("no passage answers the question", "aucun passage ne répond à la question"),
}


@dataclass(frozen=True)
class Notice:
    """Why a generated answer is not shown: a ``code`` of NOTICES and the values its text needs."""

    code: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, code: str, **params: object) -> Notice:
        return cls(code, tuple((k, str(v)) for k, v in params.items()))

    def text(self, lang: str = "en") -> str:
        """The one-line reason in ``lang`` (French for "fr", English otherwise)."""
        values = dict(self.params)
        if self.code == "language":
            names = _LANGUAGE_NAMES_FR if lang == "fr" else LANGUAGE_NAMES
            values = {k: names.get(v, v) for k, v in values.items()}
        return NOTICES[self.code][lang == "fr"].format(**values)


_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=\])\s+(?=[A-ZÀ-Ý])|\n+")
SIMILARITY = Callable[[Sequence[str], Sequence[str]], np.ndarray]  # rows of texts x cols of texts, cosine


class GenerationFailed(Exception):
    """The model gave no usable answer; ``notice`` says why (``str(err)`` in English)."""

    def __init__(self, code: str, **params: object) -> None:
        self.notice = Notice.of(code, **params)
        super().__init__(self.notice.text())


def answer_schema(passages: int) -> dict[str, Any]:
    """The JSON schema of an answer: sentences, each citing 1 to 3 of the ``passages`` numbered passages."""
    cite = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": max(1, passages)},
            "minItems": 1, "maxItems": 3}
    sentence = {"type": "object", "properties": {"text": {"type": "string", "maxLength": MAX_SENTENCE}, "cite": cite},
                "required": ["text", "cite"]}
    return {"type": "object", "properties": {"sentences": {"type": "array", "items": sentence, "minItems": 1,
                                                           "maxItems": 3}}, "required": ["sentences"]}


def build_messages(question: str, language: str, passages: Sequence[str], *, structured: bool) -> list[dict[str, str]]:
    """The chat messages asking for a short answer in ``language`` from the numbered ``passages``, with ``[n]``
    after every sentence (or as JSON sentences with their passage numbers when ``structured``)."""
    name = LANGUAGE_NAMES.get(language, "English")
    form = ('Reply in JSON: {"sentences": [{"text": "<one sentence>", "cite": [<passage number>]}]}.'
            if structured else "After every sentence, write the number of the passage it comes from in brackets, "
                               "like [1].")
    system = (f"You answer questions about development-aid projects using only the numbered passages. Write a short "
              f"answer of one to three sentences in {name}, whatever the language of the passages. {form} Copy "
              "numbers, amounts, currencies and dates exactly as the passages give them. If the passages do not "
              "answer the question, say so in one sentence.")
    numbered = "\n\n".join(f"[{i}] {' '.join(p.split())}" for i, p in enumerate(passages, 1))
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Passages:\n\n{numbered}\n\nQuestion ({name}): {question}"}]


@dataclass(frozen=True)
class Draft:
    """A sentence as the model wrote it: its ``text`` without markers and the passage numbers it cites."""

    text: str
    cites: tuple[int, ...]


def parse_text(raw: str) -> list[Draft]:
    """Sentences of a plain-text answer with the ``[n]`` / ``[n, m]`` markers that follow each."""
    out = []
    for part in _SENTENCE_END.split(raw.strip()):
        cites = tuple(int(n) for m in _MARKER.finditer(part) for n in m[1].split(","))
        text = " ".join(_MARKER.sub("", part).split())
        if text and re.search(r"[^\W_]", text):
            out.append(Draft(text, cites))
    return list(dict.fromkeys(out))


def parse_json(raw: str) -> list[Draft]:
    """Sentences of a JSON answer ``{"sentences": [{"text", "cite"}]}``; when the reply was cut off (the model hit
    its token limit), its complete sentences; GenerationFailed when there are none."""
    try:
        data = json.loads(raw)
        items = data["sentences"]
        drafts = [Draft(" ".join(_MARKER.sub("", str(s["text"])).split()),
                        tuple(int(n) for n in s.get("cite") or ())) for s in items]
    except (ValueError, KeyError, TypeError, AttributeError):
        drafts = [Draft(" ".join(_MARKER.sub("", text).split()), cites) for text, cites, done in _json_sentences(raw)
                  if done]
        if not drafts:
            raise GenerationFailed("format") from None
    return list(dict.fromkeys(d for d in drafts if d.text))


_JSON_SENTENCE = re.compile(r'"text"\s*:\s*"((?:[^"\\]|\\.)*)(")?(?:\s*,\s*"cite"\s*:\s*\[([\d,\s]*)(\])?)?')


def _json_sentences(raw: str) -> Iterator[tuple[str, tuple[int, ...], bool]]:
    """The sentences of a JSON answer, complete or not: (text so far, passage numbers, whether text and citations
    are both closed)."""
    for m in _JSON_SENTENCE.finditer(raw):
        text = m[1][:-1] if m[1].endswith("\\") and not m[1].endswith("\\\\") else m[1]
        try:
            text = json.loads(f'"{text}"')
        except ValueError:
            text = text.replace('\\"', '"')
        cites = tuple(int(n) for n in (m[3] or "").split(",") if n.strip()) if m[4] else ()
        yield text, cites, bool(m[2] and m[4] and cites)


def visible_json(raw: str) -> str:
    """What a partial JSON answer shows so far: its sentences, each followed by its markers once they are known."""
    return " ".join(" ".join(text.split()) + "".join(f" [{n}]" for n in cites)
                    for text, cites, _ in _json_sentences(raw))


# ------------------------------------------------------------------------------------------ client


@dataclass(frozen=True)
class ChatServer:
    """An OpenAI-compatible chat server: ``url`` is its base URL (``http://localhost:11434/v1``), ``model`` the
    model name it serves, ``api_key`` sent as a bearer token when set, ``timeout`` in seconds bounds each call."""

    url: str
    model: str
    api_key: str = field(default="", repr=False)
    timeout: float = 60.0

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _endpoint(self, path: str) -> str:
        return self.url.rstrip("/") + path

    def reachable(self) -> tuple[bool, str]:
        """Whether the server answers ``GET /models``, and a one-line detail (the models served, or why not)."""
        import httpx

        try:
            resp = httpx.get(self._endpoint("/models"), headers=self._headers(), timeout=min(self.timeout, 5.0))
            resp.raise_for_status()
            names = [str(m.get("id")) for m in resp.json().get("data") or []]
        except httpx.HTTPStatusError as exc:
            return False, f"the model server answered HTTP {exc.response.status_code}"
        except (httpx.HTTPError, ValueError, AttributeError):
            return False, f"no model server answers at {self.url}"
        return True, f"{len(names)} model(s) served"

    def stream(self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None,
               max_tokens: int = MAX_TOKENS) -> Iterator[str]:
        """The pieces of the reply as they come, at temperature 0; GenerationFailed (one line) when the server is
        down, answers an HTTP error, stops sending or takes longer than ``timeout`` in all."""
        import httpx

        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": max_tokens,
                                "stream": True}
        if schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "strict": True, "schema": schema}}
        deadline = time.monotonic() + self.timeout
        try:
            with httpx.stream("POST", self._endpoint("/chat/completions"), json=body, headers=self._headers(),
                              timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise GenerationFailed("http", status=resp.status_code)
                for line in resp.iter_lines():
                    if time.monotonic() > deadline:
                        raise GenerationFailed("timeout", seconds=f"{self.timeout:g}")
                    piece = _sse_piece(line)
                    if piece is None:
                        break
                    if piece:
                        yield piece
        except httpx.TimeoutException:
            raise GenerationFailed("timeout", seconds=f"{self.timeout:g}") from None
        except httpx.HTTPError:
            raise GenerationFailed("down", url=self.url) from None


def _sse_piece(line: str) -> str | None:
    """The text of one server-sent event line ("" for none), None at ``data: [DONE]``."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        choice = (json.loads(data).get("choices") or [{}])[0]
        return str((choice.get("delta") or {}).get("content") or "")
    except (ValueError, AttributeError, IndexError):
        raise GenerationFailed("malformed") from None


# ------------------------------------------------------------------------------------------ check


@dataclass(frozen=True)
class Checked:
    """A generated sentence after the check: ``status`` "kept" (its citations hold), "recited" (cited to the passage
    that supports it instead) or "dropped"; ``cites`` the passage numbers it keeps; ``reason`` why it changed;
    ``similarity`` to its best cited sentence and ``support`` that sentence's (passage, start, end)."""

    text: str
    cited: tuple[int, ...]
    status: str
    cites: tuple[int, ...] = ()
    reason: str = ""
    similarity: float = 0.0
    support: tuple[int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "status": self.status, "cited_by_model": list(self.cited),
                "citations": list(self.cites), "reason": self.reason, "similarity": round(self.similarity, 4)}


def _numbers_missing(text: str, passages: Sequence[str], cites: Sequence[int]) -> list[str]:
    """The numbers of ``text`` found in none of the passages numbered ``cites``."""
    found = [(quantities(passages[n - 1]), passages[n - 1]) for n in cites]
    return [q.text for q in quantities(text) if not any(matches(q, f, p) for f, p in found)]


def check(drafts: Sequence[Draft], passages: Sequence[str], similarity: SIMILARITY, threshold: float) -> list[Checked]:
    """Check each sentence of ``drafts`` against the numbered ``passages`` (1-based): its markers must point to
    passages that exist; every number, year, date and amount in it must be in a cited passage (normalised, same
    currency or unit); it must be at least ``threshold`` similar (``similarity``, across languages) to a sentence of
    a cited passage. A sentence that fails, or has no marker, is cited to the passage that passes both tests best,
    or dropped."""
    units = [(n, s) for n, p in enumerate(passages, 1) for s in passage_sentences(p)]
    sims = similarity([d.text for d in drafts], [s.text for _, s in units]) if drafts and units \
        else np.zeros((len(drafts), 0))
    out = []
    for row, draft in zip(sims, drafts):
        best: dict[int, tuple[float, int]] = {}
        for col, (n, _) in enumerate(units):
            if n not in best or row[col] > best[n][0]:
                best[n] = (float(row[col]), col)
        valid = tuple(dict.fromkeys(n for n in draft.cites if 1 <= n <= len(passages)))
        reason = ""
        if len(valid) < len(draft.cites):
            bad = ", ".join(f"[{n}]" for n in draft.cites if n not in valid)
            reason = f"cites {bad}, which does not exist"
        elif not draft.cites:
            reason = "no citation"
        if valid:
            missing = _numbers_missing(draft.text, passages, valid)
            sim = max(best.get(n, (-1.0, -1))[0] for n in valid)
            if not missing and sim >= threshold and not reason:
                n = max(valid, key=lambda k: best.get(k, (-1.0, -1))[0])
                out.append(Checked(draft.text, draft.cites, "kept", valid, "", sim, _support(units, best, n)))
                continue
            reason = reason or (f"{', '.join(missing)} not in the cited passage" if missing
                                else f"too far from the cited passage ({sim:.2f} < {threshold:.2f})")
        candidates = sorted(best, key=lambda k: -best[k][0])
        for n in candidates:
            if best[n][0] >= threshold and not _numbers_missing(draft.text, passages, [n]):
                out.append(Checked(draft.text, draft.cites, "recited", (n,), reason, best[n][0],
                                   _support(units, best, n)))
                break
        else:
            top = best[candidates[0]][0] if candidates else 0.0
            out.append(Checked(draft.text, draft.cites, "dropped", (), reason, top))
    return out


def _support(units: Sequence[tuple[int, Any]], best: dict[int, tuple[float, int]], n: int) -> tuple[int, int, int]:
    s = units[best[n][1]][1]
    return (n, s.start, s.end)


@dataclass(frozen=True)
class Verdict:
    """The checked sentences and whether enough survived: ``notice`` is the reason when not."""

    sentences: tuple[Checked, ...]
    notice: Notice | None = None

    @property
    def ok(self) -> bool:
        return self.notice is None


def status(server: ChatServer | None) -> dict[str, Any]:
    """Whether generation is configured and its server reachable, for ``model info`` and ``/api/health`` (the key is
    never part of it)."""
    if server is None:
        return {"configured": False, "reachable": False, "detail": "no model server set (llm_url)"}
    ok, detail = server.reachable()
    return {"configured": True, "reachable": ok, "url": server.url, "model": server.model or "default",
            "detail": detail}


def judge(checked: Sequence[Checked], question_lang: str) -> Verdict:
    """Whether the checked answer can be shown: at least one sentence left and no more dropped than kept, written in
    the question's language."""
    left = [c for c in checked if c.status != "dropped"]
    if not checked:
        return Verdict((), Notice.of("empty"))
    if not left or len(left) * 2 < len(checked):
        return Verdict(tuple(checked), Notice.of("failed", dropped=len(checked) - len(left), total=len(checked)))
    text = " ".join(c.text for c in left)
    lang = detect_en_fr(text)
    if len(text.split()) >= 4 and lang != question_lang:
        return Verdict(tuple(checked), Notice.of("language", got=lang, wanted=question_lang))
    return Verdict(tuple(checked))


def explain(notice: Notice | None, lang: str) -> dict[str, str]:
    """The ``generation`` fields that say why the answer is quoted: ``notice`` in English, ``notice_text`` in the
    question's language ``lang``, ``notice_code``; empty strings when nothing failed."""
    if notice is None:
        return {"notice": "", "notice_text": "", "notice_code": ""}
    return {"notice": notice.text(), "notice_text": notice.text(lang), "notice_code": notice.code}
