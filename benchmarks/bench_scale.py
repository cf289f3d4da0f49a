"""How aidsearch's cost grows with real, distinct passages: indexing, search and ask latency, filtered search,
one-document updates, HNSW recall, memory, disk, cold start, 50 concurrent users and the command line.

Usage: .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,10000,all,100000] [--cache DIR]
                                                 [--out docs/benchmarks/scale.md] [--quick] [--fill]

- Texts: data/devaid-large/texts.jsonl.xz (distinct real aid-project texts, see data/README.md) except those of
  the sources the evaluation corpus is built from, one Markdown document each (title, text, country and funder
  lines); a size below the total is a fixed random sample (seed 0), a size above it adds overlapping word windows
  of the longer texts (real text, not fully distinct). Every index also holds the evaluation corpus
  (eval/build_corpus.py: 1,205 documents, four of them long PDF reports), so that the questions have answers and
  ``ask`` runs its whole answer stage.
- Vectors: every passage and sentence is embedded by the bundled model once and kept in a cache (``--cache``,
  default benchmarks/out/scale-cache, outside git): the first run takes hours, reruns reuse it. The embedding rate
  of the run that filled the cache is stored with it; the end-to-end indexing rate is measured each run on a
  1,000-text sample without the cache.
- Questions: the distinct questions of eval/questions.jsonl and eval/heldout.jsonl (human-written, about the
  evaluation corpus; a few have no answer in it).
- Each size is measured in a fresh process (cold start, latencies, recall, memory, update), then served by
  ``app.py`` to 50 concurrent users twice, side by side: one question per model pass (``micro_batch`` 1) and
  micro-batched (the default); the command line is timed without and with the running server.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from procstat import status_mib

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ROOT / "data" / "devaid-large" / "texts.jsonl.xz"
QUESTION_FILES = (ROOT / "eval" / "questions.jsonl", ROOT / "eval" / "heldout.jsonl")
DEFAULT_CACHE = ROOT / "benchmarks" / "out" / "scale-cache"
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "GRADIO_ANALYTICS_ENABLED": "False", "AIDSEARCH_AUTH": ""}
SHARD = 4096  # texts embedded and saved to the cache at a time (an interrupted fill resumes from the last shard)
WINDOW, STRIDE, MIN_WINDOW_TEXT = 50, 25, 100  # words; the 100k point's windows of texts of >= 100 words
UPDATE_FILE = "update.json"  # the document the measured process adds, written beside its index (all texts stay out)
RATE_SAMPLE = 1000  # texts indexed without the cache, for the end-to-end indexing rate
USERS, LOAD_SECONDS = 50, 30
CLI_QUESTIONS = 25  # distinct questions asked with `aidsearch ask --server`, one command each
LOAD_GOAL_S = 0.8  # the p50 the goals ask of 50 users
FILTERS = ({"lang": "fr"}, {"lang": "en"})
GOAL_SIZE = 64_000  # passages: the size the goals are set for


def load_texts() -> list[dict[str, Any]]:
    """The texts of devaid-large that the evaluation corpus does not already hold (another source)."""
    sys.path.insert(0, str(ROOT / "eval"))
    from build_corpus import SOURCES

    with lzma.open(TEXTS, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [t for t in rows if t["source"] not in SOURCES and t["source"] != "devaid_corpus_sample"]


def load_questions() -> list[str]:
    seen: dict[str, None] = {}
    for path in QUESTION_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen.setdefault(json.loads(line)["query"].strip(), None)
    return list(seen)


def windows(texts: Sequence[dict[str, Any]], count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` overlapping windows of WINDOW words (every STRIDE words) of the texts of >= MIN_WINDOW_TEXT words."""
    out = []
    for t in texts:
        words = t["text"].split()
        if len(words) >= MIN_WINDOW_TEXT:
            for start in range(0, len(words) - WINDOW + 1, STRIDE):
                out.append({**t, "id": f"{t['id']}@{start}", "source": f"{t['source']}-windows",
                            "text": " ".join(words[start:start + WINDOW])})
    random.Random(seed).shuffle(out)
    if len(out) < count:
        raise SystemExit(f"error: only {len(out):,} windows for {count:,}")
    return out[:count]


