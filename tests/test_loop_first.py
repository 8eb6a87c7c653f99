"""ListModels' reads run on the event loop's thread when SQLite answers them
within their budget, and in a thread otherwise (storage/loop_first.py): on a
real SQLite file, and on a real PostgreSQL, where they always run in a
thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, exc, text

from modelregistry_server.app import build_app
from modelregistry_server.config import Settings
from modelregistry_server.domain.listing import ModelPage, Reader, list_query
from modelregistry_server.domain.models import ROLE_USER, GrantDraft, ModelDraft, Principal
from modelregistry_server.storage.database import create_database_engine
from modelregistry_server.storage.list_reads import ListReads
from modelregistry_server.storage.loop_first import LoopFirstReads
from modelregistry_server.storage.metrics import LIST_PAGES_AGAIN, LIST_PAGES_KEPT, LIST_READS
from modelregistry_server.storage.migrations import upgrade

from postgres import PostgresServer

# Counts to 20 million in SQLite's own loop: far past any budget below.
SLOW = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000000)"
    " SELECT count(*) FROM n"
)


def on_thread(statement: str) -> Callable[[Connection], tuple[str, int]]:
    """A read answering the thread it ran on and its statement's number."""

    def read(connection: Connection) -> tuple[str, int]:
        return threading.current_thread().name, int(connection.execute(text(statement)).scalar())

    return read


def where_slow(connection: Connection) -> tuple[str, int]:
    return threading.current_thread().name, int(connection.execute(SLOW).scalar())


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'reads.db'}", pool_size=3)
    yield engine
    engine.dispose()


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1, thread_name_prefix="list-thread") as executor:
        yield executor


def test_a_quick_read_runs_on_the_loop(sqlite_engine: Engine, threads: ThreadPoolExecutor) -> None:
    reads = LoopFirstReads(sqlite_engine, threads)
    results = asyncio.run(_run(reads, [("page", on_thread("SELECT 7"))] * 3))
    assert results == [("MainThread", 7)] * 3
    assert reads.stops == 0
    reads.close()


def test_a_read_over_its_budget_is_stopped_and_answered_in_a_thread(
    sqlite_engine: Engine, threads: ThreadPoolExecutor
) -> None:
    reads = LoopFirstReads(sqlite_engine, threads, budget_seconds=0.005, skip_after_stop=2)
    results = asyncio.run(
        _run(
            reads,
            [
                ("search", where_slow),  # stopped on the loop, answered by the thread
                ("search", on_thread("SELECT 1")),  # its kind goes to the thread twice
                ("search", on_thread("SELECT 2")),
                ("search", on_thread("SELECT 3")),  # then it is tried on the loop again
                ("page", on_thread("SELECT 4")),  # other kinds never left the loop
            ],
        )
    )
    assert results == [
        ("list-thread_0", 20_000_000),
        ("list-thread_0", 1),
        ("list-thread_0", 2),
        ("MainThread", 3),
        ("MainThread", 4),
    ]
    assert reads.stops == 1
    reads.close()


def test_an_error_on_the_loop_is_met_again_in_the_thread_and_raised_from_there(
    sqlite_engine: Engine, threads: ThreadPoolExecutor
) -> None:
    reads = LoopFirstReads(sqlite_engine, threads)
    tried_on: list[str] = []

    def broken(connection: Connection) -> int:
        tried_on.append(threading.current_thread().name)
        return int(connection.execute(text("SELECT * FROM no_such_table")).scalar())

    with pytest.raises(exc.OperationalError, match="no such table"):
        asyncio.run(_run(reads, [("page", broken)]))
    assert tried_on == ["MainThread", "list-thread_0"]
    # The loop's connection was replaced; the next read runs there again.
    assert asyncio.run(_run(reads, [("page", on_thread("SELECT 5"))])) == [("MainThread", 5)]
    reads.close()


