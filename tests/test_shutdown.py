"""SIGTERM drains: a create the server has received when the signal comes is
finished, stored and answered, even when it has to wait for the database;
calls that come once the server is stopping are refused and leave nothing
behind."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spec_examples import minimal
from support import ADMIN_KEY, Client, is_sqlite, model_request, query, start_registry

SERVICE = "modelregistry.v1.ModelService"


@contextlib.contextmanager
def write_lock(database_url: str) -> Iterator[None]:
    """Writers of the models table wait while this is held (SQLite: the
    database's write lock, BEGIN IMMEDIATE; PostgreSQL: a table lock)."""
    if is_sqlite(database_url):
        blocker = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("LOCK TABLE models IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                connection.rollback()
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], bool], what: str, ceiling: float = 60) -> None:
    deadline = time.monotonic() + ceiling
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def refuses_calls(health: health_pb2_grpc.HealthStub) -> bool:
    try:
        health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        return True
    return False


def stored_names(database_url: str) -> dict[str, str]:
    return {row.id: row.name for row in query(database_url, "SELECT id, name FROM models")}


def test_a_create_in_flight_at_sigterm_is_finished_and_stored(
    database_url_factory: Callable[[], str],
):
    url = database_url_factory()
    registry = start_registry(url)
    metadata = [("authorization", f"Bearer {ADMIN_KEY}")]
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            stub = Client(channel, ADMIN_KEY).stub
            health = health_pb2_grpc.HealthStub(channel)
            stub.CreateModel(model_request(minimal("warm")), metadata=metadata, timeout=10)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=60)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

            with write_lock(url):
                held = [
                    stub.CreateModel.future(
                        model_request(minimal(f"held-{n}", name=f"held {n}")),
                        metadata=metadata,
                        timeout=60,
                    )
                    for n in range(3)
                ]
                # Calls on one connection are taken in order: once a later one
                # is answered, the server has every held create.
                health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30)
                assert not any(future.done() for future in held)
                registry.process.send_signal(signal.SIGTERM)
                # The server is stopping: it says so first, then refuses new calls ...
                assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
                watch.cancel()  # an open stream would hold the server for the grace period
                wait_until(lambda: refuses_calls(health), "the server refuses new calls")
                # ... creates too, and nothing of them is stored.
                with pytest.raises(grpc.RpcError) as late:
                    stub.CreateModel(model_request(minimal("late")), metadata=metadata, timeout=30)
                assert late.value.code() == grpc.StatusCode.UNAVAILABLE
                assert not any(future.done() for future in held)
            # The lock is gone: the held creates finish, inside the grace period.
            answers = [future.result(timeout=60) for future in held]
            assert [a.id for a in answers] == ["held-0", "held-1", "held-2"]
            assert registry.process.wait(60) == 0
    finally:
        if registry.process.poll() is None:
            registry.process.kill()

    assert stored_names(url) == {
        "warm": "A model",
        "held-0": "held 0",
        "held-1": "held 1",
        "held-2": "held 2",
    }
    assert "stopped" in "".join(registry.output)
