"""SQLite's WAL checkpoints, in a thread of their own while the server runs.

By default SQLite checkpoints in whichever connection commits when the WAL
passes 1,000 pages: here, the writer thread, in the middle of a group
commit. With 1,000,000 models a checkpoint copies pages scattered over a
gigabyte-sized file and syncs it, and every create waiting on that commit
waits for it too (the p99 of creates at 1,000,000 was 500-900 ms). So the
serving engine's connections do not checkpoint (`wal_autocheckpoint=0`),
and this thread runs a PASSIVE checkpoint every `interval_seconds`: it
copies what no reader still needs, beside the writer, which never waits for
it. Commits stay durable either way: a commit is synced to the WAL before
it is acknowledged (`synchronous=FULL`)."""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 0.5


class Checkpointer:
    """A thread checkpointing the SQLite file at `path` until closed."""

    def __init__(self, path: str, interval_seconds: float = INTERVAL_SECONDS) -> None:
        self._path = path
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        while not self._stop.wait(self._interval):
            try:
                if connection is None:
                    connection = sqlite3.connect(self._path)
                    connection.execute("PRAGMA synchronous=FULL")
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as error:  # the next turn tries again
                log.warning("SQLite checkpoint failed: %s", error)
                if connection is not None:
                    connection.close()
                    connection = None
        if connection is not None:
            connection.close()
