"""JSON reads through Envoy at set rates: what each request costs the server
and Envoy in CPU, beside its rate and latency.

    .venv/bin/python bench/json_read_cpu.py [--read get|list] [--rates 900,0]
                                            [--caller admin|reader] [--stored 20000]
                                            [--seconds 5]

A rate of 0 runs as fast as 16 connections go (bench/wrk_read.lua); any
other is paced (bench/wrk_paced.lua: latency counted from when each request
was due). CPU per request (the processes' CPU time from /proc over the run,
divided by the requests) swings less between runs than the rates do on a
shared machine: run it on the code before and after a change, alternately.
The database holds the benchmark's fixture and `--stored` models."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

from bench import (
    BENCH_KEY,
    JSON_CONNECTIONS,
    child_pids,
    cpu_seconds,
    ensure_wrk,
    http_reads,
    sample_ids,
    seeding,
    start_service,
)
from ports import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read", choices=("get", "list"), default="list")
    parser.add_argument("--rates", default="900,0", help="requests/s, comma-separated; 0: unpaced")
    parser.add_argument("--caller", choices=("admin", "reader"), default="admin")
    parser.add_argument("--stored", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    wrk = ensure_wrk()
    if wrk is None:
        parser.error("wrk could not be built here")
    key = BENCH_KEY if args.caller == "admin" else seeding.READER_KEY

    with tempfile.TemporaryDirectory(prefix="model-registry-json-cpu-") as scratch:
        database = Path(scratch) / "bench.db"
        port = free_port()
        service, _ = start_service(database, port)
        try:
            db = sqlite3.connect(database)
            now = int(time.time())
            seeding.seed_people(db, now)
            fixture = seeding.seed_fixture(db, args.stored, now)
            seeding.seed_rest(db, args.stored, now, args.stored - fixture)
            db.commit()
            seeding.settle(db)
            ids = sample_ids(db, 1000)
            db.close()
            if args.read == "list":
                paths = ["/api/v1/models/list"]
            else:
                paths = [f"/api/v1/models/model?id={model_id}" for model_id in ids]
            envoy = child_pids(service.pid)[0]
            http_reads(wrk, port, JSON_CONNECTIONS, 2, key, paths, Path(scratch))  # warm-up
            print(f"{args.caller}'s {args.read}, {args.stored:,} stored, {JSON_CONNECTIONS} conn.")
            print(
                f"{'offered/s':>10}{'served/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
                f"{'server ms':>11}{'Envoy ms':>10}  (CPU per request)"
            )
            for rate in (float(r) for r in args.rates.split(",")):
                server_before, envoy_before = cpu_seconds(service.pid), cpu_seconds(envoy)
                load = http_reads(
                    wrk,
                    port,
                    JSON_CONNECTIONS,
                    args.seconds,
                    key,
                    paths,
                    Path(scratch),
                    rate=rate or None,
                )
                requests = max(1, load.requests)
                server = (cpu_seconds(service.pid) - server_before) / requests * 1000
                envoy_ms = (cpu_seconds(envoy) - envoy_before) / requests * 1000
                offered = f"{rate:,.0f}" if rate else "unpaced"
                print(
                    f"{offered:>10}{load.rate:>10,.0f}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}"
                    f"{server:>11.3f}{envoy_ms:>10.3f}"
                )
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(30)


if __name__ == "__main__":
    main()
