"""`serve --replicas N`: N stateless gRPC servers behind one Envoy, sharing
one PostgreSQL database; and what happens when PostgreSQL goes away."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from postgres import PostgresServer
from spec_examples import minimal
from support import ADMIN_KEY, MODEL_REGISTRY, Client, Registry, free_port, query, start_registry

# Replica tests need PostgreSQL whatever --db says; skip them for --db sqlite.
pytestmark = pytest.mark.usefixtures("postgres_selected")


@pytest.fixture(scope="module")
def postgres_selected(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--db") == "sqlite":
        pytest.skip("replicas need PostgreSQL (--db sqlite)")


@dataclass
class Replicated:
    registry: Registry
    admin_port: int

    def replicas(self) -> list[tuple[int, int]]:
        """(pid, port) of every replica, as the supervisor announced them."""
        found = []
        for line in self.registry.output:
            match = re.match(r"replica \d+ \(pid (\d+)\) gRPC on \S+:(\d+)$", line)
            if match:
                found.append((int(match.group(1)), int(match.group(2))))
        return found

    def wait_for(self, pattern: str, ceiling: float = 60) -> re.Match[str]:
        """The first line of the supervisor's output matching `pattern`,
        once it has been printed."""
        found: list[re.Match[str]] = []

        def printed() -> bool:
            found.extend(filter(None, (re.match(pattern, line) for line in self.registry.output)))
            return bool(found)

        wait_until(printed, f"a line matching {pattern!r}", ceiling)
        return found[0]

    def served_per_replica(self) -> dict[int, int]:
        """Envoy's count of successful requests per replica port."""
        url = f"http://127.0.0.1:{self.admin_port}/clusters"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        counts = {}
        for match in re.finditer(r"^grpc_backend::[\d.]+:(\d+)::rq_success::(\d+)$", text, re.M):
            counts[int(match.group(1))] = int(match.group(2))
        return counts


def wait_until(condition: Callable[[], bool], what: str, ceiling: float = 60) -> None:
    """Polls `condition` until it holds; fails after a generous ceiling."""
    deadline = time.monotonic() + ceiling
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def start_replicated(database_url: str, replicas: int = 2) -> Replicated:
    admin_port = free_port()
    registry = start_registry(
        database_url,
        http=True,
        extra_args=("--replicas", str(replicas), "--envoy-admin-port", str(admin_port)),
    )
    return Replicated(registry, admin_port)


@pytest.fixture(scope="module")
def two(postgres: PostgresServer) -> Iterator[Replicated]:
    running = start_replicated(postgres.create_database())
    yield running
    assert running.registry.stop() == 0
    assert "stopped" in running.registry.output[-1]


