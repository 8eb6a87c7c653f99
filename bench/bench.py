"""Benchmark: the service near its ceiling, figures side by side in one run.

    python3 tasks.py bench [--seconds 5] [--seed 1000000] [--quick]

Starts `model-registry serve` (gRPC + Envoy) on a fresh SQLite database and
measures, on the same server:
  - the ceiling: grpc.health.v1.Health/Check requests/s;
  - CreateModel over gRPC: creates/s and the ratio to the ceiling;
  - CreateModel as JSON through Envoy (wrk): creates/s, p50/p99 at 1, 32, 64
    connections;
  - CreateModel over gRPC with SEED models already stored;
  - the server's RSS at start, after warm-up and at the end.
gRPC load comes from Python grpc.aio clients in one process per core; HTTP
load from wrk (Debian package `wrk`; installed with apt-get when missing and
running as root)."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from modelregistry_server.readiness import HTTP_LISTENING, parse_listening

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # for ports.py, which the tests use too
from ports import free_port  # noqa: E402

BIN = Path(sys.executable).parent
BENCH_KEY = "mr-bench-admin-key-0123456789abcdefghijklmnopqrstuvwxyz"
MODEL = {
    "name": "Bench model",
    "base_model_id": "gpt-4",
    "params": {"temperature": 0.7, "max_tokens": 2000, "top_p": 1.0},
    "meta": {"description": "benchmark", "capabilities": {"vision": True}},
    "access_grants": [{"access_type": "group", "access_id": "developers", "permission": "read"}],
}


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


# -- gRPC load (Python clients, one process per core) -----------------------------


def _grpc_worker(target, method, prefix, concurrency, seconds, results):
    results.put(asyncio.run(_grpc_load(target, method, prefix, concurrency, seconds)))


async def _grpc_load(target, method, prefix, concurrency, seconds):
    import grpc
    from google.protobuf import json_format
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from modelregistry.v1 import model_service_pb2 as pb
    from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

    metadata = (("authorization", f"Bearer {BENCH_KEY}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        if method == "health":
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest()

            def call(_n):
                return stub.Check(request, timeout=10)
        else:
            stub = pb_grpc.ModelServiceStub(channel)
            template = json_format.ParseDict(
                {"model": {"id": "x", **MODEL}}, pb.CreateModelRequest()
            )

            def call(n):
                request = pb.CreateModelRequest()
                request.CopyFrom(template)
                request.model.id = f"{prefix}-{n}"
                return stub.CreateModel(request, metadata=metadata, timeout=10)

        latencies: list[float] = []
        errors = 0
        counter = iter(range(10**9))
        deadline = time.perf_counter() + seconds

        async def loop():
            nonlocal errors
            while (start := time.perf_counter()) < deadline:
                try:
                    await call(next(counter))
                except grpc.RpcError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - began


def grpc_load(
    target: str, method: str, prefix: str, seconds: float, processes: int, concurrency: int = 32
) -> Load:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(
            target=_grpc_worker,
            args=(target, method, f"{prefix}-p{i}", concurrency, seconds, results),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = sorted(x for lat, _, _ in outcomes for x in lat)
    errors = sum(e for _, e, _ in outcomes)
    elapsed = max(s for _, _, s in outcomes)
    return Load(
        requests=len(latencies) - errors,
        errors=errors,
        seconds=elapsed,
        p50_ms=1000 * latencies[len(latencies) // 2] if latencies else 0,
        p99_ms=1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0,
    )


# -- HTTP load (wrk) ---------------------------------------------------------


def ensure_wrk() -> str | None:
    """wrk's path; installed with apt-get when missing and running as root."""
    if shutil.which("wrk") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install wrk)", file=sys.stderr)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        install = ["apt-get", "install", "-y", "-qq", "wrk"]
        if subprocess.run(install, **quiet).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], **quiet)
            subprocess.run(install, **quiet)
    return shutil.which("wrk")


