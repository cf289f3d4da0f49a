"""Micro-batching: calls that arrive while the model is busy share its next pass instead of queuing one by one."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Call:
    __slots__ = ("item", "result", "error", "done")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.result: Any = None
        self.error: Exception | None = None
        self.done = threading.Event()

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class MicroBatcher(Generic[T, R]):
    """Runs ``fn`` (items -> results, same order) in one worker thread for concurrent callers: a lone call runs at
    once; calls made while a pass runs wait and go together, up to ``max_batch`` items, into the next pass. One
    thread runs every pass, so the model's large buffers are reused instead of spread over each caller thread's
    memory. An exception in a pass is raised in every call of it. ``max_batch=1`` runs one call per pass."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn, self.max_batch = fn, max_batch
        self._ready = threading.Condition()
        self._queue: list[_Call] = []
        self._worker: threading.Thread | None = None
        self.passes = 0
        self.items = 0

    def __call__(self, item: T) -> R:
        me = _Call(item)
        with self._ready:
            self._queue.append(me)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="aidsearch-model", daemon=True)
                self._worker.start()
            self._ready.notify()
        me.done.wait()
        return me.get()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            try:
                results = self.fn([c.item for c in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function gave {len(results)} results for {len(batch)} items")
                for c, r in zip(batch, results):
                    c.result = r
            except Exception as exc:
                for c in batch:
                    c.error = exc
            with self._ready:
                self.passes += 1
                self.items += len(batch)
            for c in batch:
                c.done.set()