def select(texts: Sequence[dict[str, Any]], size: int, seed: int = 0) -> list[dict[str, Any]]:
    """``size`` texts: a seeded sample below the total, all of them, or all plus windows above it."""
    if size <= len(texts):
        rows = list(range(len(texts)))
        random.Random(seed).shuffle(rows)
        return [texts[i] for i in sorted(rows[:size])]
    return list(texts) + windows(texts, size - len(texts), seed)


def _name(t: dict[str, Any]) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", t["id"])[:60]
    return f"{t['source']}/{safe}-{hashlib.sha1(t['id'].encode()).hexdigest()[:8]}.md"


def write_corpus(rows: Sequence[dict[str, Any]], folder: Path) -> None:
    for t in rows:
        path = folder / "devaid-large" / _name(t)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"# {t['title']}", "", t["text"], ""]
        lines += [f"{label}: {t[key]}" for label, key in (("Country", "country"), ("Funder", "org")) if t.get(key)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class CachedEmbedder:
    """The real embedder with a disk cache of passage and sentence vectors, keyed by the text embedded."""

    def __init__(self, inner: Any, folder: Path, log: Any = None) -> None:
        self.inner, self.info, self.folder, self.log = inner, inner.info, Path(folder), log
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, int] = {}
        parts = []
        for path in sorted(self.folder.glob("shard-*.npz")):
            with np.load(path) as z:
                for key in z["keys"]:
                    self.rows[str(key)] = len(self.rows)
                parts.append(z["vectors"])
        self.parts: list[np.ndarray] = parts  # one array per shard, joined once per call
        self.embedded = 0
        self.embed_seconds = 0.0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def fill_stats(self) -> dict[str, float]:
        texts = seconds = 0.0
        for path in sorted(self.folder.glob("shard-*.npz")):
            with np.load(path) as z:
                texts += len(z["keys"])
                seconds += float(z["seconds"])
        return {"texts": int(texts), "seconds": seconds, "texts_per_s": texts / seconds if seconds else 0.0}

    def encode_passages(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in self.rows:
                missing.setdefault(k, t)
        if progress:
            progress(len(texts) - len(missing))
        todo = sorted(missing.items(), key=lambda kv: -len(kv[1]))
        for start in range(0, len(todo), SHARD):
            part = todo[start:start + SHARD]
            t0 = time.perf_counter()
            vecs = np.asarray(self.inner.encode_passages([t for _, t in part]), dtype=np.float32)
            took = time.perf_counter() - t0
            self.embedded += len(part)
            self.embed_seconds += took
            shard = self.folder / f"shard-{len(list(self.folder.glob('shard-*.npz'))):05d}.npz"
            tmp = shard.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array([k for k, _ in part]), vectors=vecs, seconds=np.float64(took))
            os.replace(tmp, shard)
            for k, _ in part:
                self.rows[k] = len(self.rows)
            self.parts.append(vecs)
            if progress:
                progress(len(part))
            if self.log:
                self.log(f"embedded {start + len(part):,}/{len(todo):,} new texts "
                         f"({len(part) / took:.1f} texts/s in the last {len(part):,})")
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0][[self.rows[k] for k in keys]] if keys else np.zeros((0, self.info.dimension), np.float32)


def evaluation_corpus(folder: Path, seeds_only: bool = False) -> Path:
    """The evaluation corpus, built from the committed records into ``folder`` (only its five seed pages when
    ``seeds_only``, for the quick run)."""
    if not folder.is_dir():
        subprocess.run([sys.executable, str(ROOT / "eval" / "build_corpus.py"), "--out", str(folder)], check=True,
                       capture_output=True)
        for sub in (p for p in folder.iterdir() if seeds_only and p.is_dir()):
            shutil.rmtree(sub)
    return folder


