"""How aidsearch's cost grows with the number of passages: indexing throughput, query latency, memory, disk.

Usage: .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,10000,100000] [--base-records 400]
                                                 [--out docs/benchmarks/scale.md] [--quick]

1. A real base index: aid-project records from data/devaid/scale_records.jsonl.gz (see data/README.md), chunked
   and embedded with the bundled model (this measures indexing throughput).
2. Larger indexes are made from the base by repeating its passages with their vectors perturbed (Gaussian noise,
   renormalized; cosine to the original about 0.95), so FAISS, BM25 and the passage store hold the real texts at
   the target size without hours of embedding. HNSW takes over at 50,000 passages, as in normal use.
3. Each size is measured in a fresh subprocess: cold start (open the index, load the model, answer one question),
   then warm latency of ``search`` and ``ask`` (p50/p95 over the query set), peak memory (VmHWM) and size on disk.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from procstat import status_mib

ROOT = Path(__file__).resolve().parent.parent
# Every record of the four devaid files below whose text has >= 300 characters, tagged with its file (data/make_data.py)
SCALE_RECORDS = ROOT / "data" / "devaid" / "scale_records.jsonl.gz"
QUERIES = [
    "What is the total budget of the Lao-Luxembourg Health Sector Support Programme Phase II?",
    "Quelle est la durée totale du projet au Kosovo ?",
    "How many local officials received technical support in Laos?",
    "Quels projets soutiennent la santé maternelle au Sénégal ?",
    "Which organisations fund water and sanitation projects in Burundi?",
    "Combien coûte le programme d'appui à l'éducation de base ?",
    "flood relief Ethiopia Save the Children",
    "LAO/027",
    "projets d'agriculture et de sécurité alimentaire financés par le Canada",
    "What did the P4H mission in Cambodia aim to create?",
]
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _records(n: int) -> list[dict[str, Any]]:
    by_file: dict[str, list[dict[str, Any]]] = {}
    with gzip.open(SCALE_RECORDS, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            by_file.setdefault(row["dataset"], []).append(row["record"])
    out: list[dict[str, Any]] = []
    for name in ("cida_projects_2009", "senegal_aims_projects", "burundi_aims_projects",
                 "dportal_iati_activities_sample"):
        rows = by_file.get(name, [])
        share = max(1, n // 4) if name != "cida_projects_2009" else n
        out += [r for r in rows if len(r.get("text") or "") >= 300][:share]
    return out[:n]


def build_base(work: Path, records: int) -> dict[str, Any]:
    """Write the base corpus (seed documents + records) and index it with the real model."""
    from aidsearch.config import load_settings
    from aidsearch.api import open_index
    from aidsearch.embed import load_embedder

    corpus = work / "corpus"
    corpus.mkdir(parents=True)
    for path in (ROOT / "corpus").glob("*.txt"):
        shutil.copy(path, corpus / path.name)
    for rec in _records(records):
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in rec["id"])[:60]
        extra = "".join(f"\n{k.capitalize()}: {rec[k]}" for k in ("country", "donor") if rec.get(k))
        (corpus / f"{name}.txt").write_text(f"{rec['title']}\n\n{rec['text']}\n{extra}\n", encoding="utf-8")
    settings = load_settings(corpus_dir=corpus, index_dir=work / "base")
    embedder = load_embedder(settings)
    report = open_index(settings=settings, embedder=embedder, create=True).created
    total = report.seconds
    return {"documents": report.documents, "passages": report.chunks, "texts": report.embedded_texts,
            "seconds": total, "embed_seconds": report.timings["embed"],
            "passages_per_s": report.chunks / total, "texts_per_s": report.embedded_texts / report.timings["embed"]}


def synthesize(base: Path, target: Path, size: int, seed: int = 0) -> float:
    """An index of ``size`` passages made by repeating the base passages with perturbed vectors."""
    from aidsearch.store import IndexStore

    store = IndexStore(base)
    gen = store.load()
    rng = np.random.default_rng(seed)
    vectors = np.asarray(gen.vectors(), dtype=np.float32)
    n = len(gen.chunks)
    chunks, docs, rows, offsets, sentence_parts = [], {}, [], [0], []
    for i in range(size):
        copy, row = divmod(i, n)
        c = gen.chunks[row]
        suffix = f"~{copy}" if copy else ""
        chunks.append(replace(c, id=f"{c.id}{suffix}", doc_id=f"{c.doc_id}{suffix}", source=f"{c.source}{suffix}"))
        if chunks[-1].doc_id not in docs:
            d = gen.documents[c.doc_id]
            docs[chunks[-1].doc_id] = replace(d, id=chunks[-1].doc_id, source=chunks[-1].source)
        rows.append(row)
        sv = gen.chunk_sentence_vectors(row)
        sentence_parts.append(sv)
        offsets.append(offsets[-1] + len(sv))

    def perturb(a: np.ndarray) -> np.ndarray:
        noisy = a + rng.normal(scale=0.012, size=a.shape).astype(np.float32)
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)

    started = time.perf_counter()
    base_rows = np.asarray(rows)
    out_vectors = vectors[base_rows]
    out_vectors[n:] = perturb(out_vectors[n:])
    sentences = np.concatenate(sentence_parts).astype(np.float32)
    first_copy = offsets[n]
    sentences[first_copy:] = perturb(sentences[first_copy:])
    manifest = {**gen.manifest, "documents": {d.source: {"id": d.id, "size": 0, "mtime_ns": 0, "chunks": 0}
                                              for d in docs.values()}}
    IndexStore(target).write(manifest, chunks, list(docs.values()), out_vectors, sentences, np.asarray(offsets))
    return time.perf_counter() - started


def measure(index_dir: str, repeats: int) -> dict[str, Any]:
    """Runs in a fresh process: cold start, warm latencies, memory."""
    t0 = time.perf_counter()
    from aidsearch.api import open_index
    from aidsearch.config import load_settings

    ix = open_index(settings=load_settings(index_dir=index_dir))
    opened = time.perf_counter()
    ix.ask(QUERIES[0])
    cold = {"open_s": opened - t0, "first_answer_s": time.perf_counter() - t0}
    rss_loaded = status_mib("VmRSS")
    search_ms, ask_ms, parts = [], [], {"embed": [], "retrieve": [], "answer": []}
    for _ in range(repeats):
        for q in QUERIES:
            t = time.perf_counter()
            ix.search(q, k=10)
            search_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            answer = ix.ask(q)
            ask_ms.append((time.perf_counter() - t) * 1000)
            for key in parts:
                parts[key].append(answer.timings_ms.get(key, 0.0))

    def pct(values: list[float], p: float) -> float:
        return float(np.percentile(values, p))

    return {
        **cold,
        "search_p50_ms": pct(search_ms, 50), "search_p95_ms": pct(search_ms, 95),
        "ask_p50_ms": pct(ask_ms, 50), "ask_p95_ms": pct(ask_ms, 95),
        "ask_parts_p50_ms": {k: statistics.median(v) for k, v in parts.items()},
        "rss_loaded_mib": rss_loaded, "peak_mib": status_mib("VmHWM"), "calls": len(search_ms),
    }


def _disk_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _plot(rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = [r["passages"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("search_p50_ms", "search p50"), ("search_p95_ms", "search p95"),
                       ("ask_p50_ms", "ask p50"), ("ask_p95_ms", "ask p95")):
        a.plot(sizes, [r[key] for r in rows], marker="o", label=label)
    a.set_xscale("log")
    a.set_xlabel("passages")
    a.set_ylabel("ms (warm, in-process)")
    a.legend()
    a.grid(alpha=0.3)
    b.plot(sizes, [r["peak_mib"] for r in rows], marker="o", label="peak memory (MiB)")
    b.plot(sizes, [r["disk_mib"] for r in rows], marker="s", label="index on disk (MiB)")
    b.set_xscale("log")
    b.set_xlabel("passages")
    b.legend()
    b.grid(alpha=0.3)
    fig.suptitle("aidsearch cost vs passages (2-core CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def render(result: dict[str, Any], plot: str | None) -> str:
    base = result["base"]
    lines = [
        "# Scale benchmark", "",
        f"Generated by `{result['command']}` on {result['date']}.", "",
        f"- Machine: {result['machine']}",
        f"- Base index (real embeddings): {base['documents']} documents, {base['passages']} passages, "
        f"{base['texts']} texts embedded (passages + their sentences) in {base['embed_seconds']:.0f} s: "
        f"**{base['texts_per_s']:.1f} texts/s**, {base['passages_per_s']:.2f} passages/s end to end "
        f"(reading, chunking, embedding, writing: {base['seconds']:.0f} s).",
        "- Larger sizes repeat the base passages with perturbed vectors (see the script's docstring); "
        f"latencies are warm, in-process, {result['calls']} calls of each of {len(QUERIES)} EN/FR queries, k=10.",
        "",
        "| passages | FAISS | index build (s) | disk (MiB) | open (s) | first answer (s) | search p50 / p95 (ms) "
        "| ask p50 / p95 (ms) | ask parts p50: embed / retrieve / answer (ms) | RSS loaded (MiB) | peak (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        p = r["ask_parts_p50_ms"]
        lines.append(
            f"| {r['passages']:,} | {r['faiss']} | {r['build_s']:.1f} | {r['disk_mib']:.0f} | {r['open_s']:.1f} | "
            f"{r['first_answer_s']:.1f} | {r['search_p50_ms']:.0f} / {r['search_p95_ms']:.0f} | "
            f"{r['ask_p50_ms']:.0f} / {r['ask_p95_ms']:.0f} | {p['embed']:.0f} / {p['retrieve']:.0f} / "
            f"{p['answer']:.0f} | {r['rss_loaded_mib']:.0f} | {r['peak_mib']:.0f} |")
    if plot:
        lines += ["", f"![latency and memory vs passages]({plot})"]
    lines += ["", "Goals on this machine: search p50 ≤ 50 ms and ask p50 ≤ 150 ms at 100k passages; memory ≤ 2 GB.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--base-records", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "scale.md"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats)))
        return 0
    if args.quick:
        args.sizes, args.base_records, args.repeats = "100,400", 20, 1
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="aidsearch-scale-"))
    try:
        base = build_base(work, args.base_records)
        rows = []
        for size in sizes:
            target = work / f"n{size}"
            build_s = synthesize(work / "base", target, size)
            out = subprocess.run([sys.executable, __file__, "--measure", str(target), "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, env={**os.environ, **ENV}, check=True)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            manifest = json.loads((target / (target / "CURRENT").read_text().strip() / "manifest.json").read_text())
            rows.append({"passages": size, "faiss": manifest["faiss"], "build_s": build_s,
                         "disk_mib": _disk_mib(target), **m})
            shutil.rmtree(target, ignore_errors=True)
            print(json.dumps(rows[-1]), file=sys.stderr)
        out_path = Path(args.out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        png = out_path.with_suffix(".png")
        plotted = _plot(rows, png)
        result = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["benchmarks/bench_scale.py", *map(shlex.quote, argv or sys.argv[1:])]),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"Python {platform.python_version()}",
            "base": base, "rows": rows, "calls": rows[0]["calls"] if rows else 0,
        }
        out_path.write_text(render(result, png.name if plotted else None), encoding="utf-8")
        out_path.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