def http_load(wrk: str, port: int, connections: int, seconds: float, run: str) -> Load:
    threads = max(1, min(2, connections))
    result = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(HERE / "wrk_create.lua"),
            f"http://127.0.0.1:{port}/api/models/create",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_KEY": BENCH_KEY, "BENCH_RUN": run},
        timeout=seconds + 60,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {result.stdout}{result.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    errors = data["non2xx"] + data["socket_errors"]
    return Load(
        data["requests"] - data["non2xx"], errors, data["seconds"], data["p50_ms"], data["p99_ms"]
    )


# -- the service -----------------------------------------------------------------


def start_service(database: Path, http_port: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "MODEL_REGISTRY_ADMIN_KEY": BENCH_KEY}
    process = subprocess.Popen(
        [
            str(BIN / "model-registry"),
            "--database-url",
            f"sqlite:///{database}",
            "serve",
            "--port",
            "0",
            "--http-port",
            str(http_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    target = None
    for line in process.stdout:
        address = parse_listening(line)
        if address is not None:
            target = f"{address.host}:{address.port}"
        if line.startswith(HTTP_LISTENING):
            break
    if target is None:
        raise RuntimeError("the service did not start")
    # keep draining its output so it never blocks on a full pipe
    import threading

    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, target


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in children.read_text().split()] if children.exists() else []


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def seed(database: Path, count: int) -> float:
    """Store `count` models straight into the database, outside the timing."""
    started = time.perf_counter()
    db = sqlite3.connect(database)
    db.execute("PRAGMA synchronous=OFF")
    params = json.dumps(MODEL["params"], separators=(",", ":"))
    meta = json.dumps(
        {**MODEL["meta"], "profile_image_url": "/static/favicon.png"}, separators=(",", ":")
    )
    grants = json.dumps(MODEL["access_grants"], separators=(",", ":"))
    now = int(time.time())
    batch = 50_000
    with db:
        for start in range(0, count, batch):
            db.executemany(
                "INSERT INTO models (id, user_id, base_model_id, name, params, meta,"
                " access_grants, is_active, created_at, updated_at)"
                " VALUES (?, 'admin', 'gpt-4', 'Seeded', ?, ?, ?, 1, ?, ?)",
                (
                    (f"seed-{n:08d}", params, meta, grants, now, now)
                    for n in range(start, min(count, start + batch))
                ),
            )
    db.close()
    return time.perf_counter() - started


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed run")
    parser.add_argument(
        "--seed", type=int, default=1_000_000, help="models stored for the full-database run"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 s runs, 10,000 seeded")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.seed = 1.0, 10_000
    wrk = ensure_wrk()
    processes = os.cpu_count() or 2

    with tempfile.TemporaryDirectory(prefix="model-registry-bench-") as scratch:
        database = Path(scratch) / "bench.db"
        http_port = free_port()
        service, target = start_service(database, http_port)
        try:
            rss_start = rss_mib(service.pid)
            grpc_load(target, "create", "warmup", 1.0, processes)
            if wrk:
                http_load(wrk, http_port, 32, 1.0, "warmup")
            rss_warm = rss_mib(service.pid)

            health = grpc_load(target, "health", "h", args.seconds, processes)
            create = grpc_load(target, "create", "empty", args.seconds, processes)
            http = {}
            envoy = child_pids(service.pid)[0]
            server_cpu = envoy_cpu = None
            for connections in (1, 32, 64) if wrk else ():
                before = cpu_seconds(service.pid), cpu_seconds(envoy), time.monotonic()
                http[connections] = http_load(
                    wrk, http_port, connections, args.seconds, f"c{connections}"
                )
                spent = time.monotonic() - before[2]
                if connections == 32:
                    server_cpu = (cpu_seconds(service.pid) - before[0]) / spent
                    envoy_cpu = (cpu_seconds(envoy) - before[1]) / spent
            seed_seconds = seed(database, args.seed)
            full = grpc_load(target, "create", "full", args.seconds, processes)
            rss_end = rss_mib(service.pid)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(30)

    print()
    print(
        f"model registry benchmark: {os.cpu_count()} cores ({cpu_model()}), SQLite, "
        f"{args.seconds:g} s per run, gRPC load from {processes} Python processes x 32 streams"
    )
    print()
    header = ("measure", "per second", "vs ceiling", "p50 ms", "p99 ms", "errors")
    print("{:<44}{:>12}{:>12}{:>9}{:>9}{:>8}".format(*header))

    def row(name: str, load: Load, ratio: bool = True) -> None:
        share = f"{100 * load.rate / health.rate:.0f}%" if ratio else ""
        print(
            f"{name:<44}{load.rate:>12,.0f}{share:>12}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}"
            f"{load.errors:>8}"
        )

    row("Health/Check over gRPC (the ceiling)", health, ratio=False)
    row("CreateModel over gRPC, empty database", create)
    for connections, load in http.items():
        row(f"CreateModel JSON via Envoy, {connections} connection(s)", load)
    row(f"CreateModel over gRPC, {args.seed:,} stored", full)
    drop = 100 * (1 - full.rate / create.rate) if create.rate else 0
    print()
    print(
        f"creates/s with {args.seed:,} stored vs empty: {-drop:+.1f}% "
        f"(seeded in {seed_seconds:.1f} s, outside the timing)"
    )
    if server_cpu is None:
        print("JSON via Envoy: not measured, wrk is missing (apt-get install wrk)")
    else:
        print(
            f"CPU during the 32-connection JSON run: server {100 * server_cpu:.0f}%, "
            f"Envoy {100 * envoy_cpu:.0f}% (100% = one core of {os.cpu_count()})"
        )
    print(
        f"server RSS: start {rss_start:.1f} MiB, after warm-up {rss_warm:.1f} MiB, "
        f"end {rss_end:.1f} MiB"
    )


if __name__ == "__main__":
    main()
