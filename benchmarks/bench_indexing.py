"""Indexing speed of the current code against an earlier revision, side by side in one run, and what one forward
pass per passage (sentence vectors pooled from the passage's token states) would cost in answer selection.

Usage: .venv/bin/python benchmarks/bench_indexing.py [--baseline REV] [--repeats 3] [--out docs/benchmarks/indexing.md]
                                                     [--quick]

- Corpora: "short texts", the 1,000 devaid-large texts the scale benchmark times its indexing rate on (its sample,
  seed 1), and "long reports", the evaluation corpus's four multi-page PDF reports and five web pages.
- Each repeat indexes each corpus from scratch with the earlier revision (its ``src`` taken from git), with the
  current code, and with the current code and ``sentence_vectors`` "pooled" (one pass per passage), each in its own
  process with the model already loaded, each going first in turn; figures are medians over the repeats. The stored
  passage and sentence vectors of the earlier and current builds are compared.
- Pooled sentence vectors (needs the indexes of ``make eval-data``): on the validation questions of PIAF, XQuAD and
  the development set, the share whose most similar sentence of the relevant passages (cosine with the question)
  holds a gold answer, with the sentence vectors the index stores (each sentence embedded on its own) and with
  vectors pooled from the passage's token states over the sentence's tokens; and the time to embed the short
  texts' passages alone against passages and sentences; and the default answerer's R@1, cited first and accuracy on
  those validation questions with the ``make eval-data`` indexes and with the same corpora indexed "pooled".
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_scale  # noqa: E402

BASELINE = "201317c"  # the code before indexing batched by tokens and embedded each distinct text once
SETS = (("PIAF validation", "eval/qa/build/index-piaf", "eval/qa/build/piaf/validation.jsonl"),
        ("XQuAD validation", "eval/qa/build/index-xquad", "eval/qa/build/xquad/validation.jsonl"),
        ("development validation", "eval/index-e5", "eval/dev/validation.jsonl"))


def worker(src: str, corpus: str, index: str) -> None:
    """Index ``corpus`` with the aidsearch package in ``src``; print seconds and counts as JSON."""
    sys.path.insert(0, src)
    from aidsearch.config import load_settings
    from aidsearch.embed import load_embedder
    from aidsearch.indexer import build_index

    settings = load_settings(corpus_dir=corpus, index_dir=index)
    embedder = load_embedder(settings)
    embedder.encode_passages(["warm-up"])
    t0 = time.perf_counter()
    report = build_index(settings, embedder)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "embed_seconds": report.timings["embed"], "passages": report.chunks,
                      "texts": report.embedded_texts, "documents": report.documents}))


def _run(src: Path, corpus: Path, index: Path, sentence_vectors: str = "separate") -> dict[str, Any]:
    shutil.rmtree(index, ignore_errors=True)
    env = {**os.environ, **bench_scale.ENV, "AIDSEARCH_SENTENCE_VECTORS": sentence_vectors}
    out = subprocess.run([sys.executable, __file__, "--worker", str(src), str(corpus), str(index)], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def corpora(work: Path, quick: bool) -> dict[str, Path]:
    """The two corpora, written under ``work``."""
    short = work / "short"
    rows = bench_scale.select(bench_scale.load_texts(), 100 if quick else bench_scale.RATE_SAMPLE, seed=1)
    bench_scale.write_corpus(rows, short)
    evaluation = bench_scale.evaluation_corpus(work / "evaluation")
    long = work / "long"
    long.mkdir()
    for path in evaluation.iterdir():
        if path.is_file():
            shutil.copy2(path, long / path.name)
    reports = sorted((evaluation / "reports").iterdir())
    for path in reports[:1] if quick else reports:
        shutil.copy2(path, long / path.name)
    shutil.rmtree(evaluation)
    return {"short texts": short, "long reports": long}


def _vectors(index: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    from aidsearch.store import IndexStore

    g = IndexStore(index).load()
    sentences = [g.chunk_sentence_vectors(r) for r in range(len(g.chunks))]
    return [c.id for c in g.chunks], np.asarray(g.vectors()), np.concatenate(sentences)


def _cosine(value: float | None) -> str:
    return "– (read into other passages)" if value is None else f"{value:.6f}"


def compare_speed(baseline: str, repeats: int, work: Path, quick: bool) -> dict[str, Any]:
    from procstat import revision_src

    old_src = revision_src(ROOT, baseline, work / "baseline")
    out: dict[str, Any] = {}
    for name, corpus in corpora(work, quick).items():
        runs: dict[str, list[dict[str, Any]]] = {"earlier": [], "current": [], "pooled": []}
        for r in range(repeats):
            order = [("earlier", old_src), ("current", ROOT / "src"), ("pooled", ROOT / "src")]
            for label, src in order[r % 3:] + order[:r % 3]:  # each goes first in turn
                runs[label].append(_run(src, corpus, work / f"index-{label}",
                                        "pooled" if label == "pooled" else "separate"))
                print(f"{name} {label}: {runs[label][-1]}", file=sys.stderr, flush=True)
        ids_old, vec_old, sent_old = _vectors(work / "index-earlier")
        ids_new, vec_new, sent_new = _vectors(work / "index-current")
        same = ids_old == ids_new and sent_old.shape == sent_new.shape  # else the revisions read the files apart
        row: dict[str, Any] = {
            "min_cosine": float(min((vec_old * vec_new).sum(1).min(), (sent_old * sent_new).sum(1).min()))
            if same else None}
        for label, results in runs.items():
            row[label] = {"seconds": statistics.median(x["seconds"] for x in results),
                          "embed_seconds": statistics.median(x["embed_seconds"] for x in results),
                          "passages": results[0]["passages"], "texts": results[0]["texts"],
                          "documents": results[0]["documents"], "all_seconds": [x["seconds"] for x in results]}
            row[label]["passages_per_s"] = row[label]["passages"] / row[label]["seconds"]
        row["speedup"] = row["current"]["passages_per_s"] / row["earlier"]["passages_per_s"]
        row["pooled_speedup"] = row["pooled"]["passages_per_s"] / row["earlier"]["passages_per_s"]
        out[name] = row
    return out


def pooled_sentences(embedder: Any, chunks: Sequence[Any]) -> list[np.ndarray]:
    """Sentence vectors from one pass over each passage: the mean of the passage's last token states over the
    sentence's tokens, normalized."""
    from aidsearch.chunk import passage_sentences

    prompt = (embedder.model.prompts or {}).get("document", "")
    texts = [prompt + c.embed_text() for c in chunks]
    batch = embedder.model.tokenizer(texts, padding=True, truncation=True, max_length=512,
                                     return_offsets_mapping=True, return_tensors="np")
    offsets = batch.pop("offset_mapping")
    states = embedder.token_states(batch["input_ids"], batch["attention_mask"])
    out = []
    for i, c in enumerate(chunks):
        base = len(prompt) + (len(c.context) + 1 if c.context else 0)
        real = offsets[i][: int(batch["attention_mask"][i].sum())]
        vectors = []
        for s in passage_sentences(c.text):
            inside = (real[:, 0] >= base + s.start) & (real[:, 1] <= base + s.end) & (real[:, 1] > real[:, 0])
            v = states[i, np.flatnonzero(inside) if inside.any() else np.arange(len(real))].mean(0)
            vectors.append(v / np.linalg.norm(v))
        out.append(np.array(vectors, dtype=np.float32).reshape(-1, states.shape[-1]))
    return out


