"""Shared by the web tests: a tmp copy of the seed corpus and a real uvicorn server in a background thread."""
from __future__ import annotations

import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED_CORPUS = ROOT / "corpus"
MARKUP_DOC = "zz_markup_note.txt"
MARKUP = "<script>alert(1)</script><b>bold</b>"
MARKUP_QUESTION = "How many households did the Tuvalu water kiosk pilot serve?"
MARKUP_TEXT = f"""Tuvalu water kiosk pilot - monitoring note

Country: Tuvalu

The Tuvalu water kiosk pilot served 1,234 households in Funafuti during its first year. \
The operator pasted this raw snippet into the report: {MARKUP} and nobody removed it.

The kiosks were maintained by the island council with support from local volunteers.
"""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def make_corpus(folder: Path) -> Path:
    """The 5 seed documents plus one note whose passage carries HTML/script markup."""
    corpus = folder / "corpus"
    shutil.copytree(SEED_CORPUS, corpus)
    (corpus / MARKUP_DOC).write_text(MARKUP_TEXT, encoding="utf-8")
    return corpus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(app: Any) -> LiveServer:
    """Serve ``app`` with uvicorn on a free local port; returns once it accepts requests."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


def open_engine(tmp: Path, embedder: Any, **overrides: Any) -> Any:
    """Build a real index of a tmp corpus copy with the real model and open it."""
    from aidsearch.api import open_index
    from aidsearch.config import load_settings
    settings = load_settings(index_dir=tmp / "index", corpus_dir=make_corpus(tmp), **overrides)
    return open_index(settings=settings, embedder=embedder, create=True)