def test_the_loops_connection_never_goes_back_to_the_pool(
    sqlite_engine: Engine, threads: ThreadPoolExecutor
) -> None:
    """It never waits for a lock (busy_timeout 0) and carries the progress
    handler: no other read may get it."""
    reads = LoopFirstReads(sqlite_engine, threads)
    asyncio.run(_run(reads, [("page", on_thread("SELECT 1"))]))
    reads.close()
    timeouts = []
    connections = [sqlite_engine.connect() for _ in range(3)]  # the whole pool
    for connection in connections:
        timeouts.append(connection.exec_driver_sql("PRAGMA busy_timeout").scalar())
        connection.close()
    assert timeouts == [5000, 5000, 5000]


def test_a_read_on_a_locked_database_does_not_wait_on_the_loop(
    tmp_path: Path, threads: ThreadPoolExecutor
) -> None:
    """A lock held elsewhere: the loop's connection fails at once, and the
    thread waits for the lock instead. (In a rollback journal a writer's
    exclusive lock keeps readers out, as WAL does only while recovering.)"""
    engine = create_engine(
        f"sqlite:///{tmp_path / 'journal.db'}", connect_args={"check_same_thread": False}
    )
    with engine.connect() as setup:
        setup.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        setup.exec_driver_sql("INSERT INTO t VALUES (1)")
        setup.commit()
    holder = engine.raw_connection()
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(0.3, holder.rollback)
    released.start()
    reads = LoopFirstReads(engine, threads)
    try:
        assert asyncio.run(_run(reads, [("page", on_thread("SELECT n FROM t"))])) == [
            ("list-thread_0", 1)
        ]
    finally:
        released.join()
        holder.close()
        reads.close()
        engine.dispose()


def test_a_read_on_the_loop_is_told_the_version_it_sees_and_a_thread_none(
    sqlite_engine: Engine, threads: ThreadPoolExecutor
) -> None:
    """Equal versions: the same data. Any commit by another connection, a
    new loop connection (after an error) or a thread's read: not equal."""
    with sqlite_engine.begin() as setup:
        setup.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    reads = LoopFirstReads(sqlite_engine, threads, budget_seconds=0.005)

    def version(connection: Connection, seen: object) -> object:
        return seen

    def broken(connection: Connection, seen: object) -> object:
        connection.exec_driver_sql("SELECT * FROM no_such_table")
        return seen

    async def versions() -> list[object]:
        seen = [await reads.run("page", version) for _ in range(2)]
        with sqlite_engine.begin() as writer:  # another connection commits
            writer.exec_driver_sql("INSERT INTO t VALUES (1)")
        seen.append(await reads.run("page", version))
        with pytest.raises(exc.OperationalError):
            await reads.run("page", broken)  # the loop's connection is replaced
        seen.append(await reads.run("page", version))
        seen.append(await reads.run("slow", lambda c, v: (where_slow(c), v)[1]))
        return seen

    first, again, after_commit, new_connection, in_thread = asyncio.run(versions())
    assert first == again
    assert isinstance(first, tuple) and isinstance(after_commit, tuple)
    assert after_commit[0] == first[0] and after_commit[1] != first[1]
    assert isinstance(new_connection, tuple) and new_connection[0] != first[0]
    assert in_thread is None  # stopped on the loop, answered by the thread
    reads.close()


