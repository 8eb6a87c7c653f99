"""Log lines: the JSON format keeps a record's fields; psycopg's echo of an
aborted pipeline (a taken id in a batch of creates) is dropped, and
nothing else of psycopg's is."""

from __future__ import annotations

import json
import logging
import sys

import psycopg

from modelregistry_server.logs import TEXT_FORMAT, json_formatter
from modelregistry_server.storage.database import PIPELINE_ABORT_ECHO


def record(message: str, *args: object, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "modelregistry_server.requests", logging.INFO, "x.py", 1, message, args, None
    )
    made.__dict__.update(fields)
    return made


def test_a_json_line_carries_the_fields_of_its_record():
    line = json_formatter().format(
        record(
            "%s %s",
            "CreateModel",
            "OK",
            method="CreateModel",
            code="OK",
            duration_ms=1.25,
            user_id="é",
            request_id=None,
        )
    )
    assert "\n" not in line
    parsed = json.loads(line)
    time = parsed.pop("time")
    assert time.endswith("+00:00") and "T" in time
    assert parsed == {
        "level": "INFO",
        "logger": "modelregistry_server.requests",
        "message": "CreateModel OK",
        "method": "CreateModel",
        "code": "OK",
        "duration_ms": 1.25,
        "user_id": "é",
        "request_id": None,
    }


def test_a_json_line_keeps_a_traceback_on_its_line():
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("unexpected error")
        failed.exc_info = sys.exc_info()
    line = json_formatter().format(failed)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc_info"]


def test_a_text_line_is_time_level_logger_and_message():
    line = logging.Formatter(TEXT_FORMAT).format(record("CreateModel OK"))
    assert line.endswith(" INFO modelregistry_server.requests: CreateModel OK")


def psycopg_warning(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("psycopg", logging.WARNING, "_pipeline.py", 77, message, args, None)


def test_the_echo_of_an_aborted_pipeline_is_dropped():
    echo = psycopg_warning(
        "error ignored terminating %r: %s",
        "<psycopg.Pipeline [INERROR]>",
        psycopg.errors.PipelineAborted("pipeline aborted"),
    )
    assert PIPELINE_ABORT_ECHO.filter(echo) is False


def test_every_other_psycopg_warning_passes():
    others = [
        psycopg_warning(
            "error ignored terminating %r: %s",
            "<psycopg.Copy>",
            psycopg.OperationalError("connection lost"),
        ),
        psycopg_warning("couldn't connect: %s", "connection refused"),
        psycopg_warning("error ignored terminating %r: pipeline aborted"),
    ]
    assert [PIPELINE_ABORT_ECHO.filter(other) for other in others] == [True, True, True]