def compare_sentences(limit: int | None) -> dict[str, Any]:
    from aidsearch.chunk import passage_sentences
    from aidsearch.config import load_settings
    from aidsearch.embed import load_embedder
    from aidsearch.store import IndexStore

    embedder = load_embedder(load_settings())
    out: dict[str, Any] = {}
    for name, index, questions in SETS:
        if not (ROOT / index).is_dir():
            continue
        g = IndexStore(ROOT / index).load()
        rows_of: dict[str, list[int]] = {}
        for r, c in enumerate(g.chunks):
            rows_of.setdefault(c.source, []).append(r)
        qs = [json.loads(line) for line in (ROOT / questions).read_text(encoding="utf-8").splitlines() if line.strip()]
        qs = [q for q in qs if q.get("answers") and any(s in rows_of for s in q.get("relevant", []))][:limit]
        rows = sorted({r for q in qs for s in q["relevant"] for r in rows_of.get(s, [])})
        pooled: dict[int, np.ndarray] = {}
        for i in range(0, len(rows), 16):
            part = rows[i:i + 16]
            pooled.update(zip(part, pooled_sentences(embedder, [g.chunks[r] for r in part])))
        hits = {"separate": 0, "pooled": 0}
        asked = 0
        for q, v in zip(qs, embedder.encode_queries([q["query"] for q in qs])):
            cand = [r for s in q["relevant"] for r in rows_of.get(s, [])]
            texts = [s.text.lower() for r in cand for s in passage_sentences(g.chunks[r].text)]
            if not texts:
                continue
            asked += 1
            for label, vectors in (("separate", [g.chunk_sentence_vectors(r) for r in cand]),
                                   ("pooled", [pooled[r] for r in cand])):
                best = texts[int(np.argmax(np.concatenate(vectors) @ v))]
                hits[label] += any(a.lower() in best for a in q["answers"])
        out[name] = {"questions": asked, **{k: n / asked for k, n in hits.items()}}
    return out


