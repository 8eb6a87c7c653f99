"""SQLite's WAL checkpoints run in a thread of their own while the registry
serves (storage/checkpoints.py), never in the writer's commits: on a real
SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from modelregistry_server.app import build_app
from modelregistry_server.config import Settings
from modelregistry_server.domain.models import ROLE_ADMIN, ModelDraft, Principal
from modelregistry_server.storage.database import create_database_engine
from modelregistry_server.storage.migrations import upgrade

ADMIN = Principal("root", ROLE_ADMIN, can_create_models=True)


def models_in_database_file(path: Path) -> int:
    """Models in the database file itself, not counting what is only in the WAL."""
    file_only = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(file_only.execute("SELECT count(*) FROM models").fetchone()[0])
    finally:
        file_only.close()


def test_the_writer_never_checkpoints_and_a_thread_does(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO users VALUES ('root', 'admin', 1, 0)")
    app = build_app(Settings(database_url=url))
    try:
        with app.engine.connect() as connection:
            assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0

        async def create() -> None:
            for n in range(40):
                draft = ModelDraft(f"m{n:02d}", f"M {n}", None, {}, {}, [], None, None)
                await app.registry.create_model(ADMIN, draft)

        asyncio.run(create())
        # 40 small commits are far from the 1,000 pages at which a connection
        # would checkpoint by itself: only the thread copies them.
        deadline = time.monotonic() + 10
        while models_in_database_file(path) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert models_in_database_file(path) == 40
    finally:
        app.close()


def test_other_engines_checkpoint_as_sqlite_does(tmp_path: Path) -> None:
    """The operator's commands (an import, say) have no checkpoint thread."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
    finally:
        engine.dispose()
