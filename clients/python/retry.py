"""Retries on UNAVAILABLE only: exponential backoff with full jitter (as in
gRPC's own retry design), bounded by a number of retries and by the call's
deadline, which covers every attempt and every wait."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import RegistryError, Unavailable

T = TypeVar("T")

log = logging.getLogger("modelregistry.client")


@dataclass(frozen=True)
class Backoff:
    """The wait before retry n (0 for the first) is uniformly random between
    0 and min(maximum, initial * multiplier ** n) seconds: the randomness
    keeps clients that failed together from retrying together."""

    initial: float = 0.1
    multiplier: float = 2.0
    maximum: float = 5.0

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number `retry`."""
        return min(self.maximum, self.initial * self.multiplier**retry)

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        return self.ceiling(retry) * rand()


@dataclass(frozen=True)
class Retrying:
    """How one call is retried. `timeout` (seconds, None for none) bounds
    the whole call; `retries` counts the attempts after the first."""

    timeout: float | None
    retries: int
    backoff: Backoff
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def call(self, attempt: Callable[[float | None], T], what: str) -> T:
        """`attempt(seconds left)` until it succeeds, fails with anything but
        Unavailable, or the retries or the deadline run out; the exception
        raised carries the number of attempts made."""
        deadline = math.inf if self.timeout is None else self.clock() + self.timeout
        attempts = 0
        while True:
            attempts += 1
            left = None if self.timeout is None else max(0.0, deadline - self.clock())
            try:
                return attempt(left)
            except RegistryError as error:
                error.attempts = attempts
                if not isinstance(error, Unavailable) or attempts > self.retries:
                    raise
                wait = self.backoff.delay(attempts - 1, self.rand)
                if self.clock() + wait >= deadline:
                    raise  # no time left for another attempt
                log.info(
                    "%s: %s (attempt %d of %d), retrying in %.3f s",
                    what,
                    error,
                    attempts,
                    self.retries + 1,
                    wait,
                )
                self.sleep(wait)
