"""Micro-batching: calls that arrive while the model is busy share its next pass instead of queuing one by one."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Call:
    __slots__ = ("item", "result", "error", "lead", "done")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.result: Any = None
        self.error: Exception | None = None
        self.lead = False
        self.done = threading.Event()

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class MicroBatcher(Generic[T, R]):
    """Runs ``fn`` (items -> results, same order) for concurrent callers: a lone call runs at once; calls made while
    a pass runs wait and go together, up to ``max_batch`` items, into the next pass, which one of them leads. An
    exception in a pass is raised in every call of it. ``max_batch=1`` runs one call per pass."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn, self.max_batch = fn, max_batch
        self._lock = threading.Lock()
        self._queue: list[_Call] = []
        self._running = False
        self.passes = 0
        self.items = 0

    def __call__(self, item: T) -> R:
        me = _Call(item)
        with self._lock:
            self._queue.append(me)
            lead = not self._running
            self._running = True
        if not lead:
            me.done.wait()
            if not me.lead:
                return me.get()
        return self._lead(me)

    def _lead(self, me: _Call) -> R:
        with self._lock:  # ``me`` is first in the queue: the first caller, or promoted as the queue's head
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
        with self._lock:
            self.passes += 1
            self.items += len(batch)
            following = self._queue[0] if self._queue else None
            self._running = following is not None
            if following is not None:
                following.lead = True
        for c in batch:
            if c is not me:
                c.done.set()
        if following is not None:
            following.done.set()
        return me.get()
