"""The SQLite query plans of ListModels' queries, as the server runs them.

    .venv/bin/python bench/query_plans.py [--database FILE] [--models N]

Each case builds its query the way the server does (domain/listing.py's
list_query, the Visibility the registry makes) and runs storage's own
`page_of` on a connection that records every statement it executes; each
recorded statement is then run again under EXPLAIN QUERY PLAN with the same
parameters. Without --database, a scratch file is migrated and seeded with
the benchmark's models (bench/seeding.py; --models of them, default 20,000).
SQLite plans from the schema alone (the server never runs ANALYZE), so a
small database shows the plans a large one gets; --database checks a real
file (read-only use, but keep a copy).

A plan is marked when its cost follows how many models exist, or for a
non-admin how many models the words match, where it must follow what the
caller may read: for the non-admin and search cases, any SCAN of models
(with or without an index); for the non-admin cases also a search of
model_words by word range alone, or of model_tags by tag alone (every model
the word or tag matches, whoever may read it), not within one model's own.
Admin pages walk an order's index, stopping at the page's end, which is how
a keyset page should run; an admin's search is driven by the words (or the
tag).
The exit status is 1 when a plan is marked."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event

from modelregistry_server.domain.access import grant_principals
from modelregistry_server.domain.listing import ListQuery, Visibility, list_query
from modelregistry_server.storage import migrations
from modelregistry_server.storage.listing import page_of
from modelregistry_server.storage.model_cache import ModelCache
from modelregistry_server.storage.models import _groups_of, _read_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seeding  # noqa: E402

DEEP = 10_000  # the deep page starts after this many models (or the deepest there is)


@dataclass(frozen=True)
class Case:
    name: str
    query: ListQuery
    admin: bool
    follows_matches: bool  # search: cost follows the matches, never the table


@dataclass(frozen=True)
class Plan:
    sql: str
    parameters: Any
    lines: list[str]  # EXPLAIN QUERY PLAN as an indented tree

    def faults(self, case: Case) -> list[str]:
        """Why this plan's cost does not follow what it should, if it does not."""
        details = [line.strip() for line in self.lines]
        found = []
        if (case.follows_matches or not case.admin) and any(
            d == "SCAN models" or d.startswith("SCAN models ") for d in details
        ):
            found.append("walks models: the cost follows the table")
        if not case.admin and any(
            (d.startswith("SEARCH model_words") and "word>" in d and "(model_id=?" not in d)
            or (d.startswith("SEARCH model_tags") and "(tag=?)" in d)
            for d in details
        ):
            found.append(
                "reads every model the word or tag matches, not only those the caller may read"
            )
        return found


def query(**fields: Any) -> ListQuery:
    """A ListQuery as the server checks one from a request."""
    request: dict[str, Any] = {
        "page_size": 0,
        "page_token": "",
        "query": "",
        "view_option": "",
        "order_by": "",
        "direction": "",
        "is_active": None,
        "owner_id": "",
        "page": 0,
    }
    request.update(fields)
    return list_query(**request)


def cases(connection: Connection) -> list[Case]:
    first = query()
    depth = connection.exec_driver_sql("SELECT count(*) FROM models").scalar_one()
    offset = max(0, min(DEEP, depth - first.page_size) - 1)
    after = connection.exec_driver_sql(
        "SELECT created_at, id FROM models ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?",
        (offset,),
    ).one()
    deep = replace(first, after=(after[0], after[1]))
    search = query(query=seeding.SEARCH_WORD)
    return [
        Case("admin, first page by created_at", first, True, False),
        Case(f"admin, page after {offset + 1:,} (keyset)", deep, True, False),
        Case("admin, first page by name", query(order_by="name"), True, False),
        Case("non-admin, first page", first, False, False),
        Case(f"non-admin, page after {offset + 1:,} (keyset)", deep, False, False),
        Case(f"search {seeding.SEARCH_WORD!r}, admin", search, True, True),
        Case(f"search {seeding.SEARCH_WORD!r}, non-admin", search, False, True),
        Case("tag 'vision', admin", query(tag="vision"), True, True),
        Case("tag 'vision', non-admin", query(tag="vision"), False, True),
    ]


