"""Batched reads: one thread owns the hottest lookup (GetModel's). Lookups
that arrive together are answered by one statement per table, on one
connection, and wake one thread instead of one each: under load a handful of
statements serve dozens of calls."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from .database import READ_ONLY, translate_errors

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
_STOP = object()


class BatchReader(Generic[Key, Value]):
    def __init__(
        self,
        engine: Engine,
        read: Callable[[Connection, list[Key]], dict[Key, Value]],
        *,
        max_batch: int = 256,
    ) -> None:
        """`read` answers distinct keys on one connection: a value for each."""
        self._engine = engine
        self._read = read
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="db-reader", daemon=True)
        self._thread.start()

    def submit(self, key: Key) -> Future[Value]:
        """The future value of `key`; StorageUnavailable if the database
        cannot answer."""
        future: Future[Value] = Future()
        self._queue.put((key, future))
        return future

    def close(self) -> None:
        """Answer what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            entry = self._queue.get()
            if entry is _STOP:
                return
            batch = [entry]
            while len(batch) < self._max_batch:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is _STOP:
                    stopping = True
                    break
                batch.append(entry)
            # A caller that gave up before its turn is not answered.
            batch = [
                (key, future) for key, future in batch if future.set_running_or_notify_cancel()
            ]
            if batch:
                self._answer(batch)

    def _answer(self, batch: list[tuple[Key, Future[Value]]]) -> None:
        try:
            keys = list(dict.fromkeys(key for key, _ in batch))
            with (
                translate_errors(),
                self._engine.connect().execution_options(**{READ_ONLY: True}) as connection,
            ):
                values = self._read(connection, keys)
        except Exception as error:  # the statements failed, and so did every lookup
            for _, future in batch:
                future.set_exception(error)
            return
        for key, future in batch:
            future.set_result(values[key])