class HttpClient:
    """One keep-alive connection per thread, to Envoy."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def create(self, model: dict) -> tuple[int, bytes, float]:
        body = json.dumps(model)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_KEY}"}
        started = time.monotonic()
        for attempt in range(2):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.local.connection = connection
            try:
                connection.request("POST", "/api/models/create", body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
                    self.local.connection = None
                return response.status, data, time.monotonic() - started
            except (ConnectionError, http.client.RemoteDisconnected):
                # Envoy closed an idle keep-alive connection: nothing was sent
                # on it, so sending again on a new one is safe.
                connection.close()
                self.local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def test_replicas_need_a_server_database(tmp_path):
    result = subprocess.run(
        [
            MODEL_REGISTRY,
            "--database-url",
            f"sqlite:///{tmp_path / 'r.db'}",
            "serve",
            "--replicas",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--replicas above 1 needs a database server" in result.stderr
    assert not (tmp_path / "r.db").exists()


def test_every_address_is_printed(two: Replicated):
    replicas = two.replicas()
    assert len(replicas) == 2 and len({port for _, port in replicas}) == 2
    output = "".join(two.registry.output)
    assert f"HTTP/JSON (Envoy) listening on {two.registry.http_url} -> 2 replicas" in output
    assert f"Envoy admin on http://127.0.0.1:{two.admin_port}" in output
    for _, port in replicas:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert Client(channel, ADMIN_KEY).create(minimal(f"direct-{port}")).id


def test_concurrent_creates_of_one_id_across_replicas_give_one_success(two: Replicated):
    client = HttpClient(two.registry.http_port)
    with ThreadPoolExecutor(64) as pool:
        results = list(
            pool.map(lambda n: client.create(minimal("contested", name=f"r{n}")), range(64))
        )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] + [400] * 63
    assert {body for status, body, _ in results if status == 400} == {
        b'{"detail":"Model ID is already taken"}'
    }
    assert query(
        two.registry.database_url, "SELECT count(*) FROM models WHERE id = 'contested'"
    ) == [(1,)]


def test_2000_creates_are_stored_once_each_and_both_replicas_serve(two: Replicated):
    before = two.served_per_replica()
    client = HttpClient(two.registry.http_port)
    ids = [f"bulk-{n:04d}" for n in range(2000)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: client.create(minimal(i)), ids))
    assert [status for status, _, _ in results] == [200] * 2000
    rows = query(
        two.registry.database_url,
        "SELECT count(*), count(DISTINCT id) FROM models WHERE id LIKE 'bulk-%'",
    )
    assert rows == [(2000, 2000)]
    after = two.served_per_replica()
    shares = {port: after[port] - before.get(port, 0) for port in after}
    assert sum(shares.values()) == 2000, shares
    # Both serve. (How evenly depends on health checks with a 1 s timeout on
    # a machine under load; even shares belong to the benchmarks.)
    assert len(shares) == 2 and min(shares.values()) > 0, shares


def test_a_killed_replica_is_restarted_on_its_port_and_serves_again(postgres: PostgresServer):
    running = start_replicated(postgres.create_database())
    try:
        (victim, victim_port), (_, survivor_port) = running.replicas()
        os.kill(victim, signal.SIGKILL)
        running.wait_for(
            rf"replica 1 \(pid {victim}, port {victim_port}\) exited unexpectedly"
            r" \(killed by SIGKILL\); restarting it in 0\.5s$"
        )
        # Meanwhile Envoy routes around it.
        client = HttpClient(running.registry.http_port)
        results = [client.create(minimal(f"after-death-{n}")) for n in range(20)]
        assert [status for status, _, _ in results] == [200] * 20

        back = running.wait_for(r"replica 1 \(pid (\d+)\) restarted: gRPC on 127\.0\.0\.1:(\d+)$")
        assert int(back.group(1)) != victim and int(back.group(2)) == victim_port
        with grpc.insecure_channel(f"127.0.0.1:{victim_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        # Envoy sends to it again: its count of requests served there grows.
        served_before = running.served_per_replica().get(victim_port, 0)
        numbers = iter(range(1_000_000))

        def restarted_replica_serves() -> bool:
            status, _, _ = client.create(minimal(f"after-restart-{next(numbers)}"))
            assert status == 200
            return running.served_per_replica().get(victim_port, 0) > served_before

        wait_until(restarted_replica_serves, "Envoy routes to the restarted replica")
        assert running.served_per_replica()[survivor_port] > 0
        output = "".join(running.registry.output)
        assert output.count("exited unexpectedly") == 1
        assert "crash loop" not in output
    finally:
        # Restarted and stopped cleanly: the stop is a clean one.
        assert running.registry.stop() == 0


def test_a_replica_that_keeps_dying_stops_the_registry_with_exit_code_3(
    postgres: PostgresServer,
):
    """Killed again each time it is back (as an out-of-memory killer would):
    five exits within a minute are a crash loop."""
    running = start_replicated(postgres.create_database())
    try:
        (victim, victim_port), _ = running.replicas()
        restarted = rf"^replica 1 \(pid (\d+)\) restarted: gRPC on 127\.0\.0\.1:{victim_port}$"

        def restarts() -> list[str]:
            return re.findall(restarted, "".join(running.registry.output), re.M)

        for kill in range(1, 6):
            os.kill(victim, signal.SIGKILL)
            if kill == 5:
                break
            wait_until(lambda n=kill: len(restarts()) >= n, f"restart {kill}", ceiling=60)
            victim = int(restarts()[-1])
        crash_loop = running.wait_for(
            rf"replica 1 \(pid \d+, port {victim_port}\) exited 5 times within 60s,"
            r" the last with (killed by SIGKILL): a crash loop;"
            r" not restarting it, stopping with exit code 3$",
            ceiling=60,
        )
        assert running.registry.process.wait(timeout=60) == 3
    finally:
        if running.registry.process.poll() is None:
            running.registry.stop(signal.SIGKILL)
    output = "".join(running.registry.output)
    restarts = re.findall(
        rf"^replica 1 \(pid \d+, port {victim_port}\) exited unexpectedly \((.+)\);"
        r" restarting it in (\S+)s$",
        output,
        re.M,
    )
    assert restarts == [
        ("killed by SIGKILL", "0.5"),
        ("killed by SIGKILL", "1"),
        ("killed by SIGKILL", "2"),
        ("killed by SIGKILL", "4"),
    ]
    assert crash_loop.group(1) == "killed by SIGKILL"
    assert not re.search(r"^replica 2 .*exited", output, re.M)  # it kept serving


def test_a_replica_killed_during_an_outage_comes_back_and_serves_after_it():
    """A restarted replica does not need the database to start (its
    supervisor migrated it): during an outage it answers 503 like the
    others, and serves again when the database is back."""
    with PostgresServer.temporary() as database:
        running = start_replicated(database.create_database())
        try:
            (victim, victim_port), _ = running.replicas()
            database.stop("fast")
            os.kill(victim, signal.SIGKILL)
            running.wait_for(
                rf"replica 1 \(pid (\d+)\) restarted: gRPC on 127\.0\.0\.1:{victim_port}$"
            )
            client = HttpClient(running.registry.http_port)
            status, body, _ = client.create(minimal("during-outage"))
            assert (status, json.loads(body)) == (503, {"detail": "Service Unavailable"})

            database.start()
            served_before = running.served_per_replica().get(victim_port, 0)
            numbers = iter(range(1_000_000))

            def restarted_replica_serves() -> bool:
                status, _, _ = client.create(minimal(f"after-outage-{next(numbers)}"))
                return status == 200 and (
                    running.served_per_replica().get(victim_port, 0) > served_before
                )

            wait_until(restarted_replica_serves, "the restarted replica serves", ceiling=60)
            output = "".join(running.registry.output)
            assert output.count("exited unexpectedly") == 1 and "crash loop" not in output
        finally:
            assert running.registry.stop() == 0


def test_postgres_outage_is_503_and_service_resumes_by_itself():
    """Its own PostgreSQL, stopped under load and started again; the
    replicas are never restarted."""
    with PostgresServer.temporary() as database:
        running = start_replicated(database.create_database())
        client = HttpClient(running.registry.http_port)
        results: list[tuple[str, int, bytes, float, float]] = []
        phase = {"now": "before"}
        stop = threading.Event()
        counter = iter(range(1_000_000))
        lock = threading.Lock()

        def load() -> None:
            while not stop.is_set():
                with lock:
                    model_id = f"outage-{next(counter)}"
                    when = phase["now"]
                status, body, took = client.create(minimal(model_id))
                results.append((model_id, status, body, took, time.monotonic()))
                if when == "down":
                    time.sleep(0.01)

        def succeeded() -> int:
            return sum(1 for _, status, _, _, _ in results if status == 200)

        try:
            with ThreadPoolExecutor(8) as pool:
                workers = [pool.submit(load) for _ in range(8)]
                try:
                    wait_until(lambda: succeeded() >= 20, "creates succeed before the outage")
                    phase["now"] = "down"
                    database.stop("fast")  # every session is cut, new ones refused
                    down_at = time.monotonic()  # from here nothing can commit
                    time.sleep(6)  # longer than the auth cache: key lookups fail too
                    # gRPC straight to a replica, during the outage
                    _, port = running.replicas()[0]
                    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                        error = Client(channel, ADMIN_KEY).create_error(minimal("grpc-during"))
                    assert error.code() == grpc.StatusCode.UNAVAILABLE
                    assert error.details() == "Service Unavailable"
                    restart_at = time.monotonic()
                    database.start()
                    phase["now"] = "after"
                finally:
                    stop.set()
                for worker in workers:
                    worker.result()  # every call was answered (a hang would time out)
            by_status: dict[int, int] = {}
            for _, status, _, _, _ in results:
                by_status[status] = by_status.get(status, 0) + 1
            assert set(by_status) <= {200, 503}, by_status
            assert {body for _, status, body, _, _ in results if status == 503} == {
                b'{"detail":"Service Unavailable"}'
            }
            assert by_status.get(503, 0) > 0, by_status
            # nothing "succeeded" that started after the database stopped and
            # was answered before it started again
            assert not [
                r for r in results if down_at < r[4] - r[3] and r[4] < restart_at and r[1] == 200
            ]
            # The service resumes by itself: creates succeed again, through
            # both replicas, and from then on every one does.
            first: list[int] = []

            def resumed() -> bool:
                status, _, _ = client.create(minimal(f"outage-resume-{len(first)}"))
                first.append(status)
                return status == 200

            wait_until(resumed, "creates succeed again after the outage")
            assert set(first) <= {200, 503}, first
            after = [client.create(minimal(f"outage-after-{n}"))[0] for n in range(20)]
            assert after == [200] * 20
            acknowledged = {model_id for model_id, status, _, _, _ in results if status == 200}
            stored = {
                row[0]
                for row in query(
                    running.registry.database_url, "SELECT id FROM models WHERE id LIKE 'outage-%'"
                )
            }
            assert acknowledged <= stored  # no acknowledged create is lost
            assert running.registry.stop() == 0
        finally:
            if running.registry.process.poll() is None:
                running.registry.stop(signal.SIGKILL)