def test_a_thread_read_is_versioned_only_when_no_other_connection_committed_meanwhile(
    sqlite_engine: Engine, threads: ThreadPoolExecutor
) -> None:
    """run_versioned: the loop's version just before and just after a read
    in a thread. Equal, the thread read that version's data."""
    with sqlite_engine.begin() as setup:
        setup.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    reads = LoopFirstReads(sqlite_engine, threads, budget_seconds=0.005, skip_after_stop=5)

    def slow(connection: Connection, told: object) -> object:
        where_slow(connection)  # stopped on the loop, then run in the thread
        return told

    def slow_while_another_commits(connection: Connection, told: object) -> object:
        with sqlite_engine.begin() as writer:
            writer.exec_driver_sql("INSERT INTO t VALUES (1)")
        return slow(connection, told)

    async def run() -> list[object]:
        on_loop = await reads.run("page", lambda connection, version: version)
        quiet = await reads.run_versioned("slow", slow)
        changed = await reads.run_versioned("slow", slow_while_another_commits)
        return [on_loop, quiet, changed]

    on_loop, quiet, changed = asyncio.run(run())
    assert quiet == (None, on_loop)  # told None in the thread; read at the loop's version
    assert changed == (None, None)  # a commit between: no version
    assert reads.stops == 1
    # Sent back to the loop at once, though the stop would skip it 5 times.
    reads.retry_on_loop("slow")
    assert asyncio.run(_run(reads, [("slow", on_thread("SELECT 8"))])) == [("MainThread", 8)]
    reads.close()


def models_everyone_reads(tmp_path: Path, count: int) -> Engine:
    """A registry of `count` models m000... that every signed-in user may read."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_database_engine(url, pool_size=2)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO users VALUES ('someone', 'user', 1, 0)")
    app = build_app(Settings(database_url=url))
    everyone = [GrantDraft("user", "*", "read", None, None)]
    creator = Principal("someone", ROLE_USER, can_create_models=True)

    async def create() -> None:
        for n in range(count):
            draft = ModelDraft(f"m{n:03d}", f"M {n:03d}", None, {}, {}, everyone, None, None)
            await app.registry.create_model(creator, draft)

    asyncio.run(create())
    app.close()
    return engine


READER = Reader("reader", everything=False, needs_groups=True)
BY_NAME = list_query(
    page_size=5,
    page_token="",
    query="",
    view_option="",
    order_by="name",
    direction="",
    is_active=None,
    owner_id="",
    page=0,
    tag="",
)


def test_a_readers_matches_found_in_a_thread_are_kept(tmp_path: Path) -> None:
    """A reader's query whose matches take longer than the loop's budget (a
    zero budget here) is answered in a thread, which finds them all; kept,
    the query's next pages come from them, on the loop."""
    engine = models_everyone_reads(tmp_path, 400)
    with ThreadPoolExecutor(1, thread_name_prefix="list-thread") as threads:
        reads = ListReads(engine, threads, lambda _c, _r: frozenset(), budget_seconds=0)
        kept_before = LIST_PAGES_KEPT._value.get()
        on_thread_before = LIST_READS.labels("thread")._value.get()

        async def walk() -> list[ModelPage]:
            pages = [(await reads.page(BY_NAME, READER))[0]]
            while pages[-1].last is not None:
                after = replace(BY_NAME, after=pages[-1].last)
                pages.append((await reads.page(after, READER))[0])
            return pages

        pages = asyncio.run(walk())
        reads.close()
    engine.dispose()
    ids = [model.id for page in pages for model in page.models]
    assert ids == [f"m{n:03d}" for n in range(400)]
    assert [page.total for page in pages] == [400] * 80
    # The first page ran in the thread, which found them all, and the pages
    # after it came from them on the loop. (With a zero budget a page that
    # reads its models may be stopped too, and be answered in the thread
    # again.) Without keeping what a thread found, the 100 reads after a
    # stop all run in the thread: here every page, none kept.
    on_thread = LIST_READS.labels("thread")._value.get() - on_thread_before
    kept = LIST_PAGES_KEPT._value.get() - kept_before
    assert on_thread + kept == 80
    assert on_thread <= 3


