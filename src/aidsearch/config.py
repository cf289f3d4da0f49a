"""Settings, read from (in order of precedence) explicit arguments, ``AIDSEARCH_*`` variables and a TOML file."""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

CONFIG_FILE = "aidsearch.toml"
QUANTIZE = ("none", "int8")
QUERY_RUNTIMES = ("onnx", "torch")
SENTENCE_VECTORS = ("separate", "pooled")
ANSWERERS = ("reader", "learned", "rules")
RETRIEVALS = ("hybrid", "learned", "dense", "bm25")
LLM_FORMATS = ("auto", "json", "text")
INDEX_BACKENDS = ("faiss", "milvus")
FULL_TEXT = ("auto", "on", "off")
Mode = Literal["hybrid", "learned", "dense", "bm25"]  # a retrieval mode, one of RETRIEVALS


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aidsearch"


@dataclass(frozen=True)
class Settings:
    """Everything configurable. ``model`` is ``"bundled"`` or any sentence-transformers name or path;
    ``quantize`` "int8" runs the model's linear layers in 8-bit integers (faster, slightly less exact), and
    ``reader_quantize`` "int8" those of the answer reader (the index is unchanged); ``query_runtime`` "onnx" runs
    the model's encoder layers on ONNX Runtime for questions and passages, and the answer reader's when it is not
    quantized (each exported and fused once into ``cache_dir``; the same vectors and scores, less time per
    question, PyTorch's copy of the layers dropped), "torch" keeps them in PyTorch;
    ``retrieval`` and ``answerer`` choose the default ranking and answer stages ("learned": fitted on the train
    parts of the development sets; "hybrid" / "rules": reciprocal rank fusion and the earlier rule answerer;
    answerer "reader", the default: the learned stages plus the answer reader). ``llm_url`` is the base URL of an
    OpenAI-compatible chat server (``http://localhost:11434/v1``) that writes generative answers, ``llm_model`` the
    model it serves, ``llm_api_key`` its key (never shown), ``llm_timeout`` the seconds a generation may take,
    ``llm_format`` how the answer is asked for: "json" (constrained by a JSON schema), "text" (plain text with ``[n]``
    markers) or "auto" (JSON, then plain text when the server refuses the schema). ``server_url`` is a running
    aidsearch server that answers ``ask`` and ``search`` from the shell. ``micro_batch`` is how many concurrent
    questions may share one pass of the model (embedding, answer reader); 1 runs them one at a time.
    ``index_backend`` is where dense search runs: "faiss" (in the index folder) or "milvus" (the collection
    ``milvus_collection`` at ``milvus_uri``: a Milvus Lite folder, by default ``milvus.db`` in the index folder, or
    ``http://host:19530`` for a Milvus server; ``milvus_token`` its token, never shown); ``milvus_full_text`` whether
    keyword search runs in Milvus too: "auto" (on a Milvus server with full-text search, not Milvus Lite), "on" or
    "off".
    ``batch_tokens`` bounds an indexing batch by its padded size (rows × longest text, in tokens) instead of a
    fixed count of texts; 0 batches ``batch_size`` texts at a time. ``sentence_vectors`` is how the indexer gets the
    vectors of a passage's sentences (answer selection, ranking): "separate" (each sentence embedded on its own) or
    "pooled" (from the passage's own pass: about twice as fast, a little less accurate). ``read_workers`` is how many
    processes read the files when an indexing run has many to read (1: the indexing process reads them)."""

    model: str = "bundled"
    quantize: str = "none"
    cache_dir: Path = default_cache_dir()
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    chunk_tokens: int = 200
    chunk_overlap: int = 40
    max_per_doc: int = 3
    k: int = 5
    batch_size: int = 32
    batch_tokens: int = 4096
    sentence_vectors: str = "separate"
    read_workers: int = min(4, os.cpu_count() or 1)
    micro_batch: int = 16
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: int = 50
    max_uploads_per_day: int = 100
    max_upload_mb_per_day: int = 500
    auth: str = ""
    answerer: str = "reader"
    reader_quantize: str = "none"
    query_runtime: str = "onnx"
    retrieval: str = "learned"
    public_without_login: bool = False
    uploads: bool = True
    feedback: bool = True
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_timeout: float = 60.0
    llm_format: str = "auto"
    server_url: str = ""
    index_backend: str = "faiss"
    milvus_uri: str = ""
    milvus_collection: str = "aidsearch"
    milvus_token: str = field(default="", repr=False)
    milvus_full_text: str = "auto"

    def with_overrides(self, **values: Any) -> Settings:
        return replace(self, **{k: _coerce(k, v) for k, v in values.items() if v is not None})


_TYPES = {f.name: f.type for f in fields(Settings)}
_CHOICES = {"sentence_vectors": SENTENCE_VECTORS, "quantize": QUANTIZE, "reader_quantize": QUANTIZE,
            "query_runtime": QUERY_RUNTIMES, "answerer": ANSWERERS,
            "retrieval": RETRIEVALS, "llm_format": LLM_FORMATS, "index_backend": INDEX_BACKENDS,
            "milvus_full_text": FULL_TEXT}
# whole-number settings and their lowest value
_LEAST = {"read_workers": 1, "micro_batch": 1, "batch_size": 1, "batch_tokens": 0}


def _coerce(name: str, value: Any) -> Any:
    if name not in _TYPES:
        raise ConfigError(f"unknown setting {name!r}; known: {', '.join(sorted(_TYPES))}")
    kind = _TYPES[name]
    choices = _CHOICES.get(name)
    if choices is not None and value not in choices:
        raise ConfigError(f"setting {name} must be one of {', '.join(choices)}, got {value!r}")
    if name == "milvus_collection" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", str(value)):
        raise ConfigError(f"setting milvus_collection must be letters, digits and underscores, got {value!r}")
    least = _LEAST.get(name)
    if least is not None and not (str(value).strip().isdigit() and int(value) >= least):
        raise ConfigError(f"setting {name} must be a whole number of at least {least}, got {value!r}")
    try:
        if kind == "Path":
            return Path(value).expanduser()
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return _boolean(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} must be {kind}, got {value!r}") from None


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(value)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Defaults, then the TOML file (``AIDSEARCH_CONFIG`` or ./aidsearch.toml), then env, then ``overrides``."""
    values: dict[str, Any] = {}
    path = config_file or Path(os.environ.get("AIDSEARCH_CONFIG", CONFIG_FILE))
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        values.update(data.get("aidsearch", data))
    elif config_file is not None:
        raise ConfigError(f"config file not found: {config_file}")
    for name in _TYPES:
        env = os.environ.get(f"AIDSEARCH_{name.upper()}")
        if env not in (None, ""):
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings().with_overrides(**values)
