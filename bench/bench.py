"""Benchmark: the service near its ceiling, figures side by side in one run.

    python3 tasks.py bench [--seconds 5] [--seed 1000000] [--quick] [--rows GROUPS]

Starts `model-registry serve` (gRPC + Envoy) on a fresh SQLite database,
stores the benchmark's fixture (bench/seeding.py: 1,000 models, of which a
non-admin user may read 300) and measures, on the same server:
  - the ceiling: grpc.health.v1.Health/Check requests/s;
  - the reads on that empty-ish database, as the admin and as the non-admin:
    GetModel, ListModels' first page, a deep page (page_token), a text
    search (`query`) over gRPC; GetModel and the first page also as JSON
    through Envoy (wrk, 16 connections), as fast as they go and paced at
    the create rate just measured (p50/p99 from when each request was due);
  - CreateModel over gRPC, before the reads of each state: creates/s and
    the ratio to the ceiling;
  - CreateModel as JSON through Envoy (wrk): creates/s, p50/p99 at 1, 32, 64
    connections;
  - then, with the models stored topped up to SEED (still 300 for the
    non-admin), the same reads and CreateModel over gRPC again;
  - the server's RSS at start, after warm-up and at the end;
and sums up each read row: SEED stored vs empty-ish, non-admin vs admin,
reads vs creates. The import rows (bench/transfer_bench.py), first, on a
quiet machine: `model-registry import` of 100,000 models into an empty
database, the same file again, and `model-registry export`. --rows runs only
some groups of rows (create, json, read, json-read, import; import alone
starts no server). gRPC load comes from Python grpc.aio clients in one process per
core; HTTP load from wrk (Debian package `wrk`; installed with apt-get when
missing and running as root)"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from modelregistry.client import AlreadyExists, Client
from modelregistry_server.readiness import HTTP_LISTENING, parse_listening

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # for ports.py, which the tests use too
import seeding  # noqa: E402
import transfer_bench  # noqa: E402

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


def _grpc_worker(target, concurrency, commands, results):
    """A load process: runs each command it is sent (a spec, seconds, its
    number) and sends back the latencies, errors and elapsed time."""
    while (command := commands.get()) is not None:
        spec, seconds, index = command
        results.put(asyncio.run(_grpc_load(target, spec, index, concurrency, seconds)))


async def _grpc_load(target, spec, index, concurrency, seconds):
    import grpc
    from google.protobuf import json_format
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from modelregistry.v1 import model_service_pb2 as pb
    from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

    metadata = (("authorization", f"Bearer {spec.get('key', BENCH_KEY)}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ModelServiceStub(channel)
        kind = spec["kind"]
        if kind == "health":
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest()

            def call(_n):
                return health.Check(request, timeout=10)
        elif kind == "create":
            template = json_format.ParseDict(
                {"model": {"id": "x", **MODEL}}, pb.CreateModelRequest()
            )
            prefix = f"{spec['prefix']}-p{index}"

            def call(n):
                request = pb.CreateModelRequest()
                request.CopyFrom(template)
                request.model.id = f"{prefix}-{n}"
                return stub.CreateModel(request, metadata=metadata, timeout=10)
        elif kind == "update":
            ids = spec["ids"]
            start = index * 7919

            def call(n):
                request = pb.UpdateModelRequest()
                request.model.CopyFrom(template)
                request.model.id = ids[(start + n) % len(ids)]
                request.model.name = f"Updated {n}"
                return stub.UpdateModel(request, metadata=metadata, timeout=10)

            template = json_format.ParseDict({"id": "x", **MODEL}, pb.Model())
        elif kind == "get":
            ids = spec["ids"]
            start = index * 7919  # each process from its own place

            def call(n):
                request = pb.GetModelRequest(id=ids[(start + n) % len(ids)])
                return stub.GetModel(request, metadata=metadata, timeout=10)
        elif kind == "list":
            request = json_format.ParseDict(spec["request"], pb.ListModelsRequest())

            def call(_n):
                return stub.ListModels(request, metadata=metadata, timeout=10)
        else:
            raise ValueError(kind)

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


class GrpcLoad:
    """gRPC load from `processes` Python processes of `concurrency` streams
    each, started once and kept for every run."""

    def __init__(self, target: str, processes: int, concurrency: int = 32) -> None:
        context = multiprocessing.get_context("spawn")
        self._results = context.Queue()
        self._commands = [context.Queue() for _ in range(processes)]
        self._workers = [
            context.Process(
                target=_grpc_worker,
                args=(target, concurrency, commands, self._results),
                daemon=True,
            )
            for commands in self._commands
        ]
        for worker in self._workers:
            worker.start()

    def run(self, spec: dict, seconds: float) -> Load:
        for index, commands in enumerate(self._commands):
            commands.put((spec, seconds, index))
        outcomes = [self._results.get(timeout=seconds + 120) for _ in self._commands]
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

    def close(self) -> None:
        for commands in self._commands:
            commands.put(None)
        for worker in self._workers:
            worker.join(30)


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


def http_load(
    wrk: str,
    port: int,
    connections: int,
    seconds: float,
    run: str,
    *,
    script: str = "wrk_create.lua",
    path: str = "/api/models/create",
    env: dict[str, str] | None = None,
    threads: int | None = None,
) -> Load:
    threads = threads or max(1, min(2, connections))
    result = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(HERE / script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_KEY": BENCH_KEY, "BENCH_RUN": run, **(env or {})},
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


def http_reads(
    wrk: str,
    port: int,
    connections: int,
    seconds: float,
    key: str,
    paths: list[str],
    scratch: Path,
    rate: float | None = None,
) -> Load:
    """GETs of `paths`, in turn, as the holder of `key`: as fast as they go
    (bench/wrk_read.lua), or at `rate` a second in all with latency counted
    from when each was due (bench/wrk_paced.lua)."""
    listed = scratch / "wrk-paths.txt"
    listed.write_text("\n".join(paths) + "\n")
    env = {"BENCH_KEY": key, "BENCH_PATHS": str(listed)}
    if rate is None:
        script, threads = "wrk_read.lua", None
    else:
        # One connection a thread: a reply belongs to its thread's request.
        script, threads = "wrk_paced.lua", connections
        env |= {"BENCH_RATE": f"{rate:.3f}", "BENCH_THREADS": str(connections)}
    run = "read" if rate is None else "paced"
    return http_load(
        wrk, port, connections, seconds, run, script=script, path=paths[0], env=env, threads=threads
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


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- the read rows -----------------------------------------------------------------

READS = {
    "get": "GetModel",
    "first": "ListModels first page",
    "deep": "ListModels deep page",
    "search": "ListModels search",
}
JSON_READS = ("get", "first")  # also measured as JSON through Envoy
USERS = {"admin": BENCH_KEY, "non-admin": seeding.READER_KEY}
DEEP = 10_000  # the deep page starts after this many models, or the deepest there is
GET_SAMPLE = 1_000  # the admin's GetModel ids: this many stored models, at random
UPDATE_SAMPLE = 1_000  # UpdateModel spreads over this many stored models, at random
JSON_CONNECTIONS = 16
# The busy row: a reader's first page while an admin changes a model the
# reader cannot see this many times a second. Each change is a commit, after
# which nothing a reader's query kept is used (storage/kept_reads.py).
CHANGES_BESIDE = 100
BUSY_MODEL = "bench-busy"


def read_row(read: str, user: str, json_via_envoy: bool = False, paced: bool = False) -> str:
    how = f"JSON via Envoy, {JSON_CONNECTIONS} conn." if json_via_envoy else "over gRPC"
    if paced:
        how = "JSON at the create rate"  # through Envoy, JSON_CONNECTIONS connections
    return f"{READS[read]} {how}, {user}"


@dataclass
class Reads:
    """The read rows measured on one state of the database."""

    title: str
    stored: int
    loads: dict[str, Load]
    notes: list[str]


def token_after(client: Client, depth: int) -> str:
    """The page token of the page that starts after `depth` models (newest
    first, the default order), paging there 1,000 at a time."""
    token = ""
    while depth > 0:
        page = client.list_models(page_size=min(1000, depth), page_token=token)
        depth -= len(page.items)
        token = page.next_page_token
    return token


def settled_count(db: sqlite3.Connection) -> int:
    """The models stored, once creates still in flight when a load stopped
    have landed (the count holds still for half a second)."""
    count = seeding.stored(db)
    for _ in range(20):
        time.sleep(0.5)
        again = seeding.stored(db)
        if again == count:
            break
        count = again
    return count


def sample_ids(db: sqlite3.Connection, count: int) -> list[str]:
    """`count` ids of stored models, at random (the same ones every run)."""
    top = db.execute("SELECT max(rowid) FROM models").fetchone()[0] or 0
    rowids = random.Random(11).sample(range(1, top + 1), min(count, top))
    marks = ",".join("?" * len(rowids))
    ids = [row[0] for row in db.execute(f"SELECT id FROM models WHERE rowid IN ({marks})", rowids)]
    random.Random(12).shuffle(ids)
    return ids


def measure_reads(
    title: str,
    load: GrpcLoad,
    target: str,
    db: sqlite3.Connection,
    total: int,
    seconds: float,
    groups: set[str],
    wrk: str | None,
    http_port: int,
    scratch: Path,
    paced_rate: float | None,
) -> Reads:
    """Every read row, as the admin and as READER, on the database as it is;
    the JSON rows also at `paced_rate` requests a second when it is given."""
    readable = seeding.readable(total)
    ids = {"admin": sample_ids(db, GET_SAMPLE), "non-admin": sum(readable.values(), [])}
    requests: dict[str, dict[str, dict]] = {}
    totals: dict[str, dict[str, int]] = {}
    # The set-up reads use the Python client; the measured load uses bare
    # grpc.aio stubs, so that the figures are the server's, not a client's.
    with Client(target, timeout=60) as anyone:
        for user, key in USERS.items():
            client = anyone.with_options(api_key=key)
            visible = client.list_models().total
            depth = max(0, min(DEEP, visible - 30))
            found = client.list_models(query=seeding.SEARCH_WORD).total
            totals[user] = {"visible": visible, "depth": depth, "found": found}
            requests[user] = {
                "first": {},
                "deep": {"page_token": token_after(client, depth)},
                "search": {"query": seeding.SEARCH_WORD},
            }
    loads: dict[str, Load] = {}
    changed = 0
    # The host's speed drifts over a run: the ceiling again, beside this phase's reads.
    loads[PHASE_CEILING] = load.run({"kind": "health"}, seconds)
    for read in READS if "read" in groups else ():
        for user, key in USERS.items():
            if read == "get":
                spec = {"kind": "get", "key": key, "ids": ids[user]}
            else:
                spec = {"kind": "list", "key": key, "request": requests[user][read]}
            loads[read_row(read, user)] = load.run(spec, seconds)
    if "read" in groups:
        busy = f"{read_row('first', 'non-admin')}, {CHANGES_BESIDE} changes/s beside"
        spec = {"kind": "list", "key": seeding.READER_KEY, "request": {}}
        with changes_beside(target, CHANGES_BESIDE) as count:
            loads[busy] = load.run(spec, seconds)
        changed = count[0]
    for read in JSON_READS if wrk and "json-read" in groups else ():
        for user, key in USERS.items():
            if read == "get":
                paths = [f"/api/v1/models/model?id={quote(i)}" for i in ids[user]]
            else:
                paths = ["/api/v1/models/list"]
            loads[read_row(read, user, json_via_envoy=True)] = http_reads(
                wrk, http_port, JSON_CONNECTIONS, seconds, key, paths, scratch
            )
            if paced_rate:
                loads[read_row(read, user, paced=True)] = http_reads(
                    wrk, http_port, JSON_CONNECTIONS, seconds, key, paths, scratch, paced_rate
                )
    admin, reader = totals["admin"], totals["non-admin"]
    shares = ", ".join(f"{len(v)} {k}" for k, v in readable.items())
    notes = [
        f"non-admin reads {reader['visible']:,} of {admin['visible']:,} ({shares}); "
        f"GetModel: admin {len(ids['admin']):,} stored ids at random, "
        f"non-admin the {len(ids['non-admin']):,} it reads",
        f"deep page: after {admin['depth']:,} (admin), {reader['depth']:,} (non-admin); "
        f"search {seeding.SEARCH_WORD!r}: {admin['found']:,} matches (admin), "
        f"{reader['found']:,} (non-admin)",
    ]
    if changed:
        notes.append(f"changes beside the busy row: {changed / seconds:,.0f}/s (ToggleModel)")
    if paced_rate and wrk and "json-read" in groups:
        notes.append(
            f"'at the create rate': {JSON_CONNECTIONS} connections send {paced_rate:,.0f}"
            " requests/s in all (the gRPC create rate just before), p50/p99 counted from when"
            " each request was due, so a request held back by a slow reply counts its wait"
        )
    return Reads(title, admin["visible"], loads, notes)


@contextlib.contextmanager
def changes_beside(target: str, per_second: int) -> Iterator[list[int]]:
    """An admin toggles BUSY_MODEL (no grants) `per_second` times a second
    while the block runs; yields [changes made], filled in at the end."""
    stop = threading.Event()
    count = [0]
    with Client(target, api_key=BENCH_KEY, timeout=10) as admin:
        try:
            admin.create_model({"id": BUSY_MODEL, **MODEL})
        except AlreadyExists:
            pass

        def change() -> None:
            next_at = time.monotonic()
            while not stop.is_set():
                admin.toggle_model(BUSY_MODEL)
                count[0] += 1
                next_at += 1 / per_second
                stop.wait(max(0.0, next_at - time.monotonic()))

        changer = threading.Thread(target=change, name="changes-beside")
        changer.start()
        try:
            yield count
        finally:
            stop.set()
            changer.join()


def print_summary(empty: Reads, full: Reads, creates: tuple[Load | None, Load | None]) -> None:
    """Per read row: full vs empty, non-admin vs admin, reads vs creates."""
    print()
    print(
        f"reads/s: {full.stored:,} stored vs empty-ish ({empty.stored:,}); non-admin / admin;"
        " read rate / gRPC create rate (same database)"
    )
    print(
        "change: of the read rate; ÷ ceiling: of the read rate as a share of the phase's"
        " Health/Check rate (what the database's size changed, less the host's drift)"
    )
    header = (
        "read",
        "empty-ish",
        f"{full.stored:,}",
        "change",
        "÷ ceiling",
        "non-admin/admin",
        "/ creates",
    )
    print("{:<56}{:>10}{:>11}{:>9}{:>11}{:>17}{:>15}".format(*header))
    ceilings = empty.loads.get(PHASE_CEILING), full.loads.get(PHASE_CEILING)
    for name, load in empty.loads.items():
        after = full.loads.get(name)
        change = f"{100 * (after.rate / load.rate - 1):+.1f}%" if after and load.rate else ""
        of_ceiling = ""
        if after and load.rate and ceilings[0] and ceilings[1] and ceilings[1].rate:
            drift = ceilings[1].rate / ceilings[0].rate
            of_ceiling = f"{100 * (after.rate / load.rate / drift - 1):+.1f}%"
        ratio = ""
        if name.endswith(", non-admin"):
            admin = name.removesuffix("non-admin") + "admin"
            ratio = " / ".join(
                f"{phase.loads[name].rate / phase.loads[admin].rate:.2f}"
                for phase in (empty, full)
                if phase.loads.get(admin) and phase.loads.get(name) and phase.loads[admin].rate
            )
        versus = " / ".join(
            f"{phase.rate / create.rate:.2f}x"
            for phase, create in zip((load, after), creates, strict=True)
            if phase is not None and create is not None and create.rate
        )
        rate_after = f"{after.rate:,.0f}" if after else ""
        print(
            f"{name:<56}{load.rate:>10,.0f}{rate_after:>11}{change:>9}{of_ceiling:>11}"
            f"{ratio:>17}{versus:>15}"
        )


GROUPS = ("create", "json", "read", "json-read", "import")
PHASE_CEILING = "Health/Check over gRPC (this phase's ceiling)"
IMPORTED = 100_000  # models of the import rows (--quick: 10,000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed run")
    parser.add_argument(
        "--seed", type=int, default=1_000_000, help="models stored for the full-database runs"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 s runs, 10,000 seeded")
    parser.add_argument(
        "--rows",
        default=",".join(GROUPS),
        help="groups of rows to run, comma-separated: create (gRPC creates), json (JSON"
        " creates), read (gRPC reads), json-read (JSON reads), import (model-registry import"
        " and export of 100,000 models); default all. Health/Check runs with any but import",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.seed = 1.0, 10_000
    groups = set(args.rows.split(","))
    if not groups <= set(GROUPS):
        parser.error(f"--rows: groups are {', '.join(GROUPS)}")
    transfers = []
    if "import" in groups:
        with tempfile.TemporaryDirectory(prefix="model-registry-bench-") as scratch:
            count = 10_000 if args.quick else IMPORTED
            transfers = transfer_bench.measure_transfer(count, Path(scratch))
        if groups == {"import"}:
            print_transfers(transfers)
            return
    wrk = ensure_wrk() if groups & {"json", "json-read"} else None
    processes = os.cpu_count() or 2
    creates = {"empty": None, "full": None}
    updates = {"empty": None, "full": None}  # each writes the model and a new version
    http: dict[int, Load] = {}
    server_cpu = envoy_cpu = None
    empty = full = None

    with tempfile.TemporaryDirectory(prefix="model-registry-bench-") as scratch:
        database = Path(scratch) / "bench.db"
        http_port = free_port()
        service, target = start_service(database, http_port)
        load = GrpcLoad(target, processes)
        db = sqlite3.connect(database)
        db.execute("PRAGMA busy_timeout=10000")
        try:
            now = int(time.time())
            seeding.seed_people(db, now)
            seeding.seed_fixture(db, args.seed, now)
            rss_start = rss_mib(service.pid)
            if groups & {"create", "json"}:
                load.run({"kind": "create", "prefix": "warmup"}, 1.0)
            if wrk and "json" in groups:
                http_load(wrk, http_port, 32, 1.0, "warmup")
            if groups & {"read", "json-read"}:
                load.run({"kind": "list", "key": BENCH_KEY, "request": {}}, 1.0)
            rss_warm = rss_mib(service.pid)

            health = load.run({"kind": "health"}, args.seconds)

            def reads(title: str, created: Load | None) -> Reads | None:
                if not groups & {"read", "json-read"}:
                    return None
                return measure_reads(
                    title,
                    load,
                    target,
                    db,
                    args.seed,
                    args.seconds,
                    groups,
                    wrk,
                    http_port,
                    Path(scratch),
                    created.rate if created else None,
                )

            # Creates first in each phase: the paced JSON reads run at their rate.
            if "create" in groups:
                creates["empty"] = load.run({"kind": "create", "prefix": "empty"}, args.seconds)
                updates["empty"] = load.run(
                    {"kind": "update", "ids": sample_ids(db, UPDATE_SAMPLE)}, args.seconds
                )
            empty = reads("reads on the empty-ish database", creates["empty"])
            envoy = child_pids(service.pid)[0]
            for connections in (1, 32, 64) if wrk and "json" in groups else ():
                before = cpu_seconds(service.pid), cpu_seconds(envoy), time.monotonic()
                http[connections] = http_load(
                    wrk, http_port, connections, args.seconds, f"c{connections}"
                )
                spent = time.monotonic() - before[2]
                if connections == 32:
                    server_cpu = (cpu_seconds(service.pid) - before[0]) / spent
                    envoy_cpu = (cpu_seconds(envoy) - before[1]) / spent
            started = time.perf_counter()
            seeded = seeding.seed_rest(db, args.seed, now, args.seed - settled_count(db))
            seed_seconds = time.perf_counter() - started
            seeding.check_counts(db)
            if "create" in groups:
                creates["full"] = load.run({"kind": "create", "prefix": "full"}, args.seconds)
                updates["full"] = load.run(
                    {"kind": "update", "ids": sample_ids(db, UPDATE_SAMPLE)}, args.seconds
                )
            full = reads(f"reads with {args.seed:,} stored", creates["full"])
            rss_end = rss_mib(service.pid)
            counted = seeding.check_counts(db)  # the server's writes kept the totals too
        finally:
            db.close()
            load.close()
            service.send_signal(signal.SIGTERM)
            service.wait(30)

    print()
    print(
        f"model registry benchmark: {os.cpu_count()} cores ({cpu_model()}), SQLite, "
        f"{args.seconds:g} s per run, gRPC load from {processes} Python processes x 32 streams"
    )
    print()
    header = ("measure", "per second", "vs ceiling", "p50 ms", "p99 ms", "errors")
    print("{:<56}{:>12}{:>12}{:>9}{:>9}{:>8}".format(*header))

    def row(name: str, load: Load, ratio: bool = True) -> None:
        share = f"{100 * load.rate / health.rate:.0f}%" if ratio else ""
        print(
            f"{name:<56}{load.rate:>12,.0f}{share:>12}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}"
            f"{load.errors:>8}"
        )

    row("Health/Check over gRPC (the ceiling)", health, ratio=False)
    if creates["empty"]:
        row("CreateModel over gRPC, empty database", creates["empty"])
    for connections, measured in http.items():
        row(f"CreateModel JSON via Envoy, {connections} connection(s)", measured)
    if creates["full"]:
        row(f"CreateModel over gRPC, {args.seed:,} stored", creates["full"])
    if updates["empty"]:
        row("UpdateModel over gRPC (model + version), empty", updates["empty"])
    if updates["full"]:
        row(f"UpdateModel over gRPC (model + version), {args.seed:,} stored", updates["full"])
    for phase in (empty, full):
        if phase is None:
            continue
        print()
        print(f"{phase.title} ({phase.stored:,} stored)")
        for name, measured in phase.loads.items():
            row(name, measured)
    print()
    if creates["empty"] and creates["full"]:
        drop = 100 * (1 - creates["full"].rate / creates["empty"].rate)
        print(f"creates/s with {args.seed:,} stored vs empty: {-drop:+.1f}%")
    print(
        f"seeded {seeded:,} models in {seed_seconds:.1f} s, outside the timing "
        f"(stored at the end: {counted[True]:,} active, {counted[False]:,} inactive,"
        " as model_counts keeps them)"
    )
    for phase in (empty, full):
        for note in phase.notes if phase else ():
            print(f"{phase.title}: {note}")
    if groups & {"json", "json-read"} and wrk is None:
        print("JSON via Envoy: not measured, wrk is missing (apt-get install wrk)")
    if server_cpu is not None:
        print(
            f"CPU during the 32-connection JSON run: server {100 * server_cpu:.0f}%, "
            f"Envoy {100 * envoy_cpu:.0f}% (100% = one core of {os.cpu_count()})"
        )
    print(
        f"server RSS: start {rss_start:.1f} MiB, after warm-up {rss_warm:.1f} MiB, "
        f"end {rss_end:.1f} MiB"
    )
    if empty and full:
        print_summary(empty, full, (creates["empty"], creates["full"]))
    if transfers:
        print_transfers(transfers)


def print_transfers(runs: list[transfer_bench.Run]) -> None:
    print()
    print(f"export and import, SQLite, {runs[0].models:,} models, one run each")
    print("{:<56}{:>12}{:>12}".format("measure", "models/s", "seconds"))
    for run in runs:
        print(f"{run.name:<56}{run.rate:>12,.0f}{run.seconds:>12.1f}")


if __name__ == "__main__":
    main()
