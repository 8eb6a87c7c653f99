"""What an operator sees of the running service: the Prometheus metrics of
`serve --metrics-port`, one log line per call, an outage logged once when it
begins and once when it ends, and no lines that read like faults when
nothing is wrong (a taken id on PostgreSQL, an over-size HTTP body); log
lines are buffered, yet come out while the server runs, warnings at once."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from metrics_support import metrics_ports, scrape, value

from modelregistry.v1 import model_service_pb2 as pb
from modelregistry_server import logs
from modelregistry_server.envoy import EnvoyOptions, render_config

from ports import free_port
from postgres import PostgresServer
from spec_examples import minimal
from support import (
    ADMIN_KEY,
    MODEL_REGISTRY,
    Client,
    http_request,
    model_request,
    start_registry,
)

# time level logger: method code duration ms user=... request_id=...
REQUEST_LINE = re.compile(
    r"^\S+ \S+ INFO modelregistry_server\.requests:"
    r" (\w+) (\w+) [\d.]+ ms user=(\S+) request_id=(\S+)$"
)


@pytest.fixture
def needs_postgres(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--db") == "sqlite":
        pytest.skip("an outage of PostgreSQL (--db sqlite)")


def requests_by_code(samples: dict) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["method"], dict(labels)["code"]): value
        for (name, labels), value in samples.items()
        if name == "modelregistry_requests_total"
    }


def get_model(client: Client, model_id: str, key: str = ADMIN_KEY) -> pb.Model:
    metadata = [("authorization", f"Bearer {key}")]
    return client.stub.GetModel(pb.GetModelRequest(id=model_id), metadata=metadata, timeout=10)


def list_models(client: Client) -> pb.ListModelsResponse:
    metadata = [("authorization", f"Bearer {ADMIN_KEY}")]
    return client.stub.ListModels(pb.ListModelsRequest(), metadata=metadata, timeout=10)


def list_tags(client: Client) -> pb.ListModelTagsResponse:
    metadata = [("authorization", f"Bearer {ADMIN_KEY}")]
    return client.stub.ListModelTags(pb.ListModelTagsRequest(), metadata=metadata, timeout=10)


def code_of(call: Callable[..., object], *args: object, **kw: object) -> grpc.StatusCode:
    """The code of call(*args, **kw): OK, or its error's."""
    try:
        call(*args, **kw)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_metrics_count_every_call_by_method_and_code(tmp_path: Path):
    registry = start_registry(f"sqlite:///{tmp_path / 'r.db'}", extra_args=("--metrics-port", "0"))
    try:
        [port] = metrics_ports(registry)
        with grpc.insecure_channel(registry.grpc_target) as channel:
            client = Client(channel, ADMIN_KEY)
            codes = [
                code_of(client.create, minimal("first")),
                code_of(client.create, minimal("second")),
                code_of(client.create, minimal("first")),
                code_of(client.create, minimal("third"), key="mr-not-a-key"),
                code_of(client.create, minimal("has space")),
                code_of(get_model, client, "first"),
                code_of(get_model, client, "missing"),
                code_of(list_models, client),
                code_of(list_tags, client),
            ]
        samples = scrape(port)
    finally:
        assert registry.stop() == 0
    C = grpc.StatusCode
    assert codes[:5] == [C.OK, C.OK, C.ALREADY_EXISTS, C.UNAUTHENTICATED, C.INVALID_ARGUMENT]
    assert codes[5:] == [C.OK, C.NOT_FOUND, C.OK, C.OK]
    assert requests_by_code(samples) == {
        ("CreateModel", "OK"): 2,
        ("CreateModel", "ALREADY_EXISTS"): 1,
        ("CreateModel", "UNAUTHENTICATED"): 1,
        ("CreateModel", "INVALID_ARGUMENT"): 1,
        ("GetModel", "OK"): 1,
        ("GetModel", "NOT_FOUND"): 1,
        ("ListModels", "OK"): 1,
        ("ListModelTags", "OK"): 1,
    }
    # On SQLite both quick reads ran on the event loop's thread.
    assert value(samples, "modelregistry_list_reads_total", ran_on="loop") == 2
    assert value(samples, "modelregistry_list_reads_total", ran_on="thread") == 0
    assert value(samples, "modelregistry_list_reads_stopped_total") == 0
    # And both GetModel calls read the model there too, not on a thread.
    assert value(samples, "modelregistry_get_reads_total", ran_on="loop") == 2
    assert value(samples, "modelregistry_get_reads_total", ran_on="thread") == 0
    assert value(samples, "modelregistry_get_reads_stopped_total") == 0
    latency = "modelregistry_request_duration_seconds_count"
    assert value(samples, latency, method="CreateModel") == 5
    assert value(samples, latency, method="GetModel") == 2
    infinite = "modelregistry_request_duration_seconds_bucket"
    assert value(samples, infinite, method="GetModel", le="+Inf") == 2
    assert value(samples, "modelregistry_requests_in_flight") == 0
    # Three creates reached the writer (one at a time: three batches of one);
    # the unauthenticated and the invalid one never did.
    assert value(samples, "modelregistry_create_batch_size_count") == 3
    assert value(samples, "modelregistry_create_batch_size_sum") == 3
    assert value(samples, "modelregistry_create_batch_size_bucket", le="1.0") == 3
    assert value(samples, "modelregistry_database_available") == 1
    assert value(samples, "modelregistry_database_outages_total") == 0
    assert not [name for name, _ in samples if name == "modelregistry_database_errors_total"]
    assert not [name for name, _ in samples if name.endswith("_created")]
    assert value(samples, "process_resident_memory_bytes") > 0
    # What start-up made is out of the collector's walks: tens of thousands
    # of objects (modules, descriptors, the schema). Freezing them began
    # with a full collection, which the pause histogram counted.
    assert value(samples, "modelregistry_gc_frozen_objects") > 20_000
    assert value(samples, "modelregistry_gc_pause_seconds_count", generation="2") >= 1