def build(rows: Sequence[dict[str, Any]], work: Path, embedder: Any, evaluation: Path | None) -> dict[str, Any]:
    """Write the documents (and a copy of the evaluation corpus) and index them with ``embedder``: documents,
    passages, seconds, texts embedded."""
    from aidsearch.config import load_settings
    from aidsearch.indexer import build_index

    corpus, index = work / "corpus", work / "index"
    write_corpus(rows, corpus)
    if evaluation:
        shutil.copytree(evaluation, corpus / "eval")
    settings = load_settings(corpus_dir=corpus, index_dir=index)
    t0 = time.perf_counter()
    report = build_index(settings, embedder)
    seconds = time.perf_counter() - t0
    return {"documents": report.documents, "passages": report.chunks, "texts": report.embedded_texts,
            "seconds": seconds, "embed_seconds": report.timings["embed"], "passages_per_s": report.chunks / seconds,
            "skipped": len(report.skipped)}


def _log(msg: str) -> None:
    print(f"{datetime.now(timezone.utc):%H:%M:%S} {msg}", file=sys.stderr, flush=True)


def _real_embedder() -> Any:
    from aidsearch.config import load_settings
    from aidsearch.embed import load_embedder

    return load_embedder(load_settings())


def fill(sizes: Sequence[int], cache: Path, work: Path, seeds_only: bool = False) -> None:
    """Embed every text the sizes need into the cache (resumable)."""
    texts = load_texts()
    evaluation = evaluation_corpus(work / "evaluation", seeds_only)
    embedder = CachedEmbedder(_real_embedder(), cache, _log)
    for size in sorted(sizes):
        folder = work / f"fill-{size}"
        _log(f"filling the cache for {size:,} texts ({len(embedder.rows):,} vectors cached)")
        out = build(select(texts, size), folder, embedder, evaluation)
        _log(json.dumps(out))
        shutil.rmtree(folder, ignore_errors=True)


