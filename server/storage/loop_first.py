"""ListModels' and GetModel's reads on SQLite: first on the event loop's own
thread, within a budget; in a thread when SQLite does not answer within it.

Handing a read to a thread and back costs more than most pages. The round
trip alone is 40-70 µs of CPU (bench/executor_hop.py), and under load the
loop and the threads take turns on the interpreter lock at every SQLite
call; an admin's page of 30 kept models costs about 300 µs in all. In
whole-server runs an admin's page cost 1,300-1,700 µs of server CPU through
a thread, 830-870 µs on the loop (BENCHMARKS.md).

So a read first runs where the call is, on a connection of its own, and
SQLite's progress handler stops it once the loop's thread has spent
`budget_seconds` of CPU on it (CPU, so that waiting for the processor or the
interpreter lock does not count); a thread then runs it from the start. A
kind of read stopped this way (a search matching many models, a deep offset)
goes straight to the thread for its next `skip_after_stop` calls. Any error
on the loop also hands the read to the thread, where errors are translated
as for every read; this connection never waits for a lock, so a busy
database cannot hold the loop.

A read on the loop is told the version of the database it sees: SQLite's
`PRAGMA data_version` of its snapshot, which changes whenever another
connection (of this process or any other) commits. The loop's connection
never writes, so two reads told the same version saw the same data, and
what one of them found may answer the other (kept_reads.py). A read in a
thread is told None: its pooled connection's versions are not comparable
with the loop's. But run_versioned tells its caller, after the read, the
version it read at when the loop's version was the same just before and
just after it: no other connection committed in between, so the thread's
snapshot was that version's data (a reader's matches that took too long
for the loop are kept so).

PostgreSQL's reads always run in a thread: every statement waits on the
network."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter
from sqlalchemy import Connection, Engine

from .database import translate_errors
from .metrics import GET_READS, GET_READS_STOPPED, LIST_READS, LIST_READS_STOPPED

T = TypeVar("T")

# What a read on the loop saw: (the loop connection's number, its data_version).
Version = tuple[int, int]

# 5 ms: enough for a reader's matches among 1,000,000 models (about 3 ms),
# which then never need a thread; 2 ms sent them to one after every commit
# (BENCHMARKS.md, "What each step bought").
DEFAULT_BUDGET_SECONDS = 0.005
DEFAULT_SKIP_AFTER_STOP = 100
# SQLite calls the progress handler every this many virtual machine steps:
# about 0.2 ms of work, so a page is seldom interrupted to look at the clock.
_PROGRESS_STEPS = 10_000


@dataclass(frozen=True, slots=True)
class ReadCounters:
    """Where one kind of caller's reads ran, and how many were stopped."""

    on_loop: Counter
    on_thread: Counter
    stopped: Counter


LIST_COUNTERS = ReadCounters(
    LIST_READS.labels("loop"), LIST_READS.labels("thread"), LIST_READS_STOPPED
)
GET_COUNTERS = ReadCounters(GET_READS.labels("loop"), GET_READS.labels("thread"), GET_READS_STOPPED)


class _Stopped(Exception):
    """The read ran past its budget on the loop."""