@contextmanager
def recorded(connection: Connection) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, _many: bool):
        statements.append((sql, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def plan_of(connection: Connection, sql: str, parameters: Any) -> list[str]:
    rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters).all()
    depth = {0: -1}
    lines = []
    for node, parent, _unused, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


def plans(connection: Connection, case: Case) -> list[Plan]:
    user = seeding.ADMIN if case.admin else seeding.READER
    groups = frozenset() if case.admin else _groups_of(connection, user)
    visibility = Visibility(
        everything=case.admin, user_id=user, grantees=tuple(grant_principals(user, groups))
    )
    with recorded(connection) as statements:
        page_of(connection, case.query, visibility, ModelCache())  # cold: every statement
    return [Plan(sql, p, plan_of(connection, sql, p)) for sql, p in statements]


def all_plans(database: Path) -> list[tuple[Case, list[Plan]]]:
    """Every case, with the plans of the statements the server runs for it."""
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            return [(case, plans(connection, case)) for case in cases(connection)]
    finally:
        engine.dispose()


def get_model_plans(database: Path) -> list[Plan]:
    """The statements of one GetModel lookup on SQLite (a reader's, of a
    model granted to a group), with their plans."""
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            model_id = connection.exec_driver_sql(
                "SELECT model_id FROM model_grants WHERE access_type = 'group' LIMIT 1"
            ).scalar_one()
            with recorded(connection) as statements:
                _read_model(connection, model_id, seeding.READER, ModelCache())
            return [Plan(sql, p, plan_of(connection, sql, p)) for sql, p in statements]
    finally:
        engine.dispose()


def report(database: Path) -> bool:
    """Print every case's statements and plans; False if a plan is marked."""
    good = True
    print(f"SQLite {sqlite3.sqlite_version}, {database}")
    for case, case_plans in all_plans(database):
        print(f"\n== {case.name}")
        for plan in case_plans:
            faults = plan.faults(case)
            good &= not faults
            print_plan(plan, faults)
    print("\n== GetModel, a reader's lookup of a model granted to a group")
    for plan in get_model_plans(database):
        print_plan(plan, [])
    return good


def print_plan(plan: Plan, faults: list[str]) -> None:
    shown = repr(plan.parameters)
    print(f"-- {' '.join(plan.sql.split())}")
    print(f"   parameters {shown if len(shown) < 160 else shown[:150] + ' ...'}")
    for line in plan.lines:
        print(f"   {line}")
    for fault in faults:
        print(f"   ^ {fault}")


def make_database(database: Path, models: int) -> None:
    """A registry database at `database` (migrated), holding the admin,
    the benchmark's users and groups and `models` of its models."""
    migrations.upgrade(f"sqlite:///{database}")
    now = int(time.time())
    db = sqlite3.connect(database)
    try:
        with db:
            db.execute(
                "INSERT INTO users (id, role, can_create_models, created_at)"
                " VALUES (?, 'admin', 1, ?)",
                (seeding.ADMIN, now),
            )
        seeding.seed_people(db, now)
        seeding.seed_fixture(db, models, now)
        seeding.seed_rest(db, models, now, models)
        seeding.check_counts(db)
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=Path, help="an SQLite file of the registry")
    parser.add_argument("--models", type=int, default=20_000, help="models to seed a scratch file")
    args = parser.parse_args()
    if args.database is not None:
        sys.exit(0 if report(args.database) else 1)
    with tempfile.TemporaryDirectory(prefix="model-registry-plans-") as scratch:
        database = Path(scratch) / "plans.db"
        make_database(database, args.models)
        sys.exit(0 if report(database) else 1)


if __name__ == "__main__":
    main()