def compare_answers(work: Path) -> dict[str, Any]:
    """The default answerer on the validation sets, on the indexes of ``make eval-data`` and on the same corpora
    indexed with ``sentence_vectors`` "pooled" (the shipped learned parameters in both)."""
    import bench_answers

    sets = []
    for s in bench_answers.SETS:
        if s.kind != "validation" or not (ROOT / s.index).is_dir():
            continue
        from aidsearch.store import IndexStore

        corpus = Path(IndexStore(ROOT / s.index).load().manifest["corpus"])
        pooled = work / f"pooled-{Path(s.index).name}"
        env = {**os.environ, **bench_scale.ENV, "AIDSEARCH_SENTENCE_VECTORS": "pooled"}
        subprocess.run([sys.executable, "-m", "aidsearch", "index", str(corpus), "--index-dir", str(pooled)],
                       check=True, capture_output=True, env=env, cwd=ROOT)
        sets += [s, bench_answers.EvalSet(f"{s.name}, pooled", s.kind, str(pooled), s.questions)]
    bench_answers.SETS = tuple(sets)
    results = bench_answers.run(None, {"reader": bench_answers.CONFIGS["reader"]})
    out: dict[str, Any] = {}
    for s in sets[::2]:
        out[s.name] = {}
        for label, name in (("separate", s.name), ("pooled", f"{s.name}, pooled")):
            o = results[name]["configs"]["reader"]["groups"]["overall"]
            out[s.name][label] = {k: o[k] for k in ("questions", "recall_1", "cited_first", "accuracy")}
    return out


def embedding_share(work: Path, repeats: int) -> dict[str, Any]:
    """Seconds to embed the short texts' passages alone and with their sentences (current code)."""
    from aidsearch.chunk import chunk_document, passage_sentences
    from aidsearch.config import load_settings
    from aidsearch.embed import load_embedder
    from aidsearch.ingest import iter_corpus, read_document

    settings = load_settings()
    embedder = load_embedder(settings)
    root = work / "short"
    chunks = [c for p in iter_corpus(root) for c in chunk_document(read_document(p, root), embedder.count_tokens,
                                                                    max_tokens=settings.chunk_tokens,
                                                                    overlap=settings.chunk_overlap)]
    passages = [c.embed_text() for c in chunks]
    sentences = [c.sentence_text(s.text) for c in chunks for s in passage_sentences(c.text)]
    times: dict[str, list[float]] = {"passages_s": [], "both_s": []}
    for _ in range(repeats):
        for label, texts in (("passages_s", passages), ("both_s", passages + sentences)):
            t0 = time.perf_counter()
            embedder.encode_passages(texts)
            times[label].append(time.perf_counter() - t0)
    return {"passages": len(passages), "sentences": len(sentences),
            **{k: statistics.median(v) for k, v in times.items()}}


