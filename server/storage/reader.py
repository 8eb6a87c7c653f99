"""Batched reads: one thread owns the hottest lookup (GetModel's, on
PostgreSQL; SQLite answers it on the event loop, loop_first.py). Lookups
that arrive together are answered by one statement per table, on one
connection, and wake one thread instead of one each: under load a handful of
statements serve dozens of calls."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine

from .batching import BatchThread
from .database import READ_ONLY, translate_errors

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


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
        self._batches: BatchThread[Key, Value] = BatchThread(
            "db-reader", self._answer, max_batch=max_batch
        )

    def submit(self, key: Key) -> Future[Value]:
        """The future value of `key`; StorageUnavailable if the database
        cannot answer."""
        return self._batches.submit(key)

    def close(self) -> None:
        """Answer what is queued, then stop."""
        self._batches.close()

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
