"""Engine set-up, and the translation of driver errors into the domain's
storage errors."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from ..domain.stores import DuplicateKey, StorageUnavailable
from .metrics import DATABASE_ERRORS
from .outage import DATABASE, OutageWatch

# How long one statement may wait for a lock (SQLite) or run (PostgreSQL)
# before the call fails with UNAVAILABLE: well inside Envoy's 15 s route
# timeout and the clients' deadlines, so nothing hangs past a request.
SQLITE_BUSY_TIMEOUT_MS = 5000
# Pages each SQLite connection keeps parsed, in KiB (SQLite's default: 2,000).
# With 1,000,000 models, a reader's page reads index pages all over the file;
# with the default, most were parsed again each time (BENCHMARKS.md). Filled
# only as pages are read.
SQLITE_CACHE_KIB = 16384
STATEMENT_TIMEOUT_MS = 5000
# A server that does not answer a connection attempt is treated as down.
CONNECT_TIMEOUT_SECONDS = 3
# Longest wait for a free pooled connection. The pool is as large as the
# database thread pool, so this only waits when a connection is being
# (re)opened; a request never queues behind an outage for long.
POOL_TIMEOUT_SECONDS = 5
# Connections are recycled now and then, so a server-side idle limit or a
# failover never leaves the pool full of dead connections.
POOL_RECYCLE_SECONDS = 1800

_json_dumps = functools.partial(
    json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":")
)


class _PipelineAbortEcho(logging.Filter):
    """Drops psycopg's warning "error ignored terminating <psycopg.Pipeline
    [INERROR]>: pipeline aborted". executemany runs in a pipeline, so a
    taken id in a batch of creates (writer.py) aborts it; the statement's own
    error (a unique violation) is raised and handled, and the aborted
    pipeline met on leaving it is only its echo. Every other psycopg record
    passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            record.msg == "error ignored terminating %r: %s"
            and isinstance(args, tuple)
            and len(args) == 2
            and type(args[1]).__name__ == "PipelineAborted"
        )


PIPELINE_ABORT_ECHO = _PipelineAbortEcho()


_TURNS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_TURNS_LOCK = threading.Lock()


@contextlib.contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """Wrap every write transaction: on SQLite, which takes one writer at a
    time, this process's writers take turns on a lock here first. A writer
    waiting in SQLite's busy handler sleeps in growing steps (up to 100 ms)
    and can lose every race to newer ones, which made a long tail under
    load; one waiting here wakes as soon as the turn is free. The wait is
    bounded like SQLite's own. Server databases lock rows, not the file:
    there, writers do not take turns."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _TURNS_LOCK:
        turn = _TURNS.setdefault(engine, threading.Lock())
    if not turn.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
        raise StorageUnavailable("OperationalError: database is locked")
    try:
        yield
    finally:
        turn.release()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> str | None:
    """The file of an SQLite `url`; None for an in-memory one or another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def create_database_engine(
    url: str, *, pool_size: int = 8, checkpoints_apart: bool = False
) -> Engine:
    """An engine for `url`: an SQLite file (WAL, durable commits) or a server
    database, PostgreSQL through psycopg 3 (`postgresql+psycopg://...`).
    `checkpoints_apart`: its SQLite connections never checkpoint the WAL,
    which a Checkpointer (checkpoints.py) does beside them."""
    parsed = make_url(url)
    options: dict[str, Any] = {"json_serializer": _json_dumps}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"check_same_thread": False}
        engine = create_engine(parsed, pool_size=pool_size, max_overflow=0, **options)
        set_up_sqlite(
            engine, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS, autocheckpoint=not checkpoints_apart
        )
        return engine
    if parsed.get_backend_name() == "postgresql":
        logging.getLogger("psycopg").addFilter(PIPELINE_ABORT_ECHO)  # once: filters are a set
        options["connect_args"] = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            # Server-side limits for every statement of this pool: a lock or a
            # slow query fails (-> UNAVAILABLE) instead of holding the caller.
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
            f" -c lock_timeout={STATEMENT_TIMEOUT_MS}"
            f" -c idle_in_transaction_session_timeout={STATEMENT_TIMEOUT_MS * 2}",
            # Dead peers (a pulled cable, not a refused port) are noticed by
            # the kernel instead of a request waiting forever on a read.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "application_name": "model-registry",
        }
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,  # replace connections a database restart broke
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_recycle=POOL_RECYCLE_SECONDS,
        **options,
    )


