"""Engine set-up and the translation of driver errors into storage errors."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from .errors import DuplicateKey, StorageUnavailable
from .tables import metadata

SQLITE_BUSY_TIMEOUT_MS = 5000

_json_dumps = functools.partial(
    json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":")
)


def create_database_engine(url: str, *, pool_size: int = 8) -> Engine:
    """An engine for `url`: an SQLite file (WAL, durable commits) or a server
    database such as PostgreSQL."""
    parsed = make_url(url)
    options: dict[str, Any] = {"json_serializer": _json_dumps}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"check_same_thread": False}
        engine = create_engine(parsed, pool_size=pool_size, max_overflow=0, **options)
        event.listen(engine, "connect", _configure_sqlite)
        # Let SQLAlchemy, not the sqlite3 module, issue BEGIN, so that
        # SAVEPOINTs work (the writer relies on them).
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
        return engine
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,  # replace connections a database restart broke
        pool_timeout=5,
        **options,
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN: see the "begin" listener
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; synchronous=FULL makes every
    # commit durable before it is acknowledged, even across a power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_schema(engine: Engine) -> None:
    with translate_errors():
        metadata.create_all(engine)


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver errors the domain cares about into storage errors."""
    try:
        yield
    except exc.IntegrityError as error:
        if is_unique_violation(error):
            raise DuplicateKey(str(error.orig)) from error
        raise
    except exc.OperationalError as error:
        if _is_schema_fault(error):
            raise  # a bug or a damaged schema, not an outage
        raise StorageUnavailable(type(error.orig).__name__) from error
    except (exc.InterfaceError, exc.TimeoutError) as error:
        raise StorageUnavailable(type(error).__name__) from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise StorageUnavailable(type(error).__name__) from error
        raise


def is_unique_violation(error: exc.IntegrityError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)  # psycopg
    if sqlstate is not None:
        return sqlstate == "23505"
    return "UNIQUE constraint failed" in str(error.orig)  # sqlite3


def _is_schema_fault(error: exc.OperationalError) -> bool:
    # sqlite3 reports missing tables and bad SQL as OperationalError too;
    # every other OperationalError (locked, unreachable, I/O) is an outage.
    message = str(error.orig)
    return message.startswith(("no such ", "table ", "near ")) or "syntax error" in message
