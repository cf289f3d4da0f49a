"""Embedding on Ray (``aidsearch index --ray``) with a real local Ray instance and the real bundled model: the index
it writes is the one the local indexer writes; a worker killed during embedding is replaced and nothing is lost or
embedded twice; a run that stops resumes from the blocks it wrote."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aidsearch import open_index
from aidsearch.config import load_settings
from aidsearch.distributed import SPILL, RayEmbedder
from conftest import ROOT
from helpers import devaid_records, write_records

pytestmark = [pytest.mark.model, pytest.mark.slow]
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray") / "corpus"
    write_records(folder, devaid_records(24))
    return folder


@pytest.fixture(scope="module")
def local_index(corpus, embedder):
    return open_index(settings=load_settings(corpus_dir=corpus, index_dir=corpus.parent / "local"), embedder=embedder,
                      create=True)


def _same_index(ix, reference) -> None:
    a, b = ix.retriever(), reference.retriever()
    ids = [c.id for c in a.chunks]
    assert len(set(ids)) == len(ids) and sorted(ids) == sorted(c.id for c in b.chunks)
    order = {c.id: i for i, c in enumerate(b.chunks)}
    mine, theirs = a.gen.vectors().astype(np.float32), b.gen.vectors().astype(np.float32)
    cosines = (mine * theirs[[order[i] for i in ids]]).sum(1)
    assert cosines.min() > 0.999
    assert len(a.gen.sentence_vectors) == len(b.gen.sentence_vectors)


def _worker_pids() -> list[int]:
    """Processes of the embedding actors: Ray titles them ``ray::MapWorker(MapBatches(EmbedBlocks))...``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and title.startswith("ray::") and "EmbedBlocks" in title:
            pids.append(int(proc.name))
    return pids


def test_a_killed_worker_is_replaced_and_nothing_is_lost_or_doubled(local_ray, corpus, local_index, embedder,
                                                                     tmp_path):
    settings = load_settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    ray_embedder = RayEmbedder(settings, embedder, workers=2, block_texts=24)
    done: dict = {}

    def build() -> None:
        try:
            done["ix"] = open_index(settings=settings, embedder=ray_embedder, create=True)
        except BaseException as exc:  # shown by the assertion below
            done["error"] = exc

    worker = threading.Thread(target=build)
    worker.start()
    spill = tmp_path / "index" / SPILL
    deadline = time.monotonic() + 600
    while not (spill.is_dir() and any(spill.glob("*.npz"))) and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.2)
    victims = _worker_pids()
    assert victims, "no embedding worker was running"
    os.kill(victims[0], signal.SIGKILL)
    worker.join(900)
    assert "error" not in done, done.get("error")
    report = done["ix"].created
    assert report.documents == 24 and report.chunks == len(local_index.retriever().chunks)
    blocks = ray_embedder.stats["blocks"]
    assert blocks == len(list(spill.glob("*.npz"))) > 2  # every block written once, the killed one included
    assert ray_embedder.stats["embedded"] == len({t for t in _texts(done["ix"])})
    _same_index(done["ix"], local_index)


def _texts(ix) -> list[str]:
    from aidsearch.chunk import passage_sentences

    chunks = ix.retriever().chunks
    return [c.embed_text() for c in chunks] + [c.sentence_text(s.text) for c in chunks
                                               for s in passage_sentences(c.text)]


class Stop(Exception):
    pass


def test_a_stopped_run_resumes_from_the_blocks_it_wrote(local_ray, corpus, local_index, embedder, tmp_path):
    settings = load_settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    first = RayEmbedder(settings, embedder, workers=2, block_texts=24)

    def stop_after_two_blocks(stage: str, done: int, total: int) -> None:
        if stage == "embed" and first.stats["blocks"] >= 2:
            raise Stop()

    with pytest.raises(Stop):
        open_index(settings=settings, embedder=first, create=True, progress=stop_after_two_blocks)
    written = len(list((tmp_path / "index" / SPILL).glob("*.npz")))
    assert written >= 2
    env = {**os.environ, "RAY_ADDRESS": ""}
    out = subprocess.run([sys.executable, "-m", "aidsearch", "index", str(corpus), "--index-dir",
                          str(tmp_path / "index"), "--ray", "--ray-workers", "1", "--json"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["written"] and data["ray"]["resumed"] >= 2 * 24 and data["ray"]["embedded"] > 0
    assert data["ray"]["resumed"] + data["ray"]["embedded"] == len(set(_texts(local_index)))
    assert not (tmp_path / "index" / SPILL).exists()
    _same_index(open_index(settings=settings, embedder=embedder), local_index)
