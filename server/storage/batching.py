"""What the batching threads share (writer.py's group commit, changes.py's
group-committed changes, reader.py's batched lookups): callers queue
(item, future) pairs, and one thread hands whatever has queued up meanwhile
to its owner as one batch."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
_STOP = object()


class BatchThread(Generic[Item, Result]):
    def __init__(
        self,
        name: str,
        handle: Callable[[list[tuple[Item, Future[Result]]]], None],
        *,
        max_batch: int,
    ) -> None:
        """`handle` gets each batch (at most `max_batch` items, in arrival
        order) and settles every future of it."""
        self._handle = handle
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> Future[Result]:
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future

    def close(self) -> None:
        """Handle what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch, stopping = self._next_batch()
            if batch:
                self._handle(batch)
            if stopping:
                return

    def _next_batch(self) -> tuple[list[tuple[Item, Future[Result]]], bool]:
        """Wait for an item, then take what else has queued (at most
        max_batch in all), leaving out those whose caller gave up (a
        cancelled future). Also whether to stop after this batch."""
        entry = self._queue.get()
        if entry is _STOP:
            return [], True
        batch, stopping = [entry], False
        while len(batch) < self._max_batch:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                stopping = True
                break
            batch.append(entry)
        live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        return live, stopping
