"""Acknowledged creates survive kill -9; SIGTERM drains in-flight calls; the
database runs with the settings that make an acknowledged create durable."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import sqlalchemy as sa
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelregistry.v1 import model_service_pb2 as pb
from modelregistry.v1 import model_service_pb2_grpc as pb_grpc
from modelregistry_server.storage.database import create_database_engine

from spec_examples import minimal
from support import ADMIN_KEY, Client, Registry, is_sqlite, start_registry


@dataclass
class Load:
    """Distinct creates from many threads until stopped."""

    acked: list[str] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # ids of failed calls

    def run(self, registry: Registry, stop: threading.Event, prefix: str, workers: int = 16):
        pool = ThreadPoolExecutor(workers)
        for n in range(workers):
            pool.submit(self._worker, registry, stop, f"{prefix}-{n}")
        return pool

    def _worker(self, registry: Registry, stop: threading.Event, prefix: str) -> None:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            client = Client(channel, ADMIN_KEY)
            i = 0
            while not stop.is_set():
                model_id = f"{prefix}-{i}"
                i += 1
                try:
                    client.create(minimal(model_id, params={"n": i, "max_tokens": 10}), timeout=5)
                    self.acked.append(model_id)
                except grpc.RpcError as error:
                    self.failures[error.code()] += 1
                    self.refused.append(model_id)
                    time.sleep(0.01)

    def wait_for_acks(self, count: int, ceiling: float = 120) -> None:
        """Until `count` creates are acknowledged: the load is going."""
        deadline = time.monotonic() + ceiling
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} creates acknowledged"
            time.sleep(0.02)


def stored_models(database_url: str) -> dict[str, tuple]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, name, params FROM models")).all()
    finally:
        engine.dispose()
    return {row.id: row for row in rows}


def test_acknowledged_creates_survive_kill_9(database_url_factory: Callable[[], str]):
    url = database_url_factory()
    registry = start_registry(url)
    stop = threading.Event()
    load = Load()
    pool = load.run(registry, stop, "crash")
    try:
        load.wait_for_acks(50)
        registry.process.send_signal(signal.SIGKILL)  # mid-load
        registry.process.wait(30)
    finally:
        stop.set()
        pool.shutdown(wait=True)
    acked = load.acked

    restarted = start_registry(url)
    try:
        stored = stored_models(url)
        lost = [model_id for model_id in acked if model_id not in stored]
        assert lost == [], f"{len(lost)} acknowledged creates lost"
        for model_id in acked:  # intact: the row is the one acknowledged
            assert_stored_as_sent(stored[model_id], model_id)
        # and the service works on the recovered database
        with grpc.insecure_channel(restarted.grpc_target) as channel:
            assert Client(channel, ADMIN_KEY).create(minimal("after-crash")).id == "after-crash"
    finally:
        assert restarted.stop() == 0


def test_sigterm_finishes_in_flight_calls_and_exits_0(database_url_factory: Callable[[], str]):
    url = database_url_factory()
    registry = start_registry(url)
    with grpc.insecure_channel(registry.grpc_target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="modelregistry.v1.ModelService"), timeout=60
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        stop = threading.Event()
        load = Load()
        pool = load.run(registry, stop, "drain")
        try:
            load.wait_for_acks(20)
            registry.process.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            assert registry.process.wait(60) == 0
        finally:
            stop.set()
            pool.shutdown(wait=True)
            if registry.process.poll() is None:
                registry.process.kill()

    # Every call was answered OK, or refused because the server was stopping
    # (or gone): UNAVAILABLE, or CANCELLED for a call it had not started.
    assert set(load.failures) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    assert load.failures, "the load never saw the server stop"
    # A create the server had received when the signal came was finished and
    # acknowledged; a refused one left nothing: what is stored is exactly what
    # was acknowledged, each row as sent.
    stored = stored_models(url)
    assert sorted(stored) == sorted(load.acked)
    refused_but_stored = [model_id for model_id in load.refused if model_id in stored]
    assert refused_but_stored == []
    for model_id in load.acked:
        assert_stored_as_sent(stored[model_id], model_id)
    assert "stopped" in "".join(registry.output)


def assert_stored_as_sent(row, model_id: str) -> None:
    params = row.params if isinstance(row.params, dict) else json.loads(row.params)
    sent = int(model_id.rsplit("-", 1)[1]) + 1
    assert row.name == "A model" and params == {"n": sent, "max_tokens": 10}


# -- the settings behind "acknowledged means on disk" ----------------------------------


def test_database_connections_commit_durably(database_url_factory: Callable[[], str]):
    """SQLite: the file is in WAL mode once the server has run, and every
    connection the server's engine opens has synchronous=FULL; PostgreSQL:
    its connections commit with synchronous_commit on. (kill -9 of the server
    cannot show this: the operating system keeps what was written.)"""
    url = database_url_factory()
    registry = start_registry(url)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            Client(channel, ADMIN_KEY).create(minimal("durable"))
        if is_sqlite(url):
            path = url.removeprefix("sqlite:///")
            probe = sqlite3.connect(path)  # journal_mode WAL is a property of the file
            try:
                assert probe.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            finally:
                probe.close()
    finally:
        assert registry.stop() == 0

    # The server's connections come from this factory (one engine per server).
    engine = create_database_engine(url, pool_size=2)
    try:
        with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                if is_sqlite(url):
                    assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                    assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
                else:
                    setting = connection.exec_driver_sql("SHOW synchronous_commit").scalar()
                    assert setting == "on"
                    name = connection.exec_driver_sql("SHOW application_name").scalar()
                    assert name == "model-registry"
    finally:
        engine.dispose()


def test_kill_9_during_updates_leaves_no_model_without_its_version(
    database_url_factory: Callable[[], str],
):
    url = database_url_factory()
    registry = start_registry(url)
    model_ids = [f"chained-{n}" for n in range(4)]
    with grpc.insecure_channel(registry.grpc_target) as channel:
        client = Client(channel, ADMIN_KEY)
        for model_id in model_ids:
            client.create(minimal(model_id))
    acked: list[str] = []  # version ids of acknowledged updates
    stop = threading.Event()

    def update(worker: int) -> None:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            stub = pb_grpc.ModelServiceStub(channel)
            metadata = [("authorization", f"Bearer {ADMIN_KEY}")]
            n = 0
            while not stop.is_set():
                n += 1
                model = minimal(model_ids[n % len(model_ids)], params={"w": worker, "n": n})
                request = json_format.ParseDict({"model": model}, pb.UpdateModelRequest())
                try:
                    acked.append(stub.UpdateModel(request, metadata=metadata, timeout=5).version_id)
                except grpc.RpcError:
                    time.sleep(0.01)

    pool = ThreadPoolExecutor(16)
    for worker in range(16):
        pool.submit(update, worker)
    try:
        deadline = time.monotonic() + 120
        while len(acked) < 100:
            assert time.monotonic() < deadline, f"only {len(acked)} updates acknowledged"
            time.sleep(0.02)
        registry.process.send_signal(signal.SIGKILL)  # mid-load
        registry.process.wait(30)
    finally:
        stop.set()
        pool.shutdown(wait=True)

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            models = {
                row.id: row
                for row in connection.execute(sa.text("SELECT id, params, version_id FROM models"))
            }
            versions = connection.execute(
                sa.text(
                    "SELECT model_id, number, id, parent_id, snapshot FROM model_versions"
                    " ORDER BY model_id, number"
                )
            ).all()
    finally:
        engine.dispose()
    assert set(models) == set(model_ids)
    stored_ids = {row.id for row in versions}
    assert [v for v in acked if v not in stored_ids] == []  # no acknowledged version lost
    for model_id, model in models.items():
        chain = [row for row in versions if row.model_id == model_id]
        assert [row.number for row in chain] == list(range(1, len(chain) + 1))
        assert [row.parent_id for row in chain] == [None] + [row.id for row in chain[:-1]]
        newest = chain[-1]
        assert model.version_id == newest.id  # the model is its newest version
        snapshot = (
            newest.snapshot if isinstance(newest.snapshot, dict) else json.loads(newest.snapshot)
        )
        params = model.params if isinstance(model.params, dict) else json.loads(model.params)
        assert snapshot["params"] == params
