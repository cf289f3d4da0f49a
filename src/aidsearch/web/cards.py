"""HTML of the chat messages: answers with their numbered source cards, errors and index statistics.

Every piece of document or user text goes through ``esc`` (``html.escape``) before it is placed in markup.
"""
from __future__ import annotations

import html
import re
from typing import Any, Callable, Mapping, Sequence

from ..types import Answer, Document
from .strings import language_name, t

CONTEXT_CHARS = 600
EXCERPT_CHARS = 180


def esc(text: Any) -> str:
    """Escaped text with newlines as ``<br>`` so a message stays one markdown HTML block."""
    out = html.escape(str(text), quote=True).replace("\r", "")
    out = re.sub(r"\n[ \t]*\n\s*", '<span class="as-gap"></span>', out)
    return out.replace("\n", "<br>")


def _marked(text: str, spans: Sequence[Sequence[int]], offset: int = 0) -> str:
    """``text`` escaped, with the char ``spans`` (shifted by ``offset``) wrapped in ``<mark>``."""
    out, pos = [], 0
    for s, e in sorted((max(0, s - offset), min(len(text), e - offset)) for s, e in spans):
        if e <= pos or s >= len(text):
            continue
        s = max(s, pos)
        out += [esc(text[pos:s]), "<mark>", esc(text[s:e]), "</mark>"]
        pos = e
    out.append(esc(text[pos:]))
    return "".join(out)


def _excerpt(text: str, spans: Sequence[Sequence[int]], pad: int = EXCERPT_CHARS) -> str:
    """The part of a passage around its highlighted sentences (the whole passage is in the context view)."""
    first = min((int(s) for s, _ in spans), default=0)
    last = max((int(e) for _, e in spans), default=min(len(text), pad))
    lo, hi = max(0, first - pad), min(len(text), last + pad)
    if lo > 0:  # start and stop at a line break, else at a word boundary
        cut = text.find("\n", lo, first)
        cut = cut if cut >= 0 else text.find(" ", lo, first)
        lo = cut + 1 if cut >= 0 else lo
    if hi < len(text):
        cut = text.rfind("\n", last, hi)
        cut = cut if cut >= 0 else text.rfind(" ", last, hi)
        hi = cut if cut > 0 else hi
    return ("…" if lo else "") + _marked(text[lo:hi], spans, lo) + ("…" if hi < len(text) else "")


def format_filters(filters: Mapping[str, Sequence[str]]) -> str:
    """Filters as ``key=a|b, key2=c`` for the answer header."""
    return ", ".join(f"{k}={'|'.join(map(str, v))}" for k, v in filters.items() if v)


def _context_html(doc: Document | None, cit: Mapping[str, Any]) -> str:
    """The cited passage highlighted within the document text around it."""
    if doc is None:
        return ""
    start, end = int(cit["start"]), int(cit["end"])
    lo, hi = max(0, start - CONTEXT_CHARS), min(len(doc.text), end + CONTEXT_CHARS)
    spans = [(start + s, start + e) for s, e in cit["highlights"]]
    before = ("…" if lo else "") + doc.text[lo:start]
    after = doc.text[end:hi] + ("…" if hi < len(doc.text) else "")
    return (f'<div class="as-context">{esc(before)}<span class="as-context-passage">'
            f'{_marked(doc.text[start:end], spans, start)}</span>{esc(after)}</div>')


_CHIPS = {"country": "country", "lang": "language", "page": "page", "score": "score"}  # chip → UI label key


def _token(value: Any) -> str:
    """A value reduced to a safe CSS class suffix."""
    return re.sub(r"[^a-z0-9-]", "", str(value).lower()) or "x"


