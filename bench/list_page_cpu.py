"""CPU of one ListModels page in-process: the domain, storage and the reply's
encoding, without gRPC, the interceptor or load, one page at a time. Two
figures: the query asked again and again (a reader's matches are kept from
its second page: storage/kept_reads.py), and with another connection's
commit before every page (nothing kept; the commit is not counted).

    .venv/bin/python bench/list_page_cpu.py [--stored 10000] [--caller admin|reader]
                                            [--query WORD] [--pages 2000] [--reply grpc|json]

The database holds the benchmark's fixture (bench/seeding.py) and the rest
of `--stored` models; a 1,000,000-model file takes about 80 s to make and is
kept in the temporary directory's parent (`--keep DIR`) for the next run."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import seeding
import uvloop

from modelregistry.v1 import model_service_pb2 as pb
from modelregistry_server.app import build_app
from modelregistry_server.config import Settings
from modelregistry_server.domain.models import ROLE_ADMIN, ROLE_USER, Principal
from modelregistry_server.storage.migrations import upgrade
from modelregistry_server.transport.convert import list_query_from_proto
from modelregistry_server.transport.list_replies import (
    ModelEntries,
    encoded_page,
    item_entry,
    item_json,
    json_page,
)


def seeded(stored: int, keep: Path) -> Path:
    """A database of `stored` models, made once per size in `keep`."""
    path = keep / f"list-page-cpu-{stored}.db"
    if not path.exists():
        making = path.with_suffix(".making")
        making.unlink(missing_ok=True)
        upgrade(f"sqlite:///{making}")
        db = sqlite3.connect(making)
        now = int(time.time())
        seeding.seed_people(db, now)
        fixture = seeding.seed_fixture(db, stored, now)
        seeding.seed_rest(db, stored, now, stored - fixture)
        db.commit()
        db.close()
        making.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=10_000)
    parser.add_argument("--caller", choices=("admin", "reader"), default="admin")
    parser.add_argument("--query", default="", help="ListModels' text query")
    parser.add_argument("--pages", type=int, default=2_000)
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument(
        "--reply",
        choices=("grpc", "json"),
        default="grpc",
        help="the reply written: ListModels' protobuf or ListModelsJson's JSON",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="model-registry-page-") as scratch:
        database = Path(scratch) / "registry.db"
        shutil.copy(seeded(args.stored, args.keep), database)
        app = build_app(Settings(database_url=f"sqlite:///{database}"))
        if args.caller == "admin":
            caller = Principal(seeding.ADMIN, ROLE_ADMIN, True)
        else:
            caller = Principal(seeding.READER, ROLE_USER, False)
        entries = ModelEntries(item_entry if args.reply == "grpc" else item_json)
        write_page = encoded_page if args.reply == "grpc" else json_page
        request = pb.ListModelsRequest(query=args.query)

        other = sqlite3.connect(database)
        other.execute("CREATE TABLE bench_changes (n INTEGER)")

        async def pages(count: int, *, changing: bool) -> float:
            """CPU seconds of `count` pages; with a commit before each if `changing`."""
            spent = 0.0
            for _ in range(count):
                if changing:
                    other.execute("INSERT INTO bench_changes VALUES (1)")
                    other.commit()
                started = time.process_time()
                query = list_query_from_proto(request)
                page = await app.registry.list_models(caller, query)
                write_page(query, page, entries.of)
                spent += time.process_time() - started
            return spent

        try:
            uvloop.run(pages(min(200, args.pages), changing=False))  # warm: caches, statements
            again = uvloop.run(pages(args.pages, changing=False))
            changed = uvloop.run(pages(args.pages, changing=True))
        finally:
            other.close()
            app.close()
    where = f"{args.caller} page as {args.reply}, {args.stored:,} stored, query {args.query!r}"
    print(f"{where}, asked again: {again / args.pages * 1e6:,.0f} µs CPU a page")
    print(f"{where}, a commit before each: {changed / args.pages * 1e6:,.0f} µs CPU a page")


if __name__ == "__main__":
    main()
