"""Soak: mixed load for a set time; the server's RSS and open files must stay
flat and nothing may fail unexpectedly.

    python3 tasks.py soak [--seconds 60]

Starts `model-registry serve` (gRPC + Envoy, SQLite) and runs, from threads,
a mix of new creates, duplicate ids, invalid models, bad keys and health
checks over gRPC and JSON/HTTP. Prints throughput, the answers by kind, any
unexpected answer, and RSS / open file descriptors at start and end."""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modelregistry.v1 import model_service_pb2 as pb  # noqa: E402
from modelregistry.v1 import model_service_pb2_grpc as pb_grpc  # noqa: E402

from bench import BENCH_KEY, MODEL, free_port, rss_mib, start_service  # noqa: E402

# kind of request -> the answers it may get
EXPECTED = {
    "grpc-new": {"OK"},
    "grpc-duplicate": {"ALREADY_EXISTS"},
    "grpc-invalid": {"INVALID_ARGUMENT"},
    "grpc-bad-key": {"UNAUTHENTICATED"},
    "grpc-health": {"OK"},
    "http-new": {200},
    "http-duplicate": {400},
    "http-invalid": {400},
    "http-bad-key": {401},
}


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    answers: Counter = Counter()
    unexpected: Counter = Counter()
    ids = itertools.count()
    lock = threading.Lock()

    def record(kind: str, answer) -> None:
        with lock:
            answers[(kind, answer)] += 1
            if answer not in EXPECTED[kind]:
                unexpected[(kind, answer)] += 1

    def grpc_worker(target: str, deadline: float) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.ModelServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            good = (("authorization", f"Bearer {BENCH_KEY}"),)
            for n in itertools.count():
                if time.monotonic() > deadline:
                    return
                kind = (
                    "grpc-new",
                    "grpc-duplicate",
                    "grpc-invalid",
                    "grpc-bad-key",
                    "grpc-health",
                )[n % 5]
                if kind == "grpc-health":
                    health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                    record(kind, "OK")
                    continue
                model = {"id": f"soak-{next(ids)}", **MODEL}
                if kind == "grpc-duplicate":
                    model["id"] = "soak-duplicate"
                if kind == "grpc-invalid":
                    model["name"] = ""
                metadata = good if kind != "grpc-bad-key" else (("authorization", "Bearer no"),)
                request = json_format.ParseDict({"model": model}, pb.CreateModelRequest())
                try:
                    stub.CreateModel(request, metadata=metadata, timeout=10)
                    record(kind, "OK")
                except grpc.RpcError as error:
                    record(kind, error.code().name)

    def http_worker(port: int, deadline: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for n in itertools.count():
            if time.monotonic() > deadline:
                connection.close()
                return
            kind = ("http-new", "http-duplicate", "http-invalid", "http-bad-key")[n % 4]
            model = {"id": f"soak-h{next(ids)}", **MODEL}
            if kind == "http-duplicate":
                model["id"] = "soak-duplicate"
            if kind == "http-invalid":
                model["params"] = {"max_tokens": -1}
            key = BENCH_KEY if kind != "http-bad-key" else "no"
            connection.request(
                "POST",
                "/api/models/create",
                json.dumps(model),
                {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            response.read()
            record(kind, response.status)

    with tempfile.TemporaryDirectory(prefix="model-registry-soak-") as scratch:
        http_port = free_port()
        service, target = start_service(Path(scratch) / "soak.db", http_port)
        try:

            def run(seconds: float) -> float:
                started = time.monotonic()
                threads = [
                    threading.Thread(
                        target=grpc_worker if i % 2 else http_worker,
                        args=(target if i % 2 else http_port, started + seconds),
                    )
                    for i in range(args.threads)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                return time.monotonic() - started

            # The duplicate kind needs its model to exist; a warm-up fills
            # caches and connection pools before the start figures are read.
            http_worker(http_port, time.monotonic() + 0.1)
            run(min(5.0, args.seconds / 5))
            answers.clear()
            unexpected.clear()
            rss_start, fds_start = rss_mib(service.pid), open_fds(service.pid)
            elapsed = run(args.seconds)
            rss_end, fds_end = rss_mib(service.pid), open_fds(service.pid)
        finally:
            service.terminate()
            exit_code = service.wait(30)

    total = sum(answers.values())
    print(
        f"soak: {args.seconds:g} s, {args.threads} threads, {total:,} requests, "
        f"{total / elapsed:,.0f}/s"
    )
    for (kind, answer), count in sorted(answers.items(), key=lambda x: str(x)):
        print(f"  {kind:<16} {answer!s:<18} {count:>8,}")
    print(f"unexpected answers: {sum(unexpected.values())} {dict(unexpected) or ''}")
    print(
        f"server RSS: start {rss_start:.1f} MiB, end {rss_end:.1f} MiB; "
        f"open fds: start {fds_start}, end {fds_end}; exit code {exit_code}"
    )
    if unexpected or exit_code != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
