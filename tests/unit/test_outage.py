"""The outage watch (storage/outage.py): a database outage is logged once
when it begins and once when it ends, whatever the calls in flight do; and
translate_errors feeds it."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import exc

from modelregistry_server.domain.stores import DuplicateKey, StorageUnavailable
from modelregistry_server.storage.database import translate_errors
from modelregistry_server.storage.outage import OutageWatch, describe

LOGGER = "modelregistry_server.storage.outage"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def watch(clock: Clock) -> OutageWatch:
    return OutageWatch(clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def refused(message: str) -> ConnectionRefusedError:
    return ConnectionRefusedError(message)


def available() -> float | None:
    return REGISTRY.get_sample_value("modelregistry_database_available")


def test_an_outage_is_two_lines_however_many_calls_it_refuses(
    watch: OutageWatch, clock: Clock, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, LOGGER)
    watch.answered(clock())
    for _ in range(3):
        clock.now += 1
        watch.failed(clock(), refused("connection refused\nIs the server running?"))
    assert available() == 0
    clock.now += 1
    watch.failed(clock(), refused("connection refused"), calls=5)  # a batch of creates
    clock.now += 2.5
    watch.answered(clock())
    watch.answered(clock())
    assert available() == 1
    assert lines(caplog) == [
        ("ERROR", "database unavailable: ConnectionRefusedError: connection refused"),
        ("WARNING", "database available again after 5.5 s; 8 calls refused meanwhile"),
    ]
    began, ended = (r for r in caplog.records if r.name == LOGGER)
    assert began.cause == "ConnectionRefusedError: connection refused"
    assert (ended.outage_seconds, ended.refused_calls) == (5.5, 8)


def test_a_call_begun_before_the_outage_does_not_end_it(
    watch: OutageWatch, clock: Clock, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, LOGGER)
    slow_call_began = clock()
    clock.now += 1
    watch.failed(clock(), refused("gone"))
    clock.now += 1
    watch.answered(slow_call_began)  # answered before the database went
    assert not watch.available
    assert [level for level, _ in lines(caplog)] == ["ERROR"]


def test_a_call_begun_during_the_outage_does_not_start_another(
    watch: OutageWatch, clock: Clock, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, LOGGER)
    watch.failed(clock(), refused("gone"))
    stuck_call_began = clock.now + 0.5
    clock.now += 1
    watch.answered(clock())
    clock.now += 4
    watch.failed(stuck_call_began, TimeoutError("pool timed out"))  # failed late
    assert watch.available
    assert [level for level, _ in lines(caplog)] == ["ERROR", "WARNING"]
    clock.now += 1
    watch.failed(clock(), refused("gone again"))  # a new outage
    assert lines(caplog)[-1] == (
        "ERROR",
        "database unavailable: ConnectionRefusedError: gone again",
    )


def test_each_outage_counts_its_own_refusals(
    watch: OutageWatch, clock: Clock, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, LOGGER)
    for refusals in (3, 1):
        clock.now += 1
        for _ in range(refusals):
            watch.failed(clock(), refused("gone"))
        clock.now += 1
        watch.answered(clock())
    ends = [message for level, message in lines(caplog) if level == "WARNING"]
    assert ends == [
        "database available again after 1.0 s; 3 calls refused meanwhile",
        "database available again after 1.0 s; 1 calls refused meanwhile",
    ]


def test_the_cause_is_one_short_line():
    assert describe(OSError("")) == "OSError"
    assert describe(OSError("  first\nsecond")) == "OSError: first"
    long = describe(OSError("x" * 1000))
    assert len(long) == 300 and long.endswith("...")


def operational(message: str) -> exc.OperationalError:
    return exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))


def test_translate_errors_reports_outages_and_answers(
    watch: OutageWatch, clock: Clock, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, LOGGER)
    with pytest.raises(StorageUnavailable), translate_errors(calls=4, watch=watch):
        raise operational("database is locked")
    assert not watch.available
    clock.now += 1
    duplicate = exc.IntegrityError(
        "INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed: models.id")
    )
    with pytest.raises(DuplicateKey), translate_errors(watch=watch):
        raise duplicate  # the database answered: the id is taken
    assert watch.available
    assert lines(caplog) == [
        ("ERROR", "database unavailable: OperationalError: database is locked"),
        ("WARNING", "database available again after 1.0 s; 4 calls refused meanwhile"),
    ]


def test_a_statement_fault_is_counted_but_is_no_outage(watch: OutageWatch):
    def errors() -> float:
        value = REGISTRY.get_sample_value(
            "modelregistry_database_errors_total", {"error": "OperationalError"}
        )
        return value or 0.0

    before = errors()
    with pytest.raises(exc.OperationalError), translate_errors(watch=watch):
        raise operational("no such table: models")
    assert watch.available
    assert errors() == before + 1
