"""Group commit: one thread owns model inserts. Concurrent creates queue up
and are committed together, so one commit (one fsync) acknowledges a whole
batch; an item that fails (a taken id) never fails its neighbours."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine, exc

from ..domain.stores import DuplicateKey
from .batching import BatchThread
from .database import (
    error_class,
    is_outage,
    is_unique_violation,
    translate_errors,
    writer_turn,
)
from .metrics import CREATE_BATCH_SIZE, DATABASE_ERRORS

Item = TypeVar("Item")


class BatchWriter(Generic[Item]):
    def __init__(
        self,
        engine: Engine,
        write: Callable[[Connection, list[Item]], None],
        *,
        order: Callable[[Item], str],
        written: Callable[[Connection, list[Item]], None] = lambda _connection, _items: None,
        max_batch: int = 256,
    ) -> None:
        """`write` stores a list of items on a connection (inside the batch's
        transaction); `order` sorts a batch before it is written; `written`
        runs once per batch, last, with the items that were stored (shared
        rows such as totals are locked only then, after every item's own
        rows, so a batch never holds them while it waits for another lock)."""
        self._engine = engine
        self._write_items = write
        self._written = written
        self._order = order
        self._batches: BatchThread[Item, None] = BatchThread(
            "db-writer", self._write, max_batch=max_batch
        )

    def submit(self, item: Item) -> Future[None]:
        """Queue `item`; the future resolves once it is committed, or fails
        with DuplicateKey or StorageUnavailable."""
        return self._batches.submit(item)

    def close(self) -> None:
        """Commit what is queued, then stop."""
        self._batches.close()

    def _write(self, batch: list[tuple[Item, Future[None]]]) -> None:
        # Items in key order: concurrent batches (other replicas) then take
        # the unique-index locks in the same order and cannot deadlock.
        batch.sort(key=lambda entry: self._order(entry[0]))
        CREATE_BATCH_SIZE.observe(len(batch))
        failures: dict[int, BaseException] = {}
        try:
            # An outage fails every call of the batch.
            with (
                writer_turn(self._engine),
                translate_errors(calls=len(batch)),
                self._engine.begin() as connection,
            ):
                try:
                    # The common case: every item is new, one statement per table.
                    with connection.begin_nested():
                        self._write_items(connection, [item for item, _ in batch])
                except exc.StatementError as error:
                    if is_outage(error):
                        raise
                    # Some row failed: insert one by one, each in its own
                    # savepoint, so that the others still commit.
                    failures = self._write_one_by_one(connection, batch)
                stored = [item for index, (item, _) in enumerate(batch) if index not in failures]
                if stored:
                    self._written(connection, stored)
        except Exception as error:  # the transaction failed, and so did every row
            for _, future in batch:
                future.set_exception(error)
            return
        for index, (_, future) in enumerate(batch):
            if index in failures:
                future.set_exception(failures[index])
            else:
                future.set_result(None)

    def _write_one_by_one(
        self, connection: Connection, batch: list[tuple[Item, Future[None]]]
    ) -> dict[int, BaseException]:
        failures: dict[int, BaseException] = {}
        for index, (item, _) in enumerate(batch):
            try:
                with connection.begin_nested():
                    self._write_items(connection, [item])
            except exc.StatementError as error:
                if is_outage(error):
                    raise
                if isinstance(error, exc.IntegrityError) and is_unique_violation(error):
                    failures[index] = DuplicateKey(str(error.orig))
                else:
                    DATABASE_ERRORS.labels(error_class(error)).inc()
                    failures[index] = error  # this row's own fault: INTERNAL for it alone
        return failures
