"""Where log records go and how they look: one line each on stderr, as text
(the default) or as JSON objects (`--log-format json`), which keep the
records' structured fields (a request line's method, code, duration_ms,
user_id, request_id; an outage line's cause, outage_seconds, refused_calls)."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Longest a line waits in the buffer (WARNING and above do not wait).
FLUSH_SECONDS = 0.2


def configure_logging(level: str, log_format: str) -> None:
    """Replace the root logger's handlers with one that writes `log_format`
    lines at `level` and above."""
    handler = BufferedLineHandler()
    handler.setFormatter(
        json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # `serve` says what it migrated


def json_formatter() -> logging.Formatter:
    """{"level", "logger", "message", any fields the record carries, "time"
    (ISO 8601, UTC)}; a traceback is "exc_info"."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        json_ensure_ascii=False,
    )


class BufferedLineHandler(logging.StreamHandler[TextIO]):
    """Lines to stderr through a buffer, written at least every FLUSH_SECONDS,
    at once for WARNING and above, and at exit. A write per line (what
    StreamHandler does) is a system call per call served, which lets the
    server's other threads take the interpreter lock each time: it cost
    about a quarter of the creates a second (BENCHMARKS.md)."""

    def __init__(self) -> None:
        stream = open(  # stderr's descriptor, left open at exit
            sys.stderr.fileno(),
            "w",
            buffering=1 << 16,
            encoding=sys.stderr.encoding,
            errors="backslashreplace",
            closefd=False,
        )
        super().__init__(stream)
        threading.Thread(target=self._flush_every_while, name="log-flush", daemon=True).start()
        atexit.register(self.flush_now)

    def flush(self) -> None:
        """Not after every record: see flush_now."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self.flush_now()

    def flush_now(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            self.stream.flush()

    def _flush_every_while(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush_now()
