"""Whether the database answers, as the calls that use it find out: one log
line when an outage begins (with its cause) and one when it ends (how long
it lasted, how many calls it refused), never one per call; and the
modelregistry_database_available gauge."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from .metrics import DATABASE_AVAILABLE, DATABASE_OUTAGES

log = logging.getLogger(__name__)

MAX_CAUSE_CHARACTERS = 300


class OutageWatch:
    """Fed by every database operation: `failed` when the database could not
    serve it, `answered` when it did. Each gets the clock's time at which
    the operation began, so that an operation in flight across a change of
    state (begun before the database went away, answered after) never
    decides it: only operations begun after an outage began can end it, and
    only operations begun after it ended can start the next one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._up_since = -math.inf
        self._refused = 0

    @property
    def available(self) -> bool:
        return self._down_since is None

    def failed(self, began: float, cause: BaseException, calls: int = 1) -> None:
        """An operation begun at `began` failed for want of the database,
        refusing `calls` calls."""
        with self._lock:
            if self._down_since is None:
                if began < self._up_since:
                    return  # began during the last outage; it is over
                self._down_since = self.clock()
                self._refused = 0
                DATABASE_AVAILABLE.set(0)
                DATABASE_OUTAGES.inc()
                reason = describe(cause)
                log.error("database unavailable: %s", reason, extra={"cause": reason})
            self._refused += calls

    def answered(self, began: float) -> None:
        """An operation begun at `began` was served by the database."""
        down_since = self._down_since
        if down_since is None or began < down_since:
            return  # the common case: no outage, nothing to lock
        with self._lock:
            down_since = self._down_since
            if down_since is None:
                return
            now = self.clock()
            self._down_since, self._up_since = None, now
            DATABASE_AVAILABLE.set(1)
            seconds = round(now - down_since, 1)
            log.warning(
                "database available again after %.1f s; %d calls refused meanwhile",
                seconds,
                self._refused,
                extra={"outage_seconds": seconds, "refused_calls": self._refused},
            )


def describe(cause: BaseException) -> str:
    """The error's class and its first line: what an operator needs to
    tell a stopped server from a wrong address or a full disk."""
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    if len(text) > MAX_CAUSE_CHARACTERS:
        text = text[: MAX_CAUSE_CHARACTERS - 3] + "..."
    return text


# The one watch of this process's database.
DATABASE = OutageWatch()