def render_card(cit: Mapping[str, Any], doc: Document | None, lang: str) -> str:
    """One numbered source: title, facts, highlighted passage; expands to the surrounding text and links."""
    doc_id = html.escape(str(cit["doc_id"]), quote=True)
    facts = {"country": cit.get("country"), "lang": language_name(lang, cit["lang"]), "page": cit.get("page"),
             "score": f"{float(cit.get('similarity', cit['score'])):.2f}"}
    chips = "".join(f'<span class="as-chip as-chip-{key}"><span class="as-chip-k">{esc(t(lang, _CHIPS[key]))}</span> '
                    f'<span class="as-chip-v">{esc(v)}</span></span>'
                    for key, v in facts.items() if v not in (None, ""))
    return (
        f'<details class="as-card as-lang-{_token(cit["lang"])}">'
        f'<summary><div class="as-card-head"><span class="as-n">[{int(cit["n"])}]</span>'
        f'<span class="as-title">{esc(cit["title"])}</span></div>'
        f'<div class="as-chips">{chips}<span class="as-source">{esc(cit["source"])}</span></div>'
        f'<div class="as-passage">{_excerpt(cit["text"], cit["highlights"])}</div>'
        f'<div class="as-expand">{esc(t(lang, "in_context"))}</div></summary>'
        f'{_context_html(doc, cit)}'
        f'<div class="as-links"><a class="as-doc-link" href="/documents/{doc_id}" target="_blank" rel="noopener">'
        f'{esc(t(lang, "open"))}</a><a class="as-doc-text" href="/documents/{doc_id}/text" target="_blank" '
        f'rel="noopener">{esc(t(lang, "open_text"))}</a></div></details>'
    )


def render_answer(answer: Answer, lang: str, documents: Callable[[str], Document | None],
                  subject: str | None = None) -> str:
    """The assistant message: header (filters, follow-up), answer with ``[n]`` markers, source cards."""
    data = answer.to_dict()
    header = []
    if data["filters"]:
        shown = f'{t(lang, "filters_header")}: {format_filters(data["filters"])}'
        header.append(f'<span class="as-filters">{esc(shown)}</span>')
    if subject:
        header.append(f'<span class="as-followup">{esc(t(lang, "followup"))}: {esc(subject)}</span>')
    head = f'<div class="as-header">{"".join(header)}</div>' if header else ""
    if not data["found"]:
        return (f'<div class="as-answer as-none as-lang-{lang}">{head}<p class="as-text">{esc(t(lang, "none"))}</p>'
                f'<p class="as-hint">{esc(t(lang, "hint_none"))}</p></div>')
    marked = _marked(data["answer"], [(h["start"], h["end"]) for h in data["highlights"]])
    text = re.sub(r"\[(\d+)\]", r'<span class="as-ref">[\1]</span>', marked.replace("<mark>", '<mark class="as-span">'))
    cards = "".join(render_card(c, documents(c["doc_id"]), lang) for c in data["citations"])
    gen = answer.generation or {}
    notes = ""
    if answer.mode == "generative":
        notes = f'<p class="as-written">{esc(t(lang, "written_by").format(model=gen.get("model")))}</p>'
        if answer.extractive is not None:
            notes += (f'<details class="as-quoted"><summary>{esc(t(lang, "show_quotes"))}</summary>'
                      f'{render_answer(answer.extractive, lang, documents)}</details>')
    elif gen.get("notice") and gen.get("status") != "skipped":
        notes = (f'<p class="as-notice">{esc(gen.get("notice_text") or gen["notice"])}: '
                 f'{esc(t(lang, "quoting_instead"))}</p>')
    return (f'<div class="as-answer as-lang-{lang}">{head}<p class="as-text">{text}</p>{notes}'
            f'<div class="as-sources"><div class="as-sources-title">{esc(t(lang, "sources"))}</div>{cards}</div></div>')


def render_writing(text: str, lang: str) -> str:
    """The answer as the model writes it, before the check."""
    return (f'<div class="as-writing as-lang-{lang}"><p class="as-pending">{esc(t(lang, "writing"))}</p>'
            f'<p class="as-text">{esc(text)}</p></div>')


def render_error(message: str, lang: str) -> str:
    """The chat message saying a question could not be answered, and why."""
    text = esc(f'{t(lang, "error")}: {message}')
    return f'<div class="as-answer as-error as-lang-{lang}"><p class="as-text">{text}</p></div>'


def render_stats(stats: Mapping[str, Any], lang: str) -> str:
    """The index status panel: documents, passages, languages, last update, model."""
    langs = ", ".join(f"{language_name(lang, k)} {v}" for k, v in sorted((stats.get("languages") or {}).items()))
    updated = str(stats.get("updated") or "–").replace("T", " ").replace("+00:00", " UTC")
    rows = [(t(lang, "documents"), stats.get("documents")), (t(lang, "passages"), stats.get("passages")),
            (t(lang, "languages"), langs or "–"), (t(lang, "updated"), updated),
            (t(lang, "model"), (stats.get("model") or {}).get("name"))]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return f'<dl class="as-stats">{items}</dl>'