def render(data: dict[str, Any]) -> str:
    lines = ["# Indexing speed", "",
             f"Generated by `.venv/bin/python {data['command']}` on {data['date']} ({data['machine']}); CPU used by "
             f"other processes during the run: {data['contention']:.0%}. Medians of {data['repeats']} repeats of the "
             "earlier code, the current code and the current code with `sentence_vectors` pooled, each going first in "
             "turn, each in its own process with the model loaded (model load not counted).",
             "",
             f"*earlier*: revision `{data['baseline']}` (texts embedded 32 at a time, sorted by length); *current*: "
             "each distinct text embedded once, in batches of about `batch_tokens` padded tokens.", "",
             "| corpus | documents | passages | texts embedded (passages and sentences) | earlier: s, passages/s "
             "| current: s, passages/s | speed-up | lowest cosine between the two builds' vectors "
             "| current, `sentence_vectors` pooled: s, passages/s | speed-up |",
             "|---|---:|---:|---:|---|---|---:|---:|---|---:|"]
    for name, row in data["speed"].items():
        e, c, pl = row["earlier"], row["current"], row.get("pooled")
        lines.append(f"| {name} | {c['documents']:,} | {c['passages']:,} | {e['texts']:,} → {c['texts']:,} | "
                     f"{e['seconds']:.1f}, {e['passages_per_s']:.2f} | {c['seconds']:.1f}, {c['passages_per_s']:.2f} "
                     f"| {row['speedup']:.2f}× | {_cosine(row['min_cosine'])} | "
                     + (f"{pl['seconds']:.1f}, {pl['passages_per_s']:.2f} | {row['pooled_speedup']:.2f}× |"
                        if pl else "– | – |"))
    if data.get("answers"):
        lines += ["", "## Answers with pooled sentence vectors", "",
                  "The default answerer (learned fusion and sentence scores, answer reader; the shipped parameters, "
                  "fitted with sentences embedded on their own) on the validation questions, on the indexes of "
                  "`make eval-data` and on the same corpora indexed with `sentence_vectors` \"pooled\" in this run.",
                  "", "| set | questions | R@1 separate → pooled | cited first separate → pooled "
                  "| answer accuracy separate → pooled |", "|---|---:|---|---|---|"]
        for name, row in data["answers"].items():
            a, b = row["separate"], row["pooled"]
            lines.append(f"| {name} | {a['questions']:,} | {a['recall_1']:.3f} → {b['recall_1']:.3f} | "
                         f"{a['cited_first']:.3f} → {b['cited_first']:.3f} | "
                         f"{a['accuracy']:.3f} → {b['accuracy']:.3f} |")
    share = data.get("embedding")
    if share:
        lines += ["", "## One forward pass per passage", "",
                  f"Embedding the short texts' {share['passages']:,} passages alone took {share['passages_s']:.1f} s, "
                  f"with their {share['sentences']:,} sentences {share['both_s']:.1f} s: sentence vectors pooled from "
                  f"the passage's token states would save at most {1 - share['passages_s'] / share['both_s']:.0%} of "
                  "the embedding time."]
    if data.get("sentences"):
        lines += ["", "Answer selection with each kind of sentence vector: share of validation questions whose most "
                  "similar sentence of the relevant passages (cosine with the question) holds a gold answer.", "",
                  "| set | questions | sentences embedded on their own | pooled from the passage |",
                  "|---|---:|---:|---:|"]
        for name, row in data["sentences"].items():
            lines.append(f"| {name} | {row['questions']:,} | {row['separate']:.3f} | {row['pooled']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=3, metavar=("SRC", "CORPUS", "INDEX"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "indexing.md")
    parser.add_argument("--quick", action="store_true", help="100 short texts, one report, no pooled comparison")
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    from procstat import ForeignCpu, save_report

    with tempfile.TemporaryDirectory(prefix="aidsearch-indexing-") as tmp, ForeignCpu() as foreign:
        work = Path(tmp)
        data: dict[str, Any] = {
            "command": " ".join(["benchmarks/bench_indexing.py", *(argv if argv is not None else sys.argv[1:])]),
            "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                       f"Python {platform.python_version()}",
            "baseline": args.baseline, "repeats": args.repeats,
            "speed": compare_speed(args.baseline, args.repeats, work, args.quick),
        }
        if not args.quick:
            data["embedding"] = embedding_share(work, args.repeats)
            data["sentences"] = compare_sentences(None)
            data["answers"] = compare_answers(work)
    data["contention"] = foreign.share
    save_report(args.out, data, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