def test_one_log_line_per_call_with_its_caller_and_request_id(tmp_path: Path):
    registry = start_registry(f"sqlite:///{tmp_path / 'r.db'}", http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            client = Client(channel, ADMIN_KEY)
            traced = [("authorization", f"Bearer {ADMIN_KEY}"), ("x-request-id", "grpc-call-1")]
            client.stub.CreateModel(model_request(minimal("by-grpc")), metadata=traced)
            wrong = code_of(client.create, minimal("x"), key="mr-wrong-key-0123456789")
            assert wrong == grpc.StatusCode.UNAUTHENTICATED
        chosen = http_request(
            registry.http_port,
            "POST",
            "/api/models/create",
            minimal("by-http"),
            key=ADMIN_KEY,
            headers={"X-Request-Id": "http-call-1"},
        )
        minted = http_request(
            registry.http_port, "GET", "/api/v1/models/model?id=by-http", key=ADMIN_KEY
        )
    finally:
        assert registry.stop() == 0
    assert (chosen.status, minted.status) == (200, 200)
    # Envoy forwards the client's request id, or makes one; the reply carries it.
    assert chosen.headers["x-request-id"] == "http-call-1"
    envoys_id = minted.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", envoys_id)
    lines = [REQUEST_LINE.match(line.rstrip("\n")) for line in registry.output]
    assert [match.groups() for match in lines if match] == [
        ("CreateModel", "OK", "admin", "grpc-call-1"),
        ("CreateModel", "UNAUTHENTICATED", "-", "-"),
        ("CreateModel", "OK", "admin", "http-call-1"),
        ("GetModelJson", "OK", "admin", envoys_id),  # GetModel as the HTTP face's JSON
    ]
    log = "".join(registry.output)
    assert ADMIN_KEY not in log and "mr-wrong-key" not in log
    assert "Prometheus metrics" not in log  # off unless asked for


@pytest.mark.parametrize("chunked", [False, True])
def test_an_over_size_body_is_no_error_in_envoys_log(tmp_path: Path, chunked: bool):
    registry = start_registry(
        f"sqlite:///{tmp_path / 'r.db'}", http=True, extra_args=("--max-body-bytes", "1000")
    )
    try:
        body = json.dumps(minimal("too-big", meta={"description": "x" * 2000}))
        response = http_request(
            registry.http_port, "POST", "/api/models/create", body, key=ADMIN_KEY, chunked=chunked
        )
        time.sleep(0.5)  # Envoy writes its log lines asynchronously
    finally:
        assert registry.stop() == 0
    assert (response.status, response.json()) == (413, {"detail": "Request body too large"})
    log = "".join(registry.output)
    assert "[error]" not in log and "exceeds maximum" not in log
    assert "modelregistry_server.requests" not in log  # the server never saw it


def test_an_outage_is_logged_once_when_it_begins_and_once_when_it_ends(needs_postgres: None):
    with PostgresServer.temporary() as database:
        registry = start_registry(
            database.create_database(),
            extra_args=("--metrics-port", "0"),
            env={"MODEL_REGISTRY_LOG_FORMAT": "json"},
        )
        try:
            [port] = metrics_ports(registry)
            with grpc.insecure_channel(registry.grpc_target) as channel:
                client = Client(channel, ADMIN_KEY)
                client.create(minimal("before"))
                database.stop("fast")  # every session is cut, new ones refused
                during = [code_of(client.create, minimal(f"down-{n}")) for n in range(5)]
                during += [code_of(get_model, client, "before") for _ in range(2)]
                while_down = scrape(port)
                database.start()
                after = [code_of(client.create, minimal("after-0"))]
                while after[-1] != grpc.StatusCode.OK and len(after) < 50:
                    time.sleep(0.1)
                    after.append(code_of(client.create, minimal(f"after-{len(after)}")))
                after += [code_of(client.create, minimal(f"later-{n}")) for n in range(3)]
            once_up = scrape(port)
        finally:
            if registry.process.poll() is None:
                assert registry.stop() == 0
    assert during == [grpc.StatusCode.UNAVAILABLE] * 7
    assert after[-4:] == [grpc.StatusCode.OK] * 4
    refused = len(during) + after.count(grpc.StatusCode.UNAVAILABLE)

    assert value(while_down, "modelregistry_database_available") == 0
    assert value(while_down, "modelregistry_database_outages_total") == 1
    assert value(once_up, "modelregistry_database_available") == 1
    assert value(once_up, "modelregistry_database_outages_total") == 1
    unavailable = {k: v for k, v in requests_by_code(once_up).items() if k[1] == "UNAVAILABLE"}
    assert sum(unavailable.values()) == refused

    records = [json.loads(line) for line in registry.output if line.startswith("{")]
    outage = [r for r in records if r["logger"] == "modelregistry_server.storage.outage"]
    assert [(r["level"], r["message"].split(":")[0]) for r in outage] == [
        ("ERROR", "database unavailable"),
        (
            "WARNING",
            f"database available again after {outage[1]['outage_seconds']:.1f} s; "
            f"{refused} calls refused meanwhile",
        ),
    ]
    assert outage[0]["cause"].startswith("OperationalError: ")
    assert outage[0]["message"] == f"database unavailable: {outage[0]['cause']}"
    assert outage[1]["refused_calls"] == refused and outage[1]["outage_seconds"] > 0
    # Every call still has its own line, with its code.
    calls = [r for r in records if r["logger"] == "modelregistry_server.requests"]
    assert Counter(r["code"] for r in calls) == Counter(
        {"OK": 1 + after.count(grpc.StatusCode.OK), "UNAVAILABLE": refused}
    )
    assert {r["user_id"] for r in calls} == {"admin"}
    assert all(isinstance(r["duration_ms"], float) for r in calls)


def test_a_taken_id_in_a_batch_leaves_no_psycopg_warning(
    needs_postgres: None, postgres: PostgresServer
):
    registry = start_registry(postgres.create_database(), extra_args=("--metrics-port", "0"))
    try:
        [port] = metrics_ports(registry)
        codes: Counter[grpc.StatusCode] = Counter()
        with grpc.insecure_channel(registry.grpc_target) as channel:
            client = Client(channel, ADMIN_KEY)
            for round_ in range(10):
                # 64 creates of 5 ids at once: the writer takes those waiting
                # together, and a batch of more than 5 has a taken id.
                ids = [f"taken-{round_}-{n % 5}" for n in range(64)]
                with ThreadPoolExecutor(16) as pool:
                    codes.update(pool.map(lambda i: code_of(client.create, minimal(i)), ids))
                samples = scrape(port)
                batches = value(samples, "modelregistry_create_batch_size_count")
                if value(samples, "modelregistry_create_batch_size_bucket", le="4.0") < batches:
                    break
            else:
                raise AssertionError("no batch of more than 4 creates in 10 rounds")
    finally:
        assert registry.stop() == 0
    rounds = round_ + 1
    assert codes == {
        grpc.StatusCode.OK: 5 * rounds,
        grpc.StatusCode.ALREADY_EXISTS: 59 * rounds,
    }
    log = "".join(registry.output)
    assert "psycopg" not in log and "pipeline aborted" not in log
    assert " WARNING " not in log and " ERROR " not in log


def test_each_replica_serves_its_metrics_and_envoys_stats_stay_local(
    needs_postgres: None, postgres: PostgresServer
):
    admin_port = free_port()
    registry = start_registry(
        postgres.create_database(),
        http=True,
        extra_args=(
            "--replicas",
            "2",
            "--metrics-port",
            "0",
            "--envoy-admin-port",
            str(admin_port),
        ),
    )
    try:
        announced = "".join(registry.output)
        metrics = dict(
            re.findall(r"^\[replica (\d)\] Prometheus metrics on \S+:(\d+)/", announced, re.M)
        )
        grpc_ports = dict(
            re.findall(r"^replica (\d) \(pid \d+\) gRPC on \S+:(\d+)$", announced, re.M)
        )
        with grpc.insecure_channel(f"127.0.0.1:{grpc_ports['1']}") as channel:
            Client(channel, ADMIN_KEY).create(minimal("on-the-first"))
        first, second = (requests_by_code(scrape(int(metrics[n]))) for n in ("1", "2"))
        url = f"http://127.0.0.1:{admin_port}/stats/prometheus"
        with urllib.request.urlopen(url, timeout=10) as response:
            envoy_stats = response.read().decode()
    finally:
        assert registry.stop() == 0
    assert len(set(metrics.values())) == 2
    assert (first, second) == ({("CreateModel", "OK"): 1}, {})
    assert "envoy_cluster_upstream_rq_total" in envoy_stats


@pytest.mark.parametrize("workers", [None, "3"])
def test_envoy_runs_the_workers_it_is_given_or_half_the_cores(tmp_path: Path, workers: str | None):
    admin_port = free_port()
    extra = ("--envoy-admin-port", str(admin_port))
    if workers is not None:
        extra += ("--envoy-workers", workers)
    registry = start_registry(f"sqlite:///{tmp_path / 'r.db'}", http=True, extra_args=extra)
    try:
        url = f"http://127.0.0.1:{admin_port}/server_info"
        with urllib.request.urlopen(url, timeout=10) as response:
            info = json.loads(response.read())
    finally:
        assert registry.stop() == 0
    expected = int(workers) if workers is not None else max(1, (os.cpu_count() or 2) // 2)
    assert info["command_line_options"]["concurrency"] == expected


def test_envoys_admin_listens_on_loopback_only():
    options = EnvoyOptions(host="0.0.0.0", port=8080, admin_port=9901)
    config = render_config(options, [("127.0.0.1", 50051)])
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9901,
    }
    assert "admin" not in render_config(EnvoyOptions(), [("127.0.0.1", 50051)])


def test_a_taken_metrics_port_stops_serve_with_a_clear_message(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                MODEL_REGISTRY,
                "--database-url",
                f"sqlite:///{tmp_path / 'r.db'}",
                "serve",
                "--no-http",
                "--port",
                "0",
                "--metrics-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "metrics did not start:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


# -- the log's buffer: lines come out promptly, warnings at once ----------------


class Child:
    """A Python process that configures logging as `serve` does, then runs a
    script; its stderr lines as they come."""

    def __init__(self, script: str, flush_seconds: float = logs.FLUSH_SECONDS) -> None:
        prelude = (
            "import logging, time\n"
            "from modelregistry_server import logs\n"
            f"logs.FLUSH_SECONDS = {flush_seconds}\n"
            "logs.configure_logging('info', 'text')\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", prelude + script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self._lines.put(line)

    def next_line(self, within: float) -> str | None:
        """The next line if it comes within `within` seconds."""
        try:
            return self._lines.get(timeout=within)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def test_a_buffered_line_is_written_while_the_process_runs():
    child = Child("logging.info('one'); print('logged', flush=True); time.sleep(30)")
    try:
        assert child.process.stdout.readline() == "logged\n"
        line = child.next_line(2 + logs.FLUSH_SECONDS)
    finally:
        child.stop()
    assert line is not None and line.endswith(" INFO root: one\n")


def test_a_warning_is_written_at_once_with_what_waited_before_it():
    child = Child(  # the flusher sleeps past the test
        "logging.info('held'); print('logged', flush=True); time.sleep(2)\n"
        "logging.warning('now'); time.sleep(30)",
        flush_seconds=60,
    )
    try:
        assert child.process.stdout.readline() == "logged\n"
        held = child.next_line(1)
        lines = [child.next_line(10), child.next_line(1)]
    finally:
        child.stop()
    assert held is None
    assert [line.split(" ", 2)[2] for line in lines] == ["INFO root: held\n", "WARNING root: now\n"]


def test_what_waits_is_written_at_exit():
    child = Child("logging.info('last words')", flush_seconds=60)
    assert child.process.wait(30) == 0
    line = child.next_line(5)
    assert line is not None and line.endswith(" INFO root: last words\n")
