"""Acknowledged creates survive kill -9; SIGTERM drains in-flight calls."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spec_examples import minimal
from support import ADMIN_KEY, Client, Registry, start_registry


@dataclass
class Load:
    """Distinct creates from many threads until stopped."""

    acked: list[str] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # ids of CANCELLED calls

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
                    if error.code() == grpc.StatusCode.CANCELLED:
                        self.refused.append(model_id)
                    time.sleep(0.01)


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
    time.sleep(1.5)
    registry.process.send_signal(signal.SIGKILL)  # mid-load
    registry.process.wait(10)
    time.sleep(0.3)
    stop.set()
    pool.shutdown(wait=True)
    acked = load.acked
    assert len(acked) > 50, "the load never got going"

    restarted = start_registry(url)
    try:
        stored = stored_models(url)
        lost = [model_id for model_id in acked if model_id not in stored]
        assert lost == [], f"{len(lost)} acknowledged creates lost"
        for model_id in acked:  # intact: the row is the one acknowledged
            row = stored[model_id]
            params = row.params if isinstance(row.params, dict) else json.loads(row.params)
            sent = int(model_id.rsplit("-", 1)[1]) + 1
            assert row.name == "A model" and params == {"n": sent, "max_tokens": 10}
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
            health_pb2.HealthCheckRequest(service="modelregistry.v1.ModelService"), timeout=30
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        stop = threading.Event()
        load = Load()
        pool = load.run(registry, stop, "drain")
        time.sleep(1.0)
        registry.process.send_signal(signal.SIGTERM)
        statuses = []
        try:
            for response in watch:
                statuses.append(response.status)
        except grpc.RpcError:
            pass  # the stream ends when the server goes
        assert registry.process.wait(30) == 0
        stop.set()
        pool.shutdown(wait=True)

    assert statuses[:1] == [health_pb2.HealthCheckResponse.NOT_SERVING]
    assert len(load.acked) > 20
    # Calls that come during or after shutdown are refused: UNAVAILABLE, or
    # CANCELLED before the server started them (nothing of them is stored).
    assert set(load.failures) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    stored = stored_models(url)
    assert all(model_id in stored for model_id in load.acked)
    assert not any(model_id in stored for model_id in load.refused)
    assert "stopped" in "".join(registry.output)