def test_calls_asking_while_a_thread_finds_the_matches_wait_for_it(tmp_path: Path) -> None:
    """16 calls ask a reader's first page at once (as every connection does
    after a commit): one finds the matches in a thread, and the others, which
    came while it did, read their pages from what it kept, on the loop."""
    engine = models_everyone_reads(tmp_path, 400)
    with ThreadPoolExecutor(4, thread_name_prefix="list-thread") as threads:
        reads = ListReads(engine, threads, lambda _c, _r: frozenset(), budget_seconds=0)
        kept_before = LIST_PAGES_KEPT._value.get()
        again_before = LIST_PAGES_AGAIN._value.get()
        on_thread_before = LIST_READS.labels("thread")._value.get()

        async def at_once() -> list[tuple[ModelPage, frozenset[str]]]:
            return await asyncio.gather(*(reads.page(BY_NAME, READER) for _ in range(16)))

        pages = [page for page, _ in asyncio.run(at_once())]
        reads.close()
    engine.dispose()
    assert [[model.id for model in page.models] for page in pages] == [
        ["m000", "m001", "m002", "m003", "m004"]
    ] * 16
    assert [page.total for page in pages] == [400] * 16
    on_thread = LIST_READS.labels("thread")._value.get() - on_thread_before
    kept = LIST_PAGES_KEPT._value.get() - kept_before
    again = LIST_PAGES_AGAIN._value.get() - again_before
    # Each came from the matches kept or, once its page was read twice from
    # them, as that same page. (A kept page that reads models it has not
    # decoded yet may be stopped too, with a zero budget.) Without the
    # waiting, all 16 ran in threads.
    assert on_thread + kept + again == 16
    assert on_thread <= 3


def test_a_page_asked_again_without_a_change_is_the_page_answered_before(
    tmp_path: Path,
) -> None:
    """Asked again at the version it was read at, a page is the very object
    answered then (what is made from it is kept by its identity); after
    another connection's commit it is read afresh, and shows the change."""
    engine = models_everyone_reads(tmp_path, 12)
    admin = Reader("someone-else", everything=True, needs_groups=False)
    with ThreadPoolExecutor(1, thread_name_prefix="list-thread") as threads:
        reads = ListReads(engine, threads, lambda _c, _r: frozenset())

        async def three_times(reader: Reader) -> list[ModelPage]:
            return [(await reads.page(BY_NAME, reader))[0] for _ in range(3)]

        for reader in (READER, admin):
            first, second, third = asyncio.run(three_times(reader))
            # Kept at its second asking (kept_reads.py), the same from then on.
            assert third is second
            assert [m.id for m in third.models] == [m.id for m in first.models]
        reader_page = asyncio.run(three_times(READER))[-1]
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM model_grants WHERE model_id = 'm000'")
            connection.exec_driver_sql("DELETE FROM models WHERE id = 'm000'")
        after_delete = asyncio.run(three_times(READER))
        reads.close()
    engine.dispose()
    assert after_delete[0] is not reader_page
    assert [[m.id for m in page.models] for page in after_delete] == [
        ["m001", "m002", "m003", "m004", "m005"]
    ] * 3
    assert [m.id for m in reader_page.models] == ["m000", "m001", "m002", "m003", "m004"]


def test_postgresql_reads_always_run_in_a_thread(
    postgres: PostgresServer, threads: ThreadPoolExecutor
) -> None:
    engine = create_database_engine(postgres.create_database(), pool_size=2)
    reads = LoopFirstReads(engine, threads)
    try:
        assert asyncio.run(_run(reads, [("page", on_thread("SELECT 6"))])) == [("list-thread_0", 6)]
        told = asyncio.run(reads.run("page", lambda connection, version: version))
        assert told is None  # nothing is kept by version on PostgreSQL
    finally:
        reads.close()
        engine.dispose()


async def _run(
    reads: LoopFirstReads, calls: list[tuple[str, Callable[[Connection], object]]]
) -> list[object]:
    # These reads take no version: each is told it, and leaves it.
    return [await reads.run(kind, _unversioned(read)) for kind, read in calls]


def _unversioned(read: Callable[[Connection], object]) -> Callable[[Connection, object], object]:
    return lambda connection, _version: read(connection)
