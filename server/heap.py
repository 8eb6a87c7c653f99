"""The garbage collector in a serving process: what start-up made is frozen,
full collections are rarer, and every collection's pause is measured.

Python's full collection walks every tracked object, and stops the event
loop while it does. Under load, full collections came every one to five
seconds and took 30-120 ms each: the slowest calls were those that waited
behind one. Two reasons, two remedies:
  - some 80,000 objects made at start-up (modules, protobuf descriptors,
    SQLAlchemy's schema, gRPC) live as long as the process; frozen
    (`gc.freeze`) once it serves, they are never walked again;
  - the caches of models and of a reader's matches hold a few hundred
    thousand more, and replace them as they go, which is what makes
    collections of the oldest generation due; that is now considered after
    every 100 collections of the middle one, not every 10, so a full
    collection comes about once a minute under load instead of every second.
Almost all garbage here holds no reference cycle and is freed at once by
reference counting either way; the collector is only for cycles."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Gauge, Histogram

FROZEN = Gauge(
    "modelregistry_gc_frozen_objects",
    "Objects made at start-up that the garbage collector no longer walks (gc.freeze)",
)
FROZEN.set_function(gc.get_freeze_count)
PAUSE_SECONDS = Histogram(
    "modelregistry_gc_pause_seconds",
    "Time each garbage collection held the process, by generation (2 = full)",
    ("generation",),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
_BY_GENERATION = [PAUSE_SECONDS.labels(str(generation)) for generation in range(3)]


# Collections of the middle generation between two chances of a full one
# (Python's default: 10).
MIDDLE_COLLECTIONS_PER_FULL = 100


def freeze_startup_objects() -> None:
    """Collect what start-up left for collection, then freeze the rest, and
    make full collections rarer. Call once the process is serving, before
    requests make garbage of their own."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, MIDDLE_COLLECTIONS_PER_FULL)


class _PauseTimer:
    """A gc.callbacks entry: the time from each collection's start to its
    stop. Collections never nest, and a callback runs with the GIL held."""

    def __init__(self) -> None:
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            _BY_GENERATION[info["generation"]].observe(time.perf_counter() - self._started)


_TIMER = _PauseTimer()


def time_pauses() -> None:
    """Measure every collection from now on (once per process)."""
    if _TIMER not in gc.callbacks:
        gc.callbacks.append(_TIMER)
