"""The queue that the batching threads (writer.py's group commit, reader.py's
batched lookups) share: callers queue (item, future) pairs; one thread takes
whatever has queued up as one batch."""

from __future__ import annotations

import queue
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
_STOP = object()


class BatchQueue(Generic[Item, Result]):
    def __init__(self, max_batch: int) -> None:
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def submit(self, item: Item) -> Future[Result]:
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future

    def stop(self) -> None:
        """The batches queued so far are still taken; then next_batch says stop."""
        self._queue.put(_STOP)

    def next_batch(self) -> tuple[list[tuple[Item, Future[Result]]], bool]:
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