def _pct(values: Sequence[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def _timed_ms(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - t) * 1000, out


def update_text(texts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A real text no index of the benchmark holds: a window of the longest text at an offset no window uses."""
    longest = max(texts, key=lambda t: len(t["text"]))
    words = longest["text"].split()
    start = STRIDE // 2
    return {**longest, "id": f"{longest['id']}@update", "source": "update",
            "text": " ".join(words[start:start + WINDOW])}


def exact_top(index: Any, queries: np.ndarray, k: int, block: int = 8192) -> np.ndarray:
    """Ids of the ``k`` rows most similar to each query by exact inner product over the vectors as the index holds
    them (only an HNSW graph approximates), a block of rows at a time so the benchmark adds little to the peak
    memory it reports."""
    storage = index.storage if hasattr(index, "hnsw") else index
    best = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, index.ntotal, block):
        rows = storage.reconstruct_n(start, min(block, index.ntotal - start))
        best = np.concatenate([best, queries @ rows.T], axis=1)
        ids = np.concatenate([ids, np.broadcast_to(np.arange(start, start + len(rows)), (len(queries), len(rows)))],
                             axis=1)
        keep = np.argsort(-best, axis=1, kind="stable")[:, :k]
        best, ids = np.take_along_axis(best, keep, 1), np.take_along_axis(ids, keep, 1)
    return ids


def measure(index: Path, corpus: Path, questions: Sequence[str]) -> dict[str, Any]:
    """Runs in a fresh process: cold start, warm latencies, filtered search, HNSW recall, memory, one-document
    update."""
    t0 = time.perf_counter()
    from aidsearch.api import open_index
    from aidsearch.config import load_settings

    update = json.loads((index.parent / UPDATE_FILE).read_text(encoding="utf-8"))
    ix = open_index(settings=load_settings(index_dir=index, corpus_dir=corpus))
    opened = time.perf_counter()
    ix.ask(questions[0])
    out: dict[str, Any] = {"open_s": opened - t0, "first_answer_s": time.perf_counter() - t0,
                           "rss_loaded_mib": status_mib("VmRSS")}
    search_ms = [_timed_ms(ix.search, q, k=10)[0] for q in questions]
    ask_ms, parts, found = [], {"embed": [], "retrieve": [], "answer": []}, 0
    for q in questions:
        took, answer = _timed_ms(ix.ask, q)
        ask_ms.append(took)
        found += answer.found
        for key in parts:
            parts[key].append(answer.timings_ms.get(key, 0.0))
    filtered = {}
    for flt in FILTERS:
        (key, value), = flt.items()
        filtered[f"{key}={value}"] = _pct([_timed_ms(ix.search, q, k=10, filters=flt)[0] for q in questions], 50)
    r = ix.retriever()
    query_vectors = np.asarray(ix.embedder.encode_queries(questions), dtype=np.float32)
    faiss_index = r.gen.faiss_index
    _, approx = faiss_index.search(query_vectors, 10)
    exact = exact_top(faiss_index, query_vectors, 10)
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))
    words = [len(c.text.split()) for c in r.chunks]
    out.update({
        "faiss": r.gen.manifest.get("faiss"), "passages": len(r.chunks), "documents": len(r.doc_list),
        "passage_words_p50": statistics.median(words), "languages": r.gen.manifest.get("languages", {}),
        "search_p50_ms": _pct(search_ms, 50), "search_p95_ms": _pct(search_ms, 95),
        "ask_p50_ms": _pct(ask_ms, 50), "ask_p95_ms": _pct(ask_ms, 95),
        "ask_parts_p50_ms": {k: statistics.median(v) for k, v in parts.items()},
        "filtered_p50_ms": filtered, "hnsw_recall_at_10": recall, "questions": len(questions), "answered": found,
        "peak_mib": status_mib("VmHWM"),
    })
    write_corpus([update], corpus)
    t = time.perf_counter()
    report = ix.update()
    out["update_s"] = time.perf_counter() - t
    out["update_added"] = len(report.added)
    out["peak_with_update_mib"] = status_mib("VmHWM")
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wall(cmd: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``cmd`` (with the benchmark's environment and ``env``); SystemExit with its error if it
    fails."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ENV, **(env or {})})
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[:5])}… ({env or ''}): {proc.stderr.strip()[-300:]}")
    return wall


def load(url: str, questions: Sequence[str], users: int, seconds: float) -> dict[str, Any]:
    """``users`` clients at once, each asking the next question as soon as it has its answer, for ``seconds``."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    end = [0.0]
    barrier = threading.Barrier(users, action=lambda: end.__setitem__(0, time.monotonic() + seconds))

    def user(n: int) -> None:
        i = n * 5
        with httpx.Client(base_url=url, timeout=300) as client:
            barrier.wait()
            while time.monotonic() < end[0]:
                q = questions[i % len(questions)]
                i += 1
                t = time.perf_counter()
                try:
                    resp = client.post("/api/ask", json={"question": q})
                    ok = resp.status_code == 200 and "answer" in resp.json()
                    problem = None if ok else f"HTTP {resp.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                with lock:
                    if problem:
                        errors.append(problem)
                    else:
                        latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"users": users, "seconds": seconds, "answered": len(latencies), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5], "p50_s": _pct(latencies, 50), "p95_s": _pct(latencies, 95)}


@contextmanager
def app(index: Path, corpus: Path, env: dict[str, str], log_path: Path | None = None) -> Iterator[str]:
    """``app.py`` serving ``index`` on a free loopback port (its URL), stopped on exit; its output goes to
    ``log_path`` (default: ``server.log`` beside the index)."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_path or index.parent / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                                 "--index-dir", str(index), "--corpus-dir", str(corpus)],
                                env={**os.environ, **ENV, **env}, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 900
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"error: the app did not start: {log_path.read_text()[-500:]}")
                try:
                    if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def serve(index: Path, corpus: Path, questions: Sequence[str], users: int, seconds: float,
          cli_runs: int) -> dict[str, Any]:
    """The command line without a server, then the app one question per model pass (``micro_batch`` 1) and with
    the default micro-batching, side by side: ``users`` concurrent users, and the command line with the server."""
    def cli(question: str) -> list[str]:
        return [sys.executable, "-m", "aidsearch", "ask", question, "--index-dir", str(index)]

    out: dict[str, Any] = {"cli_cold_s": _wall(cli(questions[1]) + ["--local"])}
    for key, batch in (("load_one_at_a_time", 1), ("load", None)):
        with app(index, corpus, {"AIDSEARCH_MICRO_BATCH": str(batch)} if batch else {}) as url:
            out[key] = load(url, questions, users, seconds)
            if batch is None:  # distinct questions, one command each, after the load has ended
                walls = [_wall(cli(q) + ["--server", url]) for q in questions[1:1 + cli_runs]]
                out["cli_server_s"], out["cli_server_p95_s"] = statistics.median(walls), _pct(walls, 95)
                out["cli_server_runs"] = len(walls)
    return out


def run(args: argparse.Namespace, sizes: Sequence[int], work: Path, argv: Sequence[str] | None) -> int:
    from procstat import ForeignCpu, repo_relative

    texts = load_texts()
    questions = load_questions()[:12] if args.quick else load_questions()
    users, seconds = (5, 3.0) if args.quick else (USERS, LOAD_SECONDS)
    evaluation = evaluation_corpus(work / "evaluation", seeds_only=args.quick)
    embedder = CachedEmbedder(_real_embedder(), args.cache, _log)
    _log(f"indexing {min(RATE_SAMPLE, sizes[0]):,} texts without the cache")
    with ForeignCpu() as foreign:
        rate = build(select(texts, min(RATE_SAMPLE, sizes[0]), seed=1), work / "rate", embedder.inner, None)
    rate["contention"] = foreign.share
    shutil.rmtree(work / "rate", ignore_errors=True)
    rows = []
    for size in sizes:
        folder = work / f"n{size}"
        _log(f"{size:,} texts: building with cached vectors")
        built = build(select(texts, size), folder, embedder, evaluation)
        (folder / UPDATE_FILE).write_text(json.dumps(update_text(texts)), encoding="utf-8")  # not read in the measure
        with ForeignCpu() as foreign:
            out = subprocess.run([sys.executable, __file__, "--measure", str(folder), "--questions",
                                  str(len(questions))], capture_output=True, text=True, env={**os.environ, **ENV})
        if out.returncode != 0:
            raise SystemExit(f"error: measuring {size:,}: {out.stderr[-2000:]}")
        row = {"texts": size, "windows": max(0, size - len(texts)), "build": built,
               "disk_mib": sum(p.stat().st_size for p in (folder / "index").rglob("*") if p.is_file()) / 2**20,
               **json.loads(out.stdout.strip().splitlines()[-1]), "contention": foreign.share}
        _log(f"{size:,} texts: serving")
        with ForeignCpu() as foreign:
            row.update(serve(folder / "index", folder / "corpus", questions, users, seconds,
                             3 if args.quick else CLI_QUESTIONS))
        row["serve_contention"] = foreign.share
        rows.append(row)
        _log(json.dumps(row))
        shutil.rmtree(folder, ignore_errors=True)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/bench_scale.py", *map(shlex.quote, argv or sys.argv[1:])]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "source": str(TEXTS), "total_texts": len(texts), "question_files": [str(p) for p in QUESTION_FILES],
        "rate": rate, "fill": embedder.fill_stats(), "embedded_this_run": embedder.embedded, "rows": rows,
    }
    result = repo_relative(result, ROOT)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.with_suffix(".json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
    out_path.write_text(render(result), encoding="utf-8")
    return 0


GOALS = (  # (name, row value, limit, shown as, lower is better)
    ("search p50", lambda r: r["search_p50_ms"], 40, "{:.0f} ms", True),
    ("ask p50", lambda r: r["ask_p50_ms"], 150, "{:.0f} ms", True),
    ("filtered search p50", lambda r: max(r["filtered_p50_ms"].values()), 60, "{:.0f} ms", True),
    ("recall@10 of FAISS", lambda r: r["hnsw_recall_at_10"], 0.97, "{:.3f}", False),
    ("peak memory", lambda r: r["peak_with_update_mib"], 2048, "{:.0f} MiB", True),
    ("one-document update", lambda r: r["update_s"], 5, "{:.1f} s", True),
    ("50 users p50", lambda r: r["load"]["p50_s"], LOAD_GOAL_S, "{:.2f} s", True),
    ("`aidsearch ask` with a running server", lambda r: r["cli_server_s"], 0.5, "{:.2f} s", True),
)


def goals(row: dict[str, Any]) -> list[str]:
    out = []
    for name, value, limit, shown, lower in GOALS:
        v = value(row)
        met = v <= limit if lower else v >= limit
        name = f"{name} ({row.get('faiss', 'hnsw')})" if name.startswith("recall") else name
        out.append(f"{name} {shown.format(v)} (goal {'≤' if lower else '≥'} {shown.format(limit)}): "
                   f"{'met' if met else 'NOT met'}")
    if row["load"]["errors"]:
        out.append(f"50 users: {row['load']['errors']} errors (goal 0): NOT met")
    return out


def render(result: dict[str, Any]) -> str:
    rate, fill_rate, rows = result["rate"], result["fill"], result["rows"]
    lines = [
        "# Scale benchmark", "",
        f"Generated by `{result['command']}` on {result['date']}.", "",
        f"- Machine: {result['machine']}.",
        f"- Texts: `{result['source']}` without the sources the evaluation corpus is built from: "
        f"{result['total_texts']:,} distinct real aid-project texts, one document each; a smaller size is a fixed "
        "random sample of them. Every index also holds the evaluation corpus (`eval/build_corpus.py`: aid records "
        "one file each, the five seed pages and four long PDF reports), which the questions are about. "
        + (f"The {max(r['texts'] for r in rows):,} point adds overlapping {WINDOW}-word windows (every {STRIDE} "
           f"words) of the texts of ≥ {MIN_WINDOW_TEXT} words: real text, **not fully distinct**."
           if any(r["windows"] for r in rows) else ""),
        f"- Questions: {rows[0]['questions']} distinct human-written questions ("
        + ", ".join(f"`{p}`" for p in result["question_files"])
        + f"), each asked once per measure (no repeats; {rows[0]['answered']} of them answered, the others "
        "declined); filtered search adds the filters "
        + ", ".join(f"`{k}`" for k in rows[0]["filtered_p50_ms"]) + ".",
        f"- Indexing end to end (reading, chunking, embedding passages and their sentences, writing), "
        f"{rate['documents']:,} texts without the vector cache: {rate['passages']:,} passages, {rate['texts']:,} texts "
        f"embedded in {rate['seconds']:.0f} s: **{rate['passages_per_s']:.2f} passages/s** "
        f"({rate['texts'] / rate['embed_seconds']:.1f} texts/s while embedding; CPU used by other processes "
        f"{rate['contention']:.0%}).",
        f"- Vectors of the sizes below come from a cache filled once by the bundled model ({fill_rate['texts']:,} "
        f"texts, {fill_rate['seconds'] / 3600:.1f} h of embedding, not always on an idle machine: the rate that "
        f"counts is the one above); {result['embedded_this_run']:,} texts were embedded by this run. The build times "
        "below use the cache: they are the cost of everything but embedding.",
        "",
        "| devaid-large texts | passages (with the evaluation corpus) | words per passage (median) | languages "
        "| FAISS | build, cached vectors (s) "
        "| disk (MiB) | open (s) | first answer (s) | search p50 / p95 (ms) | ask p50 / p95 (ms) "
        "| ask parts p50: embed / retrieve / answer (ms) | filtered search p50 (ms) | recall@10 of FAISS "
        "| one-document update (s) | RSS loaded (MiB) | peak (MiB) | CPU used by others |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        p = r["ask_parts_p50_ms"]
        langs = ", ".join(f"{k} {v / r['documents']:.0%}" for k, v in
                          sorted(r["languages"].items(), key=lambda kv: -kv[1])[:3])
        label = f"{r['texts']:,}" + (f" ({r['windows']:,} windows)" if r["windows"] else "")
        lines.append(
            f"| {label} | {r['passages']:,} | {r['passage_words_p50']:.0f} | {langs} | {r['faiss']} | "
            f"{r['build']['seconds']:.0f} | {r['disk_mib']:.0f} | {r['open_s']:.1f} | {r['first_answer_s']:.1f} | "
            f"{r['search_p50_ms']:.0f} / {r['search_p95_ms']:.0f} | {r['ask_p50_ms']:.0f} / {r['ask_p95_ms']:.0f} | "
            f"{p['embed']:.0f} / {p['retrieve']:.0f} / {p['answer']:.0f} | "
            + ", ".join(f"{k}: {v:.0f}" for k, v in r["filtered_p50_ms"].items())
            + f" | {r['hnsw_recall_at_10']:.3f} | {r['update_s']:.1f} | {r['rss_loaded_mib']:.0f} | "
              f"{r['peak_with_update_mib']:.0f} | {r['contention']:.0%} |")
    lines += [
        "", f"Served by `app.py` on loopback: {rows[0]['load']['users']} users at once, each asking the next question "
            f"as soon as it has its answer, for {rows[0]['load']['seconds']:.0f} s, first with one question per "
            "model pass (`micro_batch` 1), then with concurrent questions sharing passes (the default); the "
            "command line's "
            "`aidsearch ask` started cold (`--local`) and with the server running ("
            + (f"p50 / p95 of {rows[0]['cli_server_runs']} distinct questions, one command each)."
               if "cli_server_p95_s" in rows[0] else f"median of {rows[0]['cli_server_runs']} runs of one question)."),
            "",
        "| devaid-large texts | answers in the time, one question per model pass → micro-batched | errors "
        "| p50 (s) | p95 (s) "
        "| `aidsearch ask` cold (s) | with the server "
        + ("p50 / p95 (s)" if "cli_server_p95_s" in rows[0] else "(s)") + " | CPU used by others |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        one, ld = r["load_one_at_a_time"], r["load"]
        lines.append(f"| {r['texts']:,} | {one['answered']:,} → {ld['answered']:,} | {one['errors']} → {ld['errors']} "
                     f"| {one['p50_s']:.2f} → {ld['p50_s']:.2f} | {one['p95_s']:.2f} → {ld['p95_s']:.2f} "
                     f"| {r['cli_cold_s']:.1f} | {r['cli_server_s']:.2f}"
                     + (f" / {r['cli_server_p95_s']:.2f}" if "cli_server_p95_s" in r else "")
                     + f" | {r['serve_contention']:.0%} |")
    largest = max(rows, key=lambda r: r["passages"])
    ld = largest["load"]
    rate = ld["answered"] / ld["seconds"]
    lines += ["", f"With {ld['users']} users who always wait for an answer, the time an answer takes is about the "
                  f"number of users over the answers per second (Little's law): at {largest['passages']:,} passages "
                  f"{ld['answered']:,} answers in {ld['seconds']:.0f} s is {rate:.1f} answers/s, so about "
                  f"{ld['users'] / rate:.1f} s each; a p50 of {LOAD_GOAL_S} s would need about "
                  f"{ld['users'] / LOAD_GOAL_S:.0f} answers/s, {ld['users'] / LOAD_GOAL_S / rate:.1f}× what this "
                  "machine gives."]
    short = largest["passages"] < GOAL_SIZE
    lines += ["", f"Goals (set for {GOAL_SIZE:,} passages and more{': this run stops below' if short else ''}) at "
                  f"the largest size, {largest['passages']:,} passages: " + "; ".join(goals(largest)) + ".", ""]
    return "\n".join(lines)


def _sizes(text: str, total: int) -> list[int]:
    return [total if s == "all" else int(s) for s in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,all,100000")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "scale.md"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--fill", action="store_true", help="only fill the vector cache")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--questions", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        folder = Path(args.measure)
        questions = load_questions()[:args.questions or None]
        print(json.dumps(measure(folder / "index", folder / "corpus", questions)))
        return 0
    os.environ.update(ENV)
    total = len(load_texts())
    sizes = [200, 500] if args.quick else _sizes(args.sizes, total)
    work = Path(tempfile.mkdtemp(prefix="aidsearch-scale-"))
    try:
        if args.fill:
            fill(sizes, args.cache, work, args.quick)
            return 0
        return run(args, sizes, work, argv)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
