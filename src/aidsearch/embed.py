"""Embedders: the bundled multilingual model through sentence-transformers, any other ST model, and a fake one
for tests."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from . import bundled
from .batching import MicroBatcher
from .config import Settings
from .errors import ModelError, first_line

log = logging.getLogger("aidsearch")
Progress = Callable[[int], None]
_SPECIAL_TOKENS = 4  # about what the prompt ("passage: ") and the start and end tokens add to a text


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    path: str
    dimension: int
    max_tokens: int
    fingerprint: str

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class Embedder(Protocol):
    """Turns queries and passages into L2-normalized float32 vectors."""

    info: ModelInfo

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@runtime_checkable
class SpanEmbedder(Embedder, Protocol):
    """An embedder that also gives vectors of spans of a passage from the passage's own pass."""

    def encode_with_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                          progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; queries and passages use the model's own prompts."""

    def __init__(self, model, info: ModelInfo, *, batch_size: int = 32, micro_batch: int = 16,
                 batch_tokens: int = 4096, onnx_encoder: OnnxEncoder | None = None) -> None:
        self.model = model
        self.info = info
        self.onnx_encoder = onnx_encoder
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self._lock = threading.Lock()
        self._one_query: MicroBatcher[str, np.ndarray] = MicroBatcher(
            lambda texts: list(self._queries(texts)), max_batch=micro_batch)
        self._query_prompt = "query" if "query" in (model.prompts or {}) else None
        self._doc_prompt = "document" if "document" in (model.prompts or {}) else None

    def _encode(self, texts: Sequence[str], prompt: str | None, batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        if self.onnx_encoder is not None:
            return self.onnx_encoder.encode(texts, self.model.prompts.get(prompt or "", ""), shrink=True)
        with self._lock:
            vectors = self.model.encode(
                list(texts), prompt_name=prompt, batch_size=batch_size or self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _queries(self, texts: Sequence[str]) -> np.ndarray:
        if self.onnx_encoder is not None and texts:
            return self.onnx_encoder.encode(texts, self.model.prompts.get(self._query_prompt or "", ""))
        return self._encode(texts, self._query_prompt)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts``; single queries of concurrent callers are embedded together (``micro_batch``)."""
        if len(texts) == 1:
            return self._one_query(texts[0]).reshape(1, -1)
        return self._queries(texts)

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Vectors of ``texts`` in their order. Each distinct text is embedded once, longest first, in batches of
        about ``batch_tokens`` padded tokens (many short sentences or a few long passages per pass)."""
        if not texts:
            return self._encode([], None)
        slot: dict[str, int] = {}
        where = np.fromiter((slot.setdefault(t, len(slot)) for t in texts), dtype=np.int64, count=len(texts))
        distinct = list(slot)
        copies = np.bincount(where, minlength=len(distinct))
        vectors = np.empty((len(distinct), self.info.dimension), dtype=np.float32)
        for rows in self._batches(distinct):
            vectors[rows] = self._encode([distinct[r] for r in rows], self._doc_prompt, batch_size=len(rows))
            if progress:
                progress(int(copies[rows].sum()))
        return vectors[where]

    def encode_with_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                          progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One pass per passage: the vectors of ``texts`` (as ``encode_passages`` gives them) and, from the same
        pass, one vector per character span of ``spans[i]`` in ``texts[i]`` (the mean of the passage's last token
        states over the span's tokens), all spans in order."""
        dim = self.info.dimension
        if not texts:
            return np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32)
        prompt = self.model.prompts.get(self._doc_prompt, "") if self._doc_prompt else ""
        vectors = np.empty((len(texts), dim), dtype=np.float32)
        pooled: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * len(texts)
        for rows in self._batches(list(texts)):
            batch = self.model.tokenizer([prompt + texts[r] for r in rows], padding=True, truncation="longest_first",
                                         max_length=self.model.max_seq_length, return_offsets_mapping=True,
                                         return_tensors="np")
            offsets = batch.pop("offset_mapping")
            states_np = self.token_states(batch["input_ids"], batch["attention_mask"])
            lengths = batch["attention_mask"].sum(1).tolist()
            for j, r in enumerate(rows):
                tokens, where = states_np[j, :lengths[j]], offsets[j, :lengths[j]] - len(prompt)
                vectors[r] = _unit(tokens.mean(0))
                inside = [(where[:, 0] >= a) & (where[:, 1] <= b) & (where[:, 1] > where[:, 0]) for a, b in spans[r]]
                pooled[r] = np.array([_unit(tokens[m].mean(0) if m.any() else tokens.mean(0)) for m in inside],
                                     dtype=np.float32).reshape(-1, dim)
            if progress:
                progress(int(sum(1 + len(spans[r]) for r in rows)))
        return vectors, np.concatenate(pooled)

    def token_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The model's last token states (batch, tokens, dimension) for token ``ids`` and attention ``mask``."""
        if self.onnx_encoder is not None:
            return self.onnx_encoder.states(ids, mask, shrink=True)
        import torch

        with self._lock, torch.inference_mode():
            states = self.model[0].auto_model(input_ids=torch.from_numpy(np.asarray(ids, dtype=np.int64)),
                                              attention_mask=torch.from_numpy(np.asarray(mask, dtype=np.int64)))
        return states.last_hidden_state.float().numpy()

    def _batches(self, texts: list[str]) -> Iterator[np.ndarray]:
        limit = self.info.max_tokens
        if self.batch_tokens <= 0:
            lengths = np.array([len(t) for t in texts])
        else:
            lengths = np.minimum(np.array(self.count_tokens(texts)) + _SPECIAL_TOKENS, limit)
        order = np.argsort(-lengths, kind="stable")
        i = 0
        while i < len(order):
            rows = self.batch_size if self.batch_tokens <= 0 else max(1, self.batch_tokens // int(lengths[order[i]]))
            yield order[i : i + rows]
            i += rows

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.model.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]


class OnnxEncoder:
    """The encoder layers of a loaded sentence-transformers model (one transformer, mean pooling) run by ONNX Runtime,
    their attention, GELU and layer norms fused by its transformer optimizer: the same vectors as PyTorch's, in less
    than half the time on a question and as fast or a little faster on long passages, so that the model's PyTorch
    layers can be dropped (``drop_torch_layers``). Word vectors are looked up in the PyTorch model's own table, so the
    graph holds only the encoder layers; it is written once to ``path``."""

    def __init__(self, model, path: Path) -> None:
        self.model = model
        transformer = model[0].auto_model
        table = transformer.embeddings.word_embeddings.weight
        self.table = table.detach().numpy()  # shares the tensor's memory
        self.session = onnx_session(path, lambda p: export_layers(transformer, p, table.shape[1]))
        self._shrink = shrink_option()

    @staticmethod
    def fits(model) -> bool:
        """Whether ``model`` is one Hugging Face transformer, mean pooling and (optionally) normalization."""
        from sentence_transformers.models import Normalize, Pooling, Transformer

        modules = list(model)
        pooling = modules[1] if len(modules) > 1 else None
        embeddings = getattr(getattr(modules[0], "auto_model", None), "embeddings", None)
        return (isinstance(modules[0], Transformer) and isinstance(pooling, Pooling)
                and getattr(pooling, "pooling_mode", None) == "mean" and getattr(pooling, "include_prompt", True)
                and all(isinstance(m, Normalize) for m in modules[2:])
                and hasattr(getattr(embeddings, "word_embeddings", None), "weight"))

    def states(self, ids: np.ndarray, mask: np.ndarray, shrink: bool = False) -> np.ndarray:
        """The last token states of token ``ids`` with attention ``mask``; ``shrink`` gives the pass's working
        memory back afterwards (for long batches)."""
        return run_layers(self.session, self.table, ids, mask, self._shrink if shrink else None)

    def encode(self, texts: Sequence[str], prompt: str, shrink: bool = False) -> np.ndarray:
        """L2-normalized vectors of ``texts`` read with ``prompt`` in front, as sentence-transformers tokenizes them."""
        features = self.model.preprocess(list(texts), prompt=prompt or None)
        ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        tokens = self.states(ids, mask, shrink)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(pooled, dtype=np.float32)


def onnx_session(path: Path, write: Callable[[Path], None]):
    """An ONNX Runtime session over the graph at ``path`` on this process's threads (no busy waiting between
    passes); the graph is written by ``write`` first when missing or unreadable (disk full, another version)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if path.is_file():
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception:
            log.warning("the ONNX graph in %s cannot be read; writing it again", path)
    write(path)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def shrink_option():
    """Run options that give a pass's working memory back afterwards (after a long batch)."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def run_layers(session: Any, table: np.ndarray, ids: np.ndarray, mask: np.ndarray, options: Any = None) -> np.ndarray:
    """The output of a graph written by ``export_layers`` for token ``ids`` (rows of the word ``table``) and
    attention ``mask``."""
    return session.run(None, {"embeds": table[ids].astype(np.float32), "mask": mask.astype(np.int64)}, options)[0]


def drop_torch_layers(transformer) -> None:
    """Free the PyTorch copy of ``transformer``'s encoder layers (a Hugging Face encoder) once ONNX Runtime runs
    them; a PyTorch pass through them then fails with one line instead of giving wrong results."""
    import torch

    class OnOnnxRuntime(torch.nn.Module):
        def forward(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("this model's encoder layers run on ONNX Runtime (query_runtime onnx)")

    transformer.encoder = OnOnnxRuntime()


def export_layers(transformer, path: Path, width: int, head: Any = None) -> None:
    """Write ``transformer``'s layers after the word-vector lookup (and ``head`` over its token states, when given)
    as an ONNX graph (any batch and length), traced with plain ("eager") attention so that ONNX Runtime's optimizer
    can fuse it."""
    import warnings

    import torch

    class Layers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer, self.head = transformer, head

        def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            states = self.transformer(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
            return states if self.head is None else self.head(states)

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    axes = {0: "batch", 1: "tokens"}
    attention = getattr(transformer.config, "_attn_implementation", None)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if attention is not None:
                transformer.config._attn_implementation = "eager"
            torch.onnx.export(Layers().eval(), (torch.zeros(2, 8, width), torch.ones(2, 8, dtype=torch.int64)),
                              str(partial), input_names=["embeds", "mask"], output_names=["tokens"],
                              dynamic_axes={"embeds": axes, "mask": axes, "tokens": axes}, opset_version=17,
                              dynamo=False)
        _fuse(partial, transformer.config)
        os.replace(partial, path)
    finally:
        if attention is not None:
            transformer.config._attn_implementation = attention
        partial.unlink(missing_ok=True)


def _fuse(path: Path, config: Any) -> None:
    """The graph at ``path`` rewritten with its attention, GELU and layer norms fused by ONNX Runtime's transformer
    optimizer (BERT-like encoders); left as it is when the optimizer cannot handle it."""
    try:
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                         hidden_size=config.hidden_size, opt_level=0)
        fused.save_model_to_file(str(path))
    except Exception as exc:  # another architecture: the plain graph gives the same vectors, a little slower
        log.warning("the ONNX graph is not fused (%s)", first_line(exc))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Deterministic bag-of-words hashing embedder for fast unit tests (no semantics beyond shared words)."""

    def __init__(self, dimension: int = 64) -> None:
        self.info = ModelInfo("hash", "aidsearch test embedder", "", dimension, 512, f"hash-{dimension}")

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.info.dimension, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v[h % self.info.dimension] += 1.0 if (h >> 32) & 1 else -1.0
        norm = float(np.linalg.norm(v))
        if norm == 0:
            v[0] = 1.0
            norm = 1.0
        return v / norm

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.info.dimension), np.float32)

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = self.encode_queries(texts)
        if progress and texts:
            progress(len(texts))
        return out

    def encode_with_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                          progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        inner = [t[a:b] for t, pairs in zip(texts, spans) for a, b in pairs]
        if progress and texts:
            progress(len(texts) + len(inner))
        return self.encode_passages(texts), self.encode_passages(inner)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) + t.count(",") + t.count(".") for t in texts]


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def parameter_fingerprint(model, skip: str | None = None) -> str:
    """SHA-256 over the named tensors of ``model``'s state, those whose name starts with ``skip`` left out (first 16
    hex digits)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if skip is not None and name.startswith(skip):
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _is_e5(name: str) -> bool:
    return "e5" in name.lower().replace("-", "").split("/")[-1] or "-e5-" in name.lower()


_HALF_TABLES: dict[str, Any] = {}
_HALF_LOCK = threading.Lock()


SHARED_ROW_STRIDE = 1009  # rows about 750 KB apart: comparing them maps little of a second table


def half_word_embeddings(transformer, shared_as: str | None = None) -> None:
    """Keep the word-embedding matrix of ``transformer`` (a Hugging Face encoder) (most of a multilingual model's
    weights: 250k rows) in fp16 and widen only the rows looked up. Lossless for the bundled model, whose checkpoint
    is fp16; saves about 190 MB. Encoders loaded with the same ``shared_as`` key (their checkpoint's folder: the
    embedder and the answer reader) share one table when their rows agree, every ``SHARED_ROW_STRIDE``-th compared
    (comparing them all would read the whole of a second table from the checkpoint, a 190 MB peak), read-only and
    safe across threads, which saves another 190 MB."""
    import torch

    class HalfEmbedding(torch.nn.Module):
        def __init__(self, table: torch.nn.Embedding) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(table.weight.detach().half(), requires_grad=False)
            self.padding_idx = table.padding_idx

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.embedding(ids, self.weight, self.padding_idx).float()

    embeddings = getattr(transformer, "embeddings", None)
    table = getattr(embeddings, "word_embeddings", None)
    if (embeddings is None or not isinstance(table, torch.nn.Embedding)
            or table.weight.dtype not in (torch.float32, torch.float16)):
        return
    half = HalfEmbedding(table)
    if shared_as is not None:
        with _HALF_LOCK:
            known = _HALF_TABLES.get(shared_as)
            if (known is not None and known.padding_idx == half.padding_idx and known.weight.shape == half.weight.shape
                    and torch.equal(known.weight[::SHARED_ROW_STRIDE], half.weight[::SHARED_ROW_STRIDE])):
                half = known
            else:
                _HALF_TABLES[shared_as] = half
    embeddings.word_embeddings = half


def quantize_int8(encoder) -> None:
    """Dynamic int8 quantization (per-channel weights, activations quantized per batch) of the linear layers of
    ``encoder`` (a Hugging Face encoder) whose inputs quantize well: in a BERT encoder the query/key/value
    projections and the first feed-forward layer. The attention output and second feed-forward layers see outlier
    activations and stay fp32 (quantizing every layer cost 4.6 points of Recall@5 on the evaluation set)."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    targets = [m for layer in layers for m in (layer.attention.self, layer.intermediate)] if layers else [encoder]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in targets:
            quantize_dynamic(module, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


def release_freed_memory() -> None:
    """Hand the allocator's freed pages back to the system (glibc keeps them after loading a model)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_CACHE: dict[tuple[str, str, str, str], SentenceTransformerEmbedder] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class SharedTokenizer:
    """A tokenizer with its own settings over a loaded tokenizer's vocabulary model, which it shares (a second copy
    of the bundled model's vocabulary would cost about 270 MB): no truncation, no padding, offsets in characters."""

    backend: Any
    cls_token_id: int | None
    sep_token_id: int
    pad_token_id: int

    @classmethod
    def over(cls, tokenizer: Any) -> SharedTokenizer:
        """One sharing the vocabulary of ``tokenizer`` (a Hugging Face fast tokenizer)."""
        from tokenizers import Tokenizer

        source = tokenizer.backend_tokenizer
        own = Tokenizer(source.model)  # the model object is shared, not copied
        own.normalizer, own.pre_tokenizer = source.normalizer, source.pre_tokenizer
        own.post_processor, own.decoder = source.post_processor, source.decoder
        own.add_special_tokens([token for _, token in sorted(source.get_added_tokens_decoder().items())])
        return cls(own, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)

    def ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of ``text`` without special tokens and each token's character span in ``text``."""
        encoding = self.backend.encode(text, add_special_tokens=False)
        return encoding.ids, encoding.offsets


def tokenizer_for(folder: Path) -> SharedTokenizer:
    """A tokenizer of the model in ``folder``, sharing the vocabulary of a loaded embedder's when there is one (so
    threads do not contend over one tokenizer's settings and the vocabulary is held once), else loaded from the
    folder."""
    with _CACHE_LOCK:
        loaded = next((e for e in _CACHE.values() if e.info.path == str(folder)), None)
    if loaded is not None:
        return SharedTokenizer.over(loaded.model.tokenizer)
    from transformers import AutoTokenizer

    return SharedTokenizer.over(AutoTokenizer.from_pretrained(str(folder)))


def model_path(settings: Settings) -> Path | None:
    """The bundled model's folder (built if missing), or a local folder named in settings; None for a hub name."""
    if settings.model == "bundled":
        return bundled.ensure_bundled(settings.cache_dir / "models")
    path = Path(settings.model).expanduser()
    return path if path.exists() else None


def load_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The configured model, loaded once per process."""
    key = (settings.model, str(settings.cache_dir), settings.quantize, settings.query_runtime)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load(settings)
        return _CACHE[key]


def _load(settings: Settings) -> SentenceTransformerEmbedder:
    import json

    _quiet_transformers()
    from sentence_transformers import SentenceTransformer

    folder = model_path(settings)
    try:
        if settings.model == "bundled":
            assert folder is not None
            meta = json.loads((folder / bundled.MARKER).read_text())
            model = SentenceTransformer(str(folder), device="cpu", local_files_only=True,
                                        model_kwargs=meta.get("model_kwargs", {}))
            half_word_embeddings(model[0].auto_model, shared_as=str(folder))
            info = ModelInfo(meta["name"], meta["source"], str(folder), meta["dimension"], meta["max_tokens"],
                             meta["fingerprint"])
        else:
            model = SentenceTransformer(str(folder or settings.model), device="cpu")
            name = settings.model
            if _is_e5(name) and not model.prompts.get("query"):
                model.prompts.update({"query": bundled.QUERY_PROMPT, "document": bundled.PASSAGE_PROMPT})
            fingerprint = bundled.fingerprint_files(folder) if folder and folder.is_dir() else ""
            info = ModelInfo(name, "local folder" if folder else "sentence-transformers hub cache", str(folder or ""),
                             int(model.get_sentence_embedding_dimension() or 0), int(model.max_seq_length or 512),
                             fingerprint or parameter_fingerprint(model))
    except ModelError:
        raise
    except Exception as exc:  # the libraries raise many kinds; the user needs one line
        raise ModelError(f"cannot load model {settings.model!r}: {first_line(exc)}") from exc
    if settings.quantize == "int8":
        quantize_int8(model[0].auto_model)
        info = replace(info, name=f"{info.name} (int8)", fingerprint=f"{info.fingerprint}-int8")
    onnx_encoder = None
    if settings.query_runtime == "onnx" and settings.quantize == "none" and OnnxEncoder.fits(model):
        path = settings.cache_dir / "onnx" / f"{info.fingerprint}-encoder-fused.onnx"
        try:
            onnx_encoder = OnnxEncoder(model, path)
        except Exception as exc:  # an architecture the exporter cannot trace: the model stays with PyTorch
            log.warning("questions are embedded with PyTorch: ONNX export failed (%s)", first_line(exc)[:200])
        else:
            drop_torch_layers(model[0].auto_model)
    release_freed_memory()
    return SentenceTransformerEmbedder(model, info, batch_size=settings.batch_size, micro_batch=settings.micro_batch,
                                       batch_tokens=settings.batch_tokens, onnx_encoder=onnx_encoder)
