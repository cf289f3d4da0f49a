"""The answer reader: the bundled encoder, adapted by small learned low-rank weights (``params/reader.safetensors``,
written by ``aidsearch.train_reader``), reads a question together with one passage and scores each token as the
start or the end of the answer, and its first token as "no answer here". It picks the sentence of a passage that
answers and the exact span inside it, and says how much more its best span is worth than no answer."""
from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .batching import MicroBatcher
from .embed import (parameter_fingerprint, drop_torch_layers, export_layers, half_word_embeddings, onnx_session,
                    quantize_int8, release_freed_memory, run_layers, tokenizer_for)
from .errors import first_line
from .features import READER_ABSTAIN_FEATURES
from .linear import PARAMS_DIR, LinearModel

log = logging.getLogger(__name__)

READER_FILE = PARAMS_DIR / "reader.safetensors"
WEIGHT_FILE = PARAMS_DIR / "reader_weight.json"
PASSAGE_FILE = PARAMS_DIR / "reader_passage.json"
ABSTAIN_FILE = PARAMS_DIR / "reader_abstain.json"
QUESTION_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MAX_TOKENS = 256
MAX_SPAN_TOKENS = 25


@dataclass(frozen=True)
class PassageLogits:
    """Start and end scores of the tokens of ``text``; ``offsets[i]`` is token ``i``'s character span in ``text``;
    ``null``: the reader's score for "no answer in this text" (its most answering window; None for a reader trained
    without such examples), to compare with the best span's score."""

    text: str
    starts: np.ndarray
    ends: np.ndarray
    offsets: np.ndarray
    null: float | None = None

    def answer_margin(self) -> float | None:
        """How much the best span outscores "no answer" (positive: the reader finds an answer here)."""
        best = self.best_span()
        return None if self.null is None or best is None else best[2] - self.null

    def best_span(self, start: int = 0, end: int | None = None) -> tuple[int, int, float] | None:
        """The best-scored answer span inside ``text[start:end]``: its character offsets and score."""
        end = len(self.text) if end is None else end
        inside = np.flatnonzero((self.offsets[:, 0] >= start) & (self.offsets[:, 1] <= end))
        if not len(inside):
            return None
        s, e = self.starts[inside], self.ends[inside]
        pair = s[:, None] + e[None, :]
        gap = inside[None, :] - inside[:, None]
        pair[(gap < 0) | (gap >= MAX_SPAN_TOKENS)] = -np.inf
        i, j = np.unravel_index(int(np.argmax(pair)), pair.shape)
        a, b = int(self.offsets[inside[i], 0]), int(self.offsets[inside[j], 1])
        while a < b and self.text[a].isspace():
            a += 1
        return a, b, float(pair[i, j])

    def span_scores(self, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """For each character range (a sentence), the score of the best answer span inside it (-inf when none)."""
        out = np.full(len(spans), -np.inf)
        for k, (start, end) in enumerate(spans):
            best = self.best_span(start, end)
            if best is not None:
                out[k] = best[2]
        return out


def _windows(n: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Token windows of at most ``size`` covering ``range(n)``, overlapping by ``stride``."""
    if n <= size:
        return [(0, n)]
    out, start = [], 0
    while True:
        out.append((start, min(start + size, n)))
        if start + size >= n:
            return out
        start += size - stride


class Reader:
    """Scores answer spans of passages for a question with the adapted encoder; one forward pass per window of
    ``MAX_TOKENS`` tokens, run by ONNX Runtime when ``session`` holds the encoder and head as one graph (written by
    ``export_layers``), else by PyTorch."""

    def __init__(self, model: Any, tokenizer: Any, head: Any, info: dict[str, Any], micro_batch: int = 16,
                 session: Any = None):
        self.model, self.tokenizer, self.head, self.info = model, tokenizer, head, info
        self.micro_batch = micro_batch
        self.session = session
        self._table = model.embeddings.word_embeddings.weight.detach().numpy() if session is not None else None
        self._forward = MicroBatcher(self._pass, max_batch=micro_batch)

    @property
    def null(self) -> bool:
        """Whether this reader was taught to say "no answer" (on its first token)."""
        return bool(self.info.get("settings", {}).get("nulls"))

    def encode(self, question: str, text: str) -> list[dict[str, Any]]:
        """The input windows of ``question`` with ``text``: token ids and, per token, its character span in
        ``text`` (None for the question and special tokens)."""
        tok = self.tokenizer
        q_ids = tok.ids(QUESTION_PREFIX + question)[:64]
        p_ids, spans = tok.offsets(PASSAGE_PREFIX + text)
        shift = len(PASSAGE_PREFIX)
        offsets = [(max(a - shift, 0), max(b - shift, 0)) for a, b in spans]
        room = MAX_TOKENS - len(q_ids) - 4
        cls, sep = tok.cls_token_id if tok.cls_token_id is not None else 0, tok.sep_token_id
        out = []
        for a, b in _windows(len(p_ids), room, room // 4):
            ids = [cls, *q_ids, sep, sep, *p_ids[a:b], sep]
            offs: list[tuple[int, int] | None] = [None] * (len(q_ids) + 3)
            offs += [o if o[1] > o[0] and o[0] >= 0 else None for o in offsets[a:b]] + [None]
            out.append({"input_ids": ids, "offsets": offs})
        return out

    def logits(self, question: str, texts: Sequence[str]) -> list[PassageLogits]:
        """Start/end scores for each of ``texts`` read with ``question``; windows of a long text are merged
        (a token seen twice keeps its better score)."""
        items, owner = [], []
        for t, text in enumerate(texts):
            for item in self.encode(question, text):
                items.append(item)
                owner.append(t)
        if not items:
            return []
        starts, ends = self._forward(items)
        nulls: list[float | None] = [None] * len(texts)
        if self.null:
            low = np.full(len(texts), np.inf)
            np.minimum.at(low, np.array(owner), np.array([float(s[0] + e[0]) for s, e in zip(starts, ends)]))
            nulls = [float(v) for v in low]
        merged: list[dict[tuple[int, int], list[float]]] = [{} for _ in texts]
        for t, item, s, e in zip(owner, items, starts, ends):
            for k, off in enumerate(item["offsets"]):
                if off is not None:
                    prev = merged[t].get(off)
                    merged[t][off] = [max(prev[0], s[k]), max(prev[1], e[k])] if prev else [s[k], e[k]]
        out = []
        for text, tokens, null in zip(texts, merged, nulls):
            offs = sorted(tokens)
            arr = np.array([tokens[o] for o in offs], dtype=np.float64).reshape(-1, 2)
            out.append(PassageLogits(text, arr[:, 0], arr[:, 1], np.array(offs, dtype=np.int64).reshape(-1, 2),
                                     null))
        return out

    def _pass(self, calls: list[list[dict[str, Any]]]) -> list[tuple[Any, Any]]:
        """The windows of concurrent calls, read in forward passes of at most ``micro_batch`` windows (bounding the
        activations' memory however many passages the calls bring), shortest first so that a pass pads little;
        each call gets the rows of its own windows."""
        import torch

        items = [item for call in calls for item in call]
        order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
        starts: list[Any] = [None] * len(items)
        ends: list[Any] = [None] * len(items)
        with torch.inference_mode():
            for a in range(0, len(items), self.micro_batch):
                rows = order[a:a + self.micro_batch]
                part = [items[i] for i in rows]
                if self._table is not None:  # on ONNX Runtime
                    s, e = onnx_token_logits(self.session, self._table, part, self.tokenizer.pad_token_id, self.null)
                else:
                    s, e = (t.numpy() for t in token_logits(self.model, self.head, part,
                                                            self.tokenizer.pad_token_id, self.null))
                for i, si, ei in zip(rows, s, e):
                    starts[i], ends[i] = si, ei
        out, row = [], 0
        for call in calls:
            out.append((starts[row:row + len(call)], ends[row:row + len(call)]))
            row += len(call)
        return out


def pad_batch(items: Sequence[dict[str, Any]], pad_id: int):
    """Token ids, attention mask and passage-token mask of ``items``, padded to the longest."""
    import torch

    n = max(len(it["input_ids"]) for it in items)
    ids = torch.full((len(items), n), pad_id, dtype=torch.long)
    att = torch.zeros((len(items), n), dtype=torch.long)
    passage = torch.zeros((len(items), n), dtype=torch.bool)
    for i, it in enumerate(items):
        m = len(it["input_ids"])
        ids[i, :m] = torch.tensor(it["input_ids"])
        att[i, :m] = 1
        passage[i, :m] = torch.tensor([o is not None for o in it["offsets"]])
    return ids, att, passage


def token_logits(model: Any, head: Any, items: Sequence[dict[str, Any]], pad_id: int, null: bool = False):
    """Start and end scores per token of each item: passage tokens only, and with ``null`` the first token, which
    stands for "no answer here"; others at -10000."""
    ids, att, passage = pad_batch(items, pad_id)
    h = model(input_ids=ids, attention_mask=att).last_hidden_state
    allowed = passage.clone()
    allowed[:, 0] |= null
    scores = head(h).masked_fill(~allowed[..., None], -1e4)
    return scores[..., 0], scores[..., 1]


def onnx_token_logits(session: Any, table: np.ndarray, items: Sequence[dict[str, Any]], pad_id: int,
                      null: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``token_logits`` of the reader's graph run by ONNX Runtime (word vectors looked up in ``table``)."""
    ids, att, passage = pad_batch(items, pad_id)
    scores = run_layers(session, table, ids.numpy(), att.numpy())
    allowed = passage.numpy()
    allowed[:, 0] |= null
    scores = np.where(allowed[..., None], scores, np.float32(-1e4))
    return scores[..., 0], scores[..., 1]


def _fitted_weight(path: Path, key: str = "weight") -> float | None:
    if not path.exists():
        return None
    weight = json.loads(path.read_text(encoding="utf-8")).get(key)
    return None if weight is None else float(weight)


def shipped_weight() -> float | None:
    """How much the reader's span scores weigh against the learned sentence scores (``params/reader_weight.json``,
    written by ``python -m aidsearch.train --reader-weight``); None, the reader alone, when not fitted."""
    return _fitted_weight(WEIGHT_FILE)


def shipped_passage_weight() -> float | None:
    """How much the reader's answer margin weighs against the retrieval score when choosing the passage to quote
    (``params/reader_passage.json``, written by ``python -m aidsearch.train --passage-weight``); None, the passage
    of the best learned sentence, when not fitted."""
    return _fitted_weight(PASSAGE_FILE)


def shipped_margin_bound() -> float:
    """The highest answer margin the reader gave on the train parts (``params/reader_passage.json``): a passage that
    cannot win the passage choice with it is not read; infinite (every passage read) when not recorded."""
    bound = _fitted_weight(PASSAGE_FILE, "margin_bound")
    return math.inf if bound is None else bound


def shipped_abstain() -> LinearModel | None:
    """The abstention model that weighs the reader's answer margin (``params/reader_abstain.json``, written by
    ``python -m aidsearch.train --reader-abstain``), with its threshold in ``info``; None when not fitted or
    fitted on other features."""
    model = LinearModel.load(ABSTAIN_FILE) if ABSTAIN_FILE.exists() else None
    return model if model is not None and model.features == READER_ABSTAIN_FEATURES else None


_SHARED: dict[str, Reader | None] = {}
_SHARED_LOCK = threading.Lock()


def shared_reader(folder: Path, micro_batch: int = 16, quantize: str = "none",
                  onnx_dir: Path | None = None) -> Reader | None:
    """The reader of the bundled model in ``folder``, loaded once per process, ``quantize`` choice and runtime (None
    without committed weights); ``micro_batch`` applies when it is loaded."""
    key = f"{folder}|{quantize}|{onnx_dir}"
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = load_reader(folder, micro_batch=micro_batch, quantize=quantize, onnx_dir=onnx_dir)
        return _SHARED[key]


def load_reader(folder: Path, path: Path | None = None, micro_batch: int = 16, quantize: str = "none",
                onnx_dir: Path | None = None) -> Reader | None:
    """The reader for the bundled model in ``folder`` with the weights in ``path`` (default: the committed ones)
    merged in, its linear layers in int8 with ``quantize`` "int8" (as the embedder's); None when there are no
    weights. With ``onnx_dir`` (and no quantization), its encoder and head run on ONNX Runtime as one graph written
    once under ``onnx_dir`` (named by their weights), PyTorch's copy of the layers dropped: the same scores in about
    two thirds of the time; on PyTorch still when the export fails."""
    path = path or READER_FILE
    if not path.exists():
        return None
    import torch
    from safetensors import safe_open
    from transformers import AutoModel

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    scale = float(meta.get("scale", "1"))
    model = AutoModel.from_pretrained(str(folder), add_pooling_layer=False, dtype=torch.float16)
    words = model.embeddings.word_embeddings  # stays in fp16 (shared below): never widened, so never held twice
    model.embeddings.word_embeddings = torch.nn.Identity()
    model.float()
    model.embeddings.word_embeddings = words
    model.eval()
    with torch.no_grad():
        for name in {k.rsplit(".", 1)[0] for k in tensors if k.endswith(".lora_a")}:
            module = model.get_submodule(name)
            module.weight += scale * tensors[f"{name}.lora_b"] @ tensors[f"{name}.lora_a"]
        head = torch.nn.Linear(model.config.hidden_size, 2)
        head.weight.copy_(tensors["head.weight"])
        head.bias.copy_(tensors["head.bias"])
    half_word_embeddings(model, shared_as=str(folder))
    if quantize == "int8":
        quantize_int8(model)
    session = _onnx_reader(model, head, onnx_dir) if onnx_dir is not None and quantize == "none" else None
    release_freed_memory()
    tokenizer = tokenizer_for(folder)
    return Reader(model, tokenizer, head, json.loads(meta.get("info", "{}")), micro_batch, session)


def _onnx_reader(model: Any, head: Any, folder: Path) -> Any:
    """The ONNX Runtime session of the reader's encoder and head (the graph written once to ``folder``); None, with
    a warning, when the export fails."""
    import torch

    key = parameter_fingerprint(torch.nn.ModuleDict({"encoder": model, "head": head}),
                                 skip="encoder.embeddings.word_embeddings")
    try:
        session = onnx_session(folder / f"reader-{key}-fused.onnx",
                               lambda p: export_layers(model, p, model.config.hidden_size, head))
    except Exception as exc:  # an architecture the exporter cannot trace: the reader stays with PyTorch
        log.warning("the answer reader runs on PyTorch: ONNX export failed (%s)", first_line(exc)[:200])
        return None
    drop_torch_layers(model)
    return session