# Execution option of a connection whose transactions read, then write.
WRITE_FIRST = "modelregistry_write_first"
# Execution option of a connection that only reads, one statement at a time
# (each consistent by itself): SQLite then runs no BEGIN and ROLLBACK around it.
READ_ONLY = "modelregistry_read_only"


def set_up_sqlite(
    engine: Engine,
    *,
    busy_timeout_ms: int,
    begin: str = "BEGIN",
    foreign_keys: bool = True,
    autocheckpoint: bool = True,
) -> None:
    """Every connection `engine` opens to its SQLite file: WAL, durable
    commits, waits of up to `busy_timeout_ms` for another connection's lock.
    Transactions are opened by SQLAlchemy with `begin`, not by the sqlite3
    module (which would skip DDL), so that SAVEPOINTs work."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN: see on_begin
        # First: switching a new file to WAL takes a lock another process may hold.
        dbapi_connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        # WAL lets readers run beside the writer; synchronous=FULL makes every
        # commit durable before it is acknowledged, even across a power loss.
        _enable_wal(dbapi_connection, busy_timeout_ms / 1000)
        dbapi_connection.execute("PRAGMA synchronous=FULL")
        dbapi_connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        if foreign_keys:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")
        if not autocheckpoint:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    def on_begin(connection: Connection) -> None:
        # A read-modify-write transaction takes the write lock first (waiting
        # for it), so that its write cannot fail on a snapshot another
        # connection changed meanwhile.
        options = connection.get_execution_options()
        if options.get(READ_ONLY, False):
            return  # the sqlite3 module runs each statement in its own transaction
        if options.get(WRITE_FIRST, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # may wait, and fail, on the lock
        elif begin == "BEGIN":
            # A deferred BEGIN takes no lock and cannot fail: straight to the
            # driver, which costs a tenth of SQLAlchemy's execution, on every
            # read of the event loop.
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute(begin)
        else:
            connection.exec_driver_sql(begin)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def _enable_wal(dbapi_connection: Any, timeout_seconds: float) -> None:
    """PRAGMA journal_mode=WAL, retried: on a new file, while another process
    switches it too, SQLite answers "locked" at once, without waiting for the
    busy timeout. (Once a file is in WAL mode this is a no-op.)"""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def translate_errors(calls: int = 1, watch: OutageWatch = DATABASE) -> Iterator[None]:
    """Turn driver errors the domain cares about into its storage errors,
    counting the others, and tell `watch` whether the database answered
    (`calls`: how many calls an outage refuses by failing this block)."""
    began = watch.clock()
    try:
        yield
    except exc.IntegrityError as error:
        if is_unique_violation(error):
            watch.answered(began)
            raise DuplicateKey(str(error.orig)) from error
        DATABASE_ERRORS.labels(error_class(error)).inc()
        raise
    except exc.SQLAlchemyError as error:
        DATABASE_ERRORS.labels(error_class(error)).inc()
        if not is_outage(error):
            raise
        original = error.orig if isinstance(error, exc.DBAPIError) else None
        watch.failed(began, original or error, calls)
        cause = error.orig if isinstance(error, exc.OperationalError) else error
        raise StorageUnavailable(type(cause).__name__) from error
    watch.answered(began)


def error_class(error: exc.SQLAlchemyError) -> str:
    """The driver's class (sqlite3's or psycopg's) where there is one."""
    original = getattr(error, "orig", None)
    return type(original if isinstance(original, Exception) else error).__name__


def is_outage(error: exc.SQLAlchemyError) -> bool:
    """Whether the database cannot serve right now (unreachable, locked, timed
    out, connection lost): UNAVAILABLE for the caller, and a reason for the
    writer to fail a whole batch. Anything else is the statement's own fault."""
    if isinstance(error, exc.OperationalError):
        return not _is_schema_fault(error)  # a bug or a damaged schema is no outage
    if isinstance(error, exc.InterfaceError | exc.TimeoutError):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def is_unique_violation(error: exc.IntegrityError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)  # psycopg
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(error.orig)  # sqlite3


def _is_schema_fault(error: exc.OperationalError) -> bool:
    # sqlite3 reports missing tables and bad SQL as OperationalError too;
    # every other OperationalError (locked, unreachable, I/O) is an outage.
    message = str(error.orig)
    return message.startswith(("no such ", "table ", "near ")) or "syntax error" in message
