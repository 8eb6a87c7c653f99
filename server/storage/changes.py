"""Group commit for changes on SQLite: one thread applies the changes that
arrive together (UpdateModel, ToggleModel, UpdateModelAccess, DeleteModel,
restores), each in a savepoint of one transaction, and one commit (one
fsync) acknowledges them all. SQLite writes one transaction at a time
anyway; this makes that one transaction carry many changes.

A change that is refused (a domain error) or whose statements fail rolls
back its savepoint alone; an outage fails the whole batch. Server databases
lock rows, not the file, so there each change keeps its own transaction."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, exc

from .batching import BatchThread
from .database import WRITE_FIRST, is_outage, translate_errors, writer_turn


@dataclass(frozen=True, slots=True)
class Change:
    """`apply` runs inside the transaction, in a savepoint of its own; what
    it returns is the change's result. `committed` runs after the commit."""

    apply: Callable[[Connection], Any]
    committed: Callable[[Any], None]


class ChangeWriter:
    def __init__(self, engine: Engine, *, max_batch: int = 64) -> None:
        self._engine = engine
        self._batches: BatchThread[Change, Any] = BatchThread(
            "db-changes", self._commit, max_batch=max_batch
        )

    def submit(self, change: Change) -> Future[Any]:
        """The change's result once committed; its own error if it was
        refused; StorageUnavailable if the database could not take it."""
        return self._batches.submit(change)

    def close(self) -> None:
        """Commit what is queued, then stop."""
        self._batches.close()

    def _commit(self, batch: list[tuple[Change, Future[Any]]]) -> None:
        # In arrival order: two changes of one model apply one after the other.
        outcomes: list[tuple[bool, Any]] = []
        try:
            with (
                writer_turn(self._engine),
                translate_errors(calls=len(batch)),
                self._engine.connect().execution_options(**{WRITE_FIRST: True}) as connection,
                connection.begin(),
            ):
                for change, _ in batch:
                    try:
                        with connection.begin_nested():
                            outcomes.append((True, change.apply(connection)))
                    except exc.StatementError as error:
                        if is_outage(error):
                            raise
                        outcomes.append((False, error))  # this change's own fault
                    except Exception as error:  # refused: a domain error
                        outcomes.append((False, error))
        except Exception as error:  # the transaction failed, and so did every change
            for _, future in batch:
                future.set_exception(error)
            return
        for (change, future), (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                change.committed(value)
                future.set_result(value)
            else:
                future.set_exception(value)
