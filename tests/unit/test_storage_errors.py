"""Driver errors -> the domain's storage errors (storage/database.py): one
answer to "is this an outage?" for every caller."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc

from modelregistry_server.domain.stores import DuplicateKey, StorageUnavailable
from modelregistry_server.storage.database import is_outage, is_unique_violation, translate_errors


class PsycopgError(Exception):
    """Stands in for a psycopg error: it carries the SQLSTATE."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ConnectionTimeout(PsycopgError):
    """Stands in for psycopg.errors.ConnectionTimeout."""


def operational(message: str) -> exc.OperationalError:
    return exc.OperationalError("INSERT INTO models ...", {}, sqlite3.OperationalError(message))


@pytest.mark.parametrize(
    "error",
    [
        operational("database is locked"),
        operational("disk I/O error"),
        exc.OperationalError("SELECT 1", {}, PsycopgError("connection refused", "08006")),
        exc.InterfaceError("SELECT 1", {}, PsycopgError("the connection is closed", "08003")),
        exc.TimeoutError("QueuePool limit of size 8 overflow 0 reached"),
        exc.ProgrammingError(
            "SELECT 1",
            {},
            PsycopgError("terminating connection", "57P01"),
            connection_invalidated=True,
        ),
    ],
)
def test_outages(error: exc.SQLAlchemyError):
    assert is_outage(error) is True


@pytest.mark.parametrize(
    "error",
    [
        operational("no such table: models"),
        operational("table models has no column named x"),
        operational('near "INSERTT": syntax error'),
        exc.ProgrammingError(
            "SELECT 1", {}, PsycopgError('relation "models" does not exist', "42P01")
        ),
        exc.IntegrityError(
            "INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed: models.id")
        ),
        exc.DataError("INSERT", {}, PsycopgError("invalid input syntax", "22P02")),
    ],
)
def test_faults_of_the_statement_or_schema_are_no_outage(error: exc.SQLAlchemyError):
    assert is_outage(error) is False


@pytest.mark.parametrize(
    ("orig", "unique"),
    [
        (sqlite3.IntegrityError("UNIQUE constraint failed: models.id"), True),
        (sqlite3.IntegrityError("FOREIGN KEY constraint failed"), False),
        (sqlite3.IntegrityError("NOT NULL constraint failed: models.name"), False),
        (PsycopgError("duplicate key value violates unique constraint", "23505"), True),
        (PsycopgError("insert or update violates foreign key constraint", "23503"), False),
    ],
)
def test_unique_violations_on_either_database(orig: Exception, unique: bool):
    assert is_unique_violation(exc.IntegrityError("INSERT", {}, orig)) is unique


def test_a_unique_violation_becomes_duplicate_key():
    with pytest.raises(DuplicateKey) as caught, translate_errors():
        raise exc.IntegrityError(
            "INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed: x")
        )
    assert str(caught.value) == "UNIQUE constraint failed: x"


@pytest.mark.parametrize(
    ("error", "named"),
    [
        (operational("database is locked"), "OperationalError"),
        # The driver's class names an operational outage best.
        (
            exc.OperationalError("SELECT 1", {}, ConnectionTimeout("timeout expired", "08001")),
            "ConnectionTimeout",
        ),
        (exc.InterfaceError("SELECT 1", {}, PsycopgError("closed", "08003")), "InterfaceError"),
        (exc.TimeoutError("QueuePool limit reached"), "TimeoutError"),
    ],
)
def test_an_outage_becomes_storage_unavailable(error: exc.SQLAlchemyError, named: str):
    with pytest.raises(StorageUnavailable) as caught, translate_errors():
        raise error
    assert str(caught.value) == named
    assert caught.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        operational("no such table: models"),
        exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("FOREIGN KEY constraint failed")),
        ValueError("not a database error"),
    ],
)
def test_anything_else_passes_through_unchanged(error: Exception):
    with pytest.raises(type(error)) as caught, translate_errors():
        raise error
    assert caught.value is error
