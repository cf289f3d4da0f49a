"""Embedding on Ray (``aidsearch index --ray [ADDRESS]``): the indexer reads and chunks the documents as usual and
hands the texts to embed to ``RayEmbedder``, which sends them to a Ray Data ``map_batches`` stage where each worker
actor holds one copy of the model. Blocks of texts come back as they are done and are written to a spill folder in
the index folder, so a run that stops (the machine, the driver) resumes from the blocks already written; a worker
that dies is restarted by Ray and its block embedded again. Without an address, a Ray instance is started on this
machine."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .config import Settings
from .embed import Embedder, Progress
from .errors import ConfigError

BLOCK_TEXTS = 256  # texts per block sent to a worker: the unit of progress, of retry and of resume
SPILL = ".embedding"  # in the index folder; removed once the index is written
log = logging.getLogger("aidsearch")


class EmbedBlocks:
    """A Ray Data worker: one model per actor, ``torch`` threads bounded to the CPUs Ray gave it."""

    def __init__(self, settings: Settings, threads: int) -> None:
        import torch

        from .embed import load_embedder

        torch.set_num_threads(max(1, threads))
        self.embedder = load_embedder(settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        (texts,) = batch["texts"]  # one block per batch
        return {"block": batch["block"], "vectors": self.embedder.encode_passages(list(texts))[None],
                "worker": np.array([f"{socket.gethostname()}:{os.getpid()}"])}


def _key(fingerprint: str, text: str) -> str:
    return hashlib.blake2b(f"{fingerprint}\0{text}".encode("utf-8"), digest_size=16).hexdigest()


class RayEmbedder:
    """An ``Embedder`` whose passages are embedded by ``workers`` Ray actors (queries stay local). ``address``:
    a Ray cluster ("auto", "ray://host:10001"), or None to start Ray on this machine. ``spill``: the folder blocks
    are written to as they arrive. ``stats`` counts the texts embedded and those found already written."""

    def __init__(self, settings: Settings, local: Embedder, *, address: str | None = None, workers: int = 0,
                 spill: Path | None = None, block_texts: int = BLOCK_TEXTS) -> None:
        self.settings, self.local, self.info = settings, local, local.info
        self.address, self.workers, self.block_texts = address, workers, block_texts
        self.spill = spill or Path(settings.index_dir) / SPILL
        self.stats = {"embedded": 0, "resumed": 0, "blocks": 0, "workers": 0}

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.local.encode_queries(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.local.count_tokens(texts)

    def _ray(self) -> Any:
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # Ray Data's own progress lines: the indexer reports
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray needs Ray Data: pip install 'aidsearch[ray]'") from None
        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
                else:
                    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                             logging_level=logging.WARNING)
            except Exception as exc:  # connection refused, bad address: one line
                reason = " ".join(str(exc).split())[:200]
                raise ConfigError(f"cannot start or reach Ray at {self.address or 'this machine'}: {reason}") from None
        ray.data.DataContext.get_current().enable_progress_bars = False
        return ray

    def _written(self) -> dict[str, np.ndarray]:
        """The vectors of the blocks an earlier run wrote, by text key (a block cut short is dropped)."""
        found: dict[str, np.ndarray] = {}
        for path in sorted(self.spill.glob("*.npz")):
            try:
                with np.load(path) as block:
                    found.update(zip(block["keys"].tolist(), block["vectors"]))
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
        return found

    def encode_passages(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Vectors of ``texts`` in their order, each distinct text embedded once on the Ray workers, unless a block
        written by an earlier run holds it."""
        dim = self.info.dimension
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        slot: dict[str, int] = {}
        where = np.fromiter((slot.setdefault(t, len(slot)) for t in texts), dtype=np.int64, count=len(texts))
        distinct = list(slot)
        keys = [_key(self.info.fingerprint, t) for t in distinct]
        copies = np.bincount(where, minlength=len(distinct))
        vectors = np.empty((len(distinct), dim), dtype=np.float32)
        self.spill.mkdir(parents=True, exist_ok=True)
        written = self._written()
        done = np.array([k in written for k in keys], dtype=bool)
        if done.any():
            rows = np.flatnonzero(done)
            vectors[rows] = np.stack([written[keys[r]] for r in rows])
            self.stats["resumed"] += len(rows)
            if progress:
                progress(int(copies[rows].sum()))
        todo = np.flatnonzero(~done)
        if len(todo):
            self._embed(distinct, keys, todo, vectors, copies, progress)
        return vectors[where]

    def _embed(self, distinct: list[str], keys: list[str], todo: np.ndarray, vectors: np.ndarray,
               copies: np.ndarray, progress: Progress | None) -> None:
        ray = self._ray()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        lengths = np.array(self.count_tokens([distinct[r] for r in todo]))
        order = todo[np.argsort(-lengths, kind="stable")]  # blocks of similar length, longest first
        blocks = [order[i:i + self.block_texts] for i in range(0, len(order), self.block_texts)]
        workers = min(self.workers or max(1, cpus), len(blocks))
        threads = max(1, cpus // workers)
        items = [{"block": n, "texts": [distinct[r] for r in rows]} for n, rows in enumerate(blocks)]
        started = time.monotonic()
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            EmbedBlocks, fn_constructor_kwargs={"settings": self.settings, "threads": threads}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads)  # Ray Data restarts dead actors
        seen: set[str] = set()
        for batch in ds.iter_batches(batch_size=1, prefetch_batches=0):
            for n, block, worker in zip(batch["block"], batch["vectors"], batch["worker"]):
                if str(worker) not in seen and len(seen) >= workers:
                    log.warning("Ray: a worker stopped and %s took its place; its block was embedded again", worker)
                seen.add(str(worker))
                rows = blocks[int(n)]
                block = np.asarray(block, dtype=np.float32).reshape(len(rows), -1)
                vectors[rows] = block
                name = self.spill / f"{keys[rows[0]]}-{len(rows)}"
                np.savez(f"{name}.tmp.npz", keys=np.array([keys[r] for r in rows]), vectors=block)
                os.replace(f"{name}.tmp.npz", f"{name}.npz")
                self.stats["embedded"] += len(rows)
                self.stats["blocks"] += 1
                if progress:
                    progress(int(copies[rows].sum()))
        self.stats["workers"] = len(seen)
        log.info("Ray: %d texts embedded by %d worker processes in %.1f s", self.stats["embedded"], len(seen),
                 time.monotonic() - started)

    def finish(self) -> None:
        """Remove the spill folder (call once the index is written)."""
        shutil.rmtree(self.spill, ignore_errors=True)
