"""Server CPU per call, by RPC: what one call costs the server process.

    .venv/bin/python bench/cpu_per_call.py [--seconds 4] [--rounds 2] [--rows create,get,...]

Throughput on a shared 2-core machine swings with whatever else runs; the
CPU time the server process spends per call (read from /proc before and
after each run) swings much less, so it is what a change on a hot path is
judged by: run this on the code before and after, alternately, in one
sitting. Load: bench.py's gRPC load (2 processes x 32 streams) on a fresh
SQLite database holding the benchmark's fixture and 10,000 models."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

from modelregistry.client import Client

from bench import BENCH_KEY, GrpcLoad, cpu_seconds, sample_ids, seeding, start_service, token_after
from ports import free_port

ROWS = ("health", "create", "get", "update", "list", "list-reader", "list-reader-deep")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=2, help="times each row is run")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"some of {', '.join(ROWS)}")
    args = parser.parse_args()
    rows = args.rows.split(",")
    if not set(rows) <= set(ROWS):
        parser.error(f"--rows: rows are {', '.join(ROWS)}")

    with tempfile.TemporaryDirectory(prefix="model-registry-cpu-") as scratch:
        database = Path(scratch) / "bench.db"
        service, target = start_service(database, free_port())
        load = GrpcLoad(target, 2)
        db = sqlite3.connect(database)
        try:
            now = int(time.time())
            seeding.seed_people(db, now)
            seeding.seed_fixture(db, 10_000, now)
            load.run({"kind": "create", "prefix": "warmup"}, 1.0)
            ids = sample_ids(db, 1_000)
            with Client(target, api_key=seeding.READER_KEY, timeout=60) as reader:
                # The reader's last page: after 270 of the 300 models they may read.
                reader_deep = token_after(reader, 270)
            print(f"{'call':<18}{'per second':>12}{'CPU us/call':>13}{'p50 ms':>9}{'p99 ms':>9}")
            for round_number in range(args.rounds):
                for row in rows:
                    spec = {
                        "health": {"kind": "health"},
                        "create": {"kind": "create", "prefix": f"round{round_number}"},
                        "get": {"kind": "get", "ids": ids},
                        "update": {"kind": "update", "ids": ids},
                        "list": {"kind": "list", "key": BENCH_KEY, "request": {}},
                        # A user who may read 300 of the models (bench/seeding.py).
                        "list-reader": {
                            "kind": "list",
                            "key": seeding.READER_KEY,
                            "request": {},
                        },
                        "list-reader-deep": {
                            "kind": "list",
                            "key": seeding.READER_KEY,
                            "request": {"page_token": reader_deep},
                        },
                    }[row]
                    before = cpu_seconds(service.pid)
                    result = load.run(spec, args.seconds)
                    used = cpu_seconds(service.pid) - before
                    per_call = 1e6 * used / max(result.requests, 1)
                    print(
                        f"{row:<18}{result.rate:>12,.0f}{per_call:>13,.0f}"
                        f"{result.p50_ms:>9.1f}{result.p99_ms:>9.1f}",
                        flush=True,
                    )
        finally:
            load.close()
            db.close()
            service.send_signal(signal.SIGTERM)
            service.wait(30)


if __name__ == "__main__":
    main()
