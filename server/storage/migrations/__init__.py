"""Schema migrations (Alembic): the only way the schema is created or changed,
on SQLite and PostgreSQL alike.

Alembic is configured here in code, so no alembic.ini is needed at run time;
env.py and versions/ sit beside this file. `upgrade` is safe when several
processes run it at once (replicas starting together): on PostgreSQL the
whole upgrade runs in one transaction holding an advisory lock; on SQLite in
one BEGIN IMMEDIATE transaction, which holds the database's write lock. DDL is
transactional on both, so a failed upgrade leaves nothing half done, and the
loser of the race waits, then finds the schema at head and does nothing.

A new revision, after changing tables.py:

    .venv/bin/python -m modelregistry_server.storage.migrations revision "what changed"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ..database import CONNECT_TIMEOUT_SECONDS, set_up_sqlite, translate_errors

LOCATION = Path(__file__).resolve().parent
# pg_advisory_xact_lock key of the migration lock: any constant the
# application uses for nothing else ("mrmi").
ADVISORY_LOCK_KEY = 0x6D726D69
# SQLite: how long a second migrator waits for the first one's write lock.
SQLITE_LOCK_WAIT_MS = 120_000
# The revision whose schema databases made before migrations existed
# (metadata.create_all) already have: they are stamped with it, not re-created.
BASELINE = "0001"


@dataclass(frozen=True, slots=True)
class Upgrade:
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> Upgrade:
    """Bring the database at `url` to `revision`; StorageUnavailable if it
    cannot be reached."""
    engine = _migration_engine(url)
    try:
        with translate_errors(), engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Held until this transaction ends: concurrent upgrades queue.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
            before = current_revision(connection)
            if before is None and inspect(connection).has_table("users"):
                command.stamp(alembic_config(connection), BASELINE)
            command.upgrade(alembic_config(connection), revision)
            after = current_revision(connection)
    finally:
        engine.dispose()
    return Upgrade(before, after)


def _migration_engine(url: str) -> Engine:
    """A one-connection engine without the request timeouts: a migration may
    wait for another one's lock and may run long."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, poolclass=NullPool)
        # BEGIN IMMEDIATE takes the write lock at once, so a second migrator
        # waits for the first one's whole upgrade. Foreign keys stay off, as
        # SQLite's default: batch migrations drop and re-create tables that
        # others refer to.
        set_up_sqlite(
            engine, busy_timeout_ms=SQLITE_LOCK_WAIT_MS, begin="BEGIN IMMEDIATE", foreign_keys=False
        )
        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