class LoopFirstReads:
    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        *,
        budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        skip_after_stop: int = DEFAULT_SKIP_AFTER_STOP,
        counters: ReadCounters = LIST_COUNTERS,
    ) -> None:
        self._engine = engine
        self._counters = counters
        self._executor = executor
        self._on_loop = engine.dialect.name == "sqlite"
        self._budget = budget_seconds
        self._skip_after_stop = skip_after_stop
        self._skipping: dict[Hashable, int] = {}  # kind -> calls left to send to the thread
        self._connection: Connection | None = None
        self._connections = 0  # loop connections opened: versions of two are not comparable
        self._deadline = math.inf
        self._stopped = False
        self.stops = 0  # reads stopped on the loop and run again in a thread

    async def run(self, kind: Hashable, read: Callable[[Connection, Version | None], T]) -> T:
        """`read`'s result, on one connection in one transaction, `read` told
        the version of the data it reads (None in a thread). `kind` groups
        reads of like cost (a query's shape)."""
        result, _ = await self._run(kind, read, versioned=False)
        return result

    async def run_versioned(
        self, kind: Hashable, read: Callable[[Connection, Version | None], T]
    ) -> tuple[T, Version | None]:
        """As run, and for a read that ran in a thread the version it read
        at, when that is known: the loop's data version was the same just
        before and just after it, so no other connection committed in
        between, and the thread's snapshot was that version's data. None for
        a read on the loop (it was told its version), on PostgreSQL, or when
        the version changed."""
        return await self._run(kind, read, versioned=True)

    async def _run(
        self, kind: Hashable, read: Callable[[Connection, Version | None], T], *, versioned: bool
    ) -> tuple[T, Version | None]:
        if self._on_loop and not self._skip(kind):
            try:
                result = self._run_on_loop(read)
                self._counters.on_loop.inc()
                return result, None
            except _Stopped:
                self.stops += 1
                self._counters.stopped.inc()
                self._skipping[kind] = self._skip_after_stop
            except Exception:
                self._discard()  # the thread meets the error again, and reports it
        before = self._version_now() if versioned and self._on_loop else None
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, self._run_in_thread, read)
        self._counters.on_thread.inc()
        if before is not None and self._version_now() == before:
            return result, before
        return result, None

    def retry_on_loop(self, kind: Hashable) -> None:
        """Send reads of `kind` to the loop again, though one was stopped
        there: what made it slow was kept, and the next will be quick."""
        self._skipping.pop(kind, None)

    def versions_known(self) -> bool:
        """Whether reads here are told versions (on the loop) or can be
        versioned after a thread (run_versioned): SQLite only."""
        return self._on_loop

    def _version_now(self) -> Version | None:
        """The loop connection's data version now, in a transaction of its own."""
        try:
            connection = self._loop_connection()
            with connection.begin():
                return (self._connections, _data_version(connection))
        except Exception:
            self._discard()
            return None

    def close(self) -> None:
        self._discard()

    def _skip(self, kind: Hashable) -> bool:
        left = self._skipping.get(kind)
        if left is None:
            return False
        if left <= 1:
            del self._skipping[kind]
        else:
            self._skipping[kind] = left - 1
        return True

    def _run_in_thread(self, read: Callable[[Connection, Version | None], T]) -> T:
        with translate_errors(), self._engine.connect() as connection:
            return read(connection, None)

    def _run_on_loop(self, read: Callable[[Connection, Version | None], T]) -> T:
        connection = self._loop_connection()
        self._stopped = False
        self._deadline = time.thread_time() + self._budget
        try:
            with connection.begin():
                # The transaction's first statement: it takes the snapshot
                # the read sees, and data_version stays that snapshot's until
                # the transaction ends.
                return read(connection, (self._connections, _data_version(connection)))
        except Exception:
            if self._stopped:
                raise _Stopped() from None
            raise
        finally:
            self._deadline = math.inf

    def _loop_connection(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect()
            sqlite = connection.connection.driver_connection
            assert sqlite is not None
            # Never sleep on the loop waiting for a lock: fail, and let a
            # thread wait instead.
            sqlite.execute("PRAGMA busy_timeout=0")
            sqlite.set_progress_handler(self._over_budget, _PROGRESS_STEPS)
            self._connection = connection
            self._connections += 1
        return self._connection

    def _over_budget(self) -> int:
        if time.thread_time() > self._deadline:
            self._stopped = True
            return 1  # SQLite stops the statement: "interrupted"
        return 0

    def _discard(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.invalidate()  # a new one next time
            connection.close()


def _data_version(connection: Connection) -> int:
    """SQLite's data_version of the connection's transaction: it changes
    whenever another connection commits."""
    sqlite = connection.connection.driver_connection
    assert sqlite is not None
    (data_version,) = sqlite.execute("PRAGMA data_version").fetchone()
    return int(data_version)
