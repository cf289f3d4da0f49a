"""The web app under 50 concurrent users: real HTTP to 127.0.0.1, the app in its own process (``app.py``).

Bounded in time (CI form 20 s, full form 60 s) and in count; no request may fail or be lost, latencies and the
server's memory are measured (``test-output/reliability/load-*.json``, docs/RELIABILITY.md).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

import httpx
import pytest

from aidsearch.config import load_settings
from aidsearch.api import open_index
from browser_helpers import free_port
from conftest import ROOT
from helpers import copy_seeds

pytestmark = [pytest.mark.model, pytest.mark.slow]
OUT = ROOT / "test-output" / "reliability"
USERS = 50
MAX_REQUESTS = 20_000
RSS_GROWTH_LIMIT_MB = 150  # after a concurrent warm-up; the first burst itself grows thread pools and arenas
QUESTIONS = [  # (endpoint, body, text expected in the answer or None)
    ("/api/ask", {"question": "Which hospitals in Kosovo receive investments?"}, "Gjilan"),
    ("/api/ask", {"question": "What is the total budget of the Lao-Luxembourg Health Sector Support Programme "
                              "Phase II?"}, "28,400,000"),
    ("/api/ask", {"question": "Quelle est la durée totale du projet au Kosovo ?"}, "156"),
    ("/api/ask", {"question": "What is the price of wheat in Argentina this year?"}, "No answer"),
    ("/api/ask", {"question": "Combien de fonctionnaires locaux ont reçu un appui technique au Laos ?",
                  "filters": {"country": ["Laos"]}}, None),
    ("/api/search", {"query": "LAO/027", "k": 3}, None),
    ("/api/ask", {"question": "老挝卫生项目的总预算是多少？"}, None),
    ("/api/health", None, None),
]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def app_process(tmp_path_factory, embedder):
    """``python app.py`` on a real index of the seed corpus, on a free loopback port."""
    root = tmp_path_factory.mktemp("load")
    settings = load_settings(corpus_dir=copy_seeds(root / "corpus"), index_dir=root / "index")
    open_index(settings=settings, embedder=embedder, create=True)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "TOKENIZERS_PARALLELISM": "false", "AIDSEARCH_AUTH": ""}
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                             "--index-dir", str(settings.index_dir), "--corpus-dir", str(settings.corpus_dir)],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        assert proc.poll() is None, (root / "server.log").read_text()
        try:
            if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the app did not start"
        time.sleep(0.5)
    yield url, proc, root / "server.log"
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    shutil.rmtree(root / "corpus", ignore_errors=True)


@pytest.mark.parametrize("seconds", [pytest.param(20, id="ci"), pytest.param(60, id="full", marks=pytest.mark.full)])
def test_fifty_concurrent_users(app_process, seconds):
    url, proc, log_path = app_process
    rss_cold = _rss_mb(proc.pid)

    def warm(n: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as c:
            for path, body, _ in QUESTIONS[n % 3:] + QUESTIONS[:n % 3]:
                assert (c.post(path, json=body) if body else c.get(path)).status_code == 200

    warmers = [threading.Thread(target=warm, args=(n,)) for n in range(USERS)]  # every endpoint, 50 at once
    for t in warmers:
        t.start()
    for t in warmers:
        t.join(timeout=600)
    rss_start = _rss_mb(proc.pid)
    samples: list[float] = []

    lock = threading.Lock()
    sent = answered = 0
    failures: list[str] = []
    wrong: list[str] = []
    latencies: list[float] = []
    deadline = [0.0, 0.0]  # end, start

    def go() -> None:  # run once, when all users are ready
        deadline[1] = time.monotonic()
        deadline[0] = deadline[1] + seconds

    start = threading.Barrier(USERS, action=go)

    def user(n: int) -> None:
        nonlocal sent, answered
        i = n
        with httpx.Client(base_url=url, timeout=300, limits=httpx.Limits(max_connections=1)) as c:
            start.wait()
            while time.monotonic() < deadline[0]:
                path, body, expected = QUESTIONS[i % len(QUESTIONS)]
                i += 7
                with lock:
                    if sent >= MAX_REQUESTS:
                        return
                    sent += 1
                t0 = time.perf_counter()
                try:
                    resp = c.post(path, json=body) if body else c.get(path)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{path}: {type(exc).__name__}: {exc}")
                    continue
                took = time.perf_counter() - t0
                with lock:
                    if resp.status_code != 200:
                        failures.append(f"{path}: HTTP {resp.status_code}: {resp.text[:200]}")
                        continue
                    answered += 1
                    latencies.append(took)
                    if expected and expected not in (resp.json().get("answer") or ""):
                        wrong.append(f"{body}: {resp.text[:200]}")

    threads = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(USERS)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) and len(samples) < seconds + 600:
        samples.append(_rss_mb(proc.pid))
        time.sleep(1)
    for t in threads:
        t.join(timeout=60)
    wall = time.monotonic() - deadline[1]
    assert not any(t.is_alive() for t in threads), "a user is stuck"
    rss_end = _rss_mb(proc.pid)
    assert proc.poll() is None, log_path.read_text()[-2000:]

    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "users": USERS, "seconds": seconds, "wall_seconds": round(wall, 1),
        "sent": sent, "answered_200": answered, "failed": len(failures), "wrong_answers": len(wrong),
        "requests_per_second": round(answered / wall, 1),
        "latency_ms": {"p50": round(q[49] * 1000), "p95": round(q[94] * 1000), "max": round(latencies[-1] * 1000)},
        "rss_mb": {"before_warm_up": round(rss_cold), "start": round(rss_start), "end": round(rss_end),
                   "growth": round(rss_end - rss_start), "max": round(max(samples + [rss_end])),
                   "samples_per_second": [round(x) for x in samples]},
        "cpus": os.cpu_count(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"load-{seconds}s.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nload {seconds}s: {json.dumps(result)}")
    assert not failures, failures[:5]
    assert sent == answered and answered > 0
    assert not wrong, wrong[:3]
    assert rss_end - rss_start < RSS_GROWTH_LIMIT_MB, result
    assert "Traceback" not in log_path.read_text()
