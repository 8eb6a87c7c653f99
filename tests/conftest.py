from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import grpc
import pytest
from support import ADMIN_KEY, Client, Registry, start_registry

_ids = itertools.count()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One gRPC-only registry on SQLite for the whole run; tests use unique ids."""
    path = tmp_path_factory.mktemp("db") / "registry.db"
    running = start_registry(f"sqlite:///{path}")
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
