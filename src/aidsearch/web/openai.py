"""aidsearch as a model for other chat front ends (Open WebUI, LibreChat, any OpenAI client): ``GET /v1/models`` and
``POST /v1/chat/completions`` (streaming or not), and the streaming variant of the answer API, ``/api/ask/stream``."""
from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from typing import Any, Iterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..types import MESSAGES
from ..api import Aidsearch
from ..query import check_question
from ..conversation import Conversation
from ..errors import AidsearchError, QueryError
from ..types import Answer
from .routes import AskRequest

MODEL_ID = "aidsearch"
_SSE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ChatMessage(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    messages: list[ChatMessage] = Field(description="The conversation; the last user message is answered.")
    model: str | None = None
    stream: bool = False


def _text(message: ChatMessage) -> str:
    """The text of a message whose content is a string or a list of parts."""
    if isinstance(message.content, list):
        return " ".join(str(p.get("text") or "") for p in message.content if p.get("type") == "text")
    return message.content or ""


def render_markdown(answer: Answer) -> str:
    """The answer as chat text: the answer with its ``[n]`` markers, the notice when the model's answer was not
    shown, the numbered sources, and who wrote it."""
    gen = answer.generation or {}
    say = MESSAGES.get(answer.language, MESSAGES["en"])
    lines = [answer.text or say["none"]]
    if gen.get("notice") and gen.get("status") != "skipped":
        lines.append(f"_({gen.get('notice_text') or gen['notice']}: {say['quoting_instead']})_")
    if answer.citations:
        lines.append(f"\n{say['sources']}:")
        lines += [c.label() for c in answer.citations]
    if answer.mode == "generative":
        lines.append(f"\n_{say['written_by'].format(model=gen.get('model'))}_")
    return "\n".join(lines)


def _chunk(cid: str, created: int, delta: dict[str, Any], finish: str | None = None) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def add_openai_routes(api: FastAPI, engine: Aidsearch) -> None:
    """``/v1/models``, ``/v1/chat/completions`` and ``/api/ask/stream`` (before Gradio is mounted)."""

    @api.get("/v1/models", tags=["openai"], summary="The one model aidsearch serves (OpenAI-compatible)")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                            "owned_by": "aidsearch"}]}

    @api.post("/v1/chat/completions", tags=["openai"], response_model=None,
              summary="Answer the last user message with cited sources (OpenAI-compatible, streaming or not)")
    def chat_completions(body: ChatRequest) -> Any:
        conversation = Conversation()
        query = ""
        for message in body.messages:
            if message.role == "user" and _text(message).strip():
                turn = conversation.turn(check_question(_text(message)))
                conversation, query = turn.after, turn.query
        if not query:
            raise QueryError("the conversation has no user message to answer")
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not body.stream:
            content = render_markdown(engine.ask(query))
            return {"id": cid, "object": "chat.completion", "created": created, "model": MODEL_ID,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

        def events() -> Iterator[str]:
            yield _chunk(cid, created, {"role": "assistant", "content": ""})
            try:
                content = render_markdown(engine.ask(query))
            except AidsearchError as exc:
                content = f"error: {exc}"
            for piece in re.findall(r"\S*\s*", content):  # the checked answer, word by word
                if piece:
                    yield _chunk(cid, created, {"content": piece})
            yield _chunk(cid, created, {}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE)

    @api.post("/api/ask/stream", tags=["api"], response_model=None,
              summary="Answer a question, streaming the generated text, then the checked answer (server-sent events)")
    def ask_stream(body: AskRequest) -> StreamingResponse:
        stream = engine.ask_stream(body.question, k=body.k, filters=body.filters, answer_mode=body.mode)
        first = next(stream)  # bad input raises here, before the response starts: a JSON error with its status

        def events() -> Iterator[str]:
            shown = ""
            for part in itertools.chain([first], stream):
                if isinstance(part, Answer):
                    event: dict[str, Any] = {"type": "answer", "answer": part.to_dict()}
                elif part.startswith(shown):
                    event = {"type": "delta", "text": part[len(shown):]}
                else:  # the partial text was rewritten: send it whole
                    event = {"type": "replace", "text": part}
                shown = part if isinstance(part, str) else shown
                yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE)
