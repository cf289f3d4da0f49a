from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def settings():
    from aidsearch.config import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def embedder(settings):
    """The real bundled model, loaded once for the whole run."""
    from aidsearch.embed import load_embedder

    return load_embedder(settings)


@pytest.fixture(scope="module")
def chat_model():
    """A real OpenAI-compatible chat server (tests/llm_server.py) on a free loopback port, stopped after the module."""
    from llm_server import start

    live = start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def server(engine):
    """The web app of the module's ``engine``, served by uvicorn on a free loopback port."""
    from aidsearch.web import build_app
    from browser_helpers import start_server

    live = start_server(build_app(engine))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
