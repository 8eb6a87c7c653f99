"""`model-registry export` and `model-registry import`: the operator's way to
move models between registries (or in from Open WebUI), on the database
directly, as any user. An import writes one transaction per batch of
MAX_IMPORT_RECORDS records, so a file of any size goes in at the speed of
bulk inserts, and a stopped import can simply be run again (it is
idempotent)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from typing import Any, TextIO

from tqdm import tqdm

from .app import open_transfer
from .domain.errors import ServiceUnavailable, UserNotFound
from .domain.models import Principal
from .domain.records import FORMAT, FORMAT_VERSION, FileRefused, file_records
from .domain.stores import UserStore
from .domain.transfer import (
    CONFLICT_MODES,
    FAILED,
    MAX_IMPORT_RECORDS,
    MAX_PAGE_SIZE,
    OUTCOMES,
    UNCHANGED,
    ImportResult,
    export_query,
    export_record,
)

DEFAULT_USER = "admin"  # the user `serve` makes on its first start
DRY_RUN_WORDS = {
    "created": "would be created",
    "updated": "would be updated",
    "unchanged": "unchanged",
    "skipped": "would be skipped",
    "failed": "would fail",
}


def add_parsers(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="write every model a user may read (or --ids) to stdout as JSON"
    )
    export.add_argument("--ids", nargs="+", default=[], metavar="ID", help="only these models")
    export.add_argument(
        "--as", dest="user", default=DEFAULT_USER, help="the user exporting (default %(default)s)"
    )

    load = commands.add_parser(
        "import", help="import models from a file of `export`, the HTTP export or Open WebUI's"
    )
    load.add_argument("file", help="the JSON file; - reads stdin")
    load.add_argument(
        "--on-conflict",
        choices=CONFLICT_MODES,
        default="update",
        help="what a record does to a model that exists with other content: update it (a new"
        " version), skip it, or fail (default %(default)s)",
    )
    load.add_argument(
        "--dry-run", action="store_true", help="report what each record would do; write nothing"
    )
    load.add_argument(
        "--as",
        dest="user",
        default=DEFAULT_USER,
        help="the user importing, who owns the new models (default %(default)s)",
    )


def export_models(args: argparse.Namespace) -> int:
    try:
        return _export(args, sys.stdout)
    except BrokenPipeError:
        # The reader stopped early (`export | head`): not an error of ours.
        # Point stdout at nothing, so that closing it at exit is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _export(args: argparse.Namespace, out: TextIO) -> int:
    with open_transfer(args.database_url) as (transfer, users):
        caller = _principal(users, args.user)
        query = export_query(ids=args.ids, page_size=MAX_PAGE_SIZE, page_token="")
        out.write(f'{{"format": "{FORMAT}", "format_version": {FORMAT_VERSION}, "models": [')
        first = True
        while True:
            page = transfer.export_models(caller, query, budget=sys.maxsize)
            for model in page.models:
                out.write("\n" if first else ",\n")
                out.write(json.dumps(export_record(model), ensure_ascii=False))
                first = False
            if page.last is None:
                break
            query = replace(query, after=page.last)
        out.write("\n]}\n")
    return 0


def import_models(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        document = _read(args.file)
    except (OSError, ValueError) as error:
        print(f"model-registry: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    try:
        format_version, records = file_records(document)
    except FileRefused as refused:
        print(f"model-registry: {args.file}: {refused}", file=sys.stderr)
        return 2
    counts = dict.fromkeys(OUTCOMES, 0)
    with (
        open_transfer(args.database_url) as (transfer, users),
        tqdm(
            total=len(records),
            unit=" models",
            file=sys.stderr,
            # Large files on a terminal only: a log gets the summary.
            disable=len(records) <= MAX_IMPORT_RECORDS or not sys.stderr.isatty(),
        ) as progress,
    ):
        caller = _principal(users, args.user)
        for start in range(0, len(records), MAX_IMPORT_RECORDS):
            batch = records[start : start + MAX_IMPORT_RECORDS]
            try:
                report = transfer.import_models(
                    caller,
                    batch,
                    on_conflict=args.on_conflict,
                    format_version=format_version,
                    dry_run=args.dry_run,
                )
            except ServiceUnavailable as error:
                progress.close()
                done = "" if args.dry_run else ", every record before it is imported"
                print(
                    f"model-registry: database unavailable ({error.__cause__}): stopped at"
                    f" record {start}{done}; run the same import again to go on",
                    file=sys.stderr,
                )
                return 1
            for result in report.results:
                counts[result.outcome] += 1
                _say(replace(result, index=start + result.index), args.dry_run, progress)
            progress.update(len(batch))
    seconds = time.monotonic() - started
    tally = ", ".join(f"{counts[outcome]} {outcome}" for outcome in OUTCOMES)
    prefix = "dry run, nothing written: " if args.dry_run else ""
    print(f"{prefix}{len(records)} records: {tally} ({seconds:.1f} s)")
    return 1 if counts[FAILED] else 0


def _say(result: ImportResult, dry_run: bool, progress: tqdm[Any]) -> None:
    """One line per record on a dry run; otherwise one per record that did
    not go in as it was (failed or skipped)."""
    if not dry_run and result.outcome in ("created", "updated", UNCHANGED):
        return
    name = f" {json.dumps(result.id, ensure_ascii=False)}" if result.id else ""
    outcome = DRY_RUN_WORDS[result.outcome] if dry_run else result.outcome
    reason = f": {result.reason}" if result.reason else ""
    progress.write(f"record {result.index}{name}: {outcome}{reason}", file=sys.stdout)


def _principal(users: UserStore, user_id: str) -> Principal:
    for user in users.list():
        if user.id == user_id:
            return Principal(user.id, user.role, user.can_create_models)
    raise UserNotFound(f"User not found: {user_id}")


def _read(path: str) -> Any:
    if path == "-":
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as file:
        return json.load(file)
