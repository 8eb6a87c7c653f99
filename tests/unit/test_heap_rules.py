"""The serving process's garbage collector (server/heap.py): start-up's
objects frozen, every collection's pause counted by generation."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from modelregistry_server import heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """This test process's objects go back to the collector afterwards, on
    its usual thresholds."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def pauses(generation: int) -> float:
    return heap.PAUSE_SECONDS.labels(str(generation))._sum.get()  # type: ignore[attr-defined]


def counted(generation: int) -> float:
    children = heap.PAUSE_SECONDS.labels(str(generation))
    return sum(bucket.get() for bucket in children._buckets)  # type: ignore[attr-defined]


def test_freezing_moves_what_exists_out_of_the_collectors_walks(unfrozen: None) -> None:
    kept = [[n] for n in range(1000)]  # lists are tracked objects
    heap.freeze_startup_objects()
    assert gc.get_freeze_count() >= len(kept)
    scraped = {s.name: s.value for m in heap.FROZEN.collect() for s in m.samples}
    assert scraped["modelregistry_gc_frozen_objects"] == gc.get_freeze_count()
    # A full collection now walks only what was made after the freeze.
    gc.collect()
    assert gc.get_freeze_count() >= len(kept)


def test_full_collections_are_considered_after_100_middle_ones(unfrozen: None) -> None:
    young, middle, _ = gc.get_threshold()
    heap.freeze_startup_objects()
    assert gc.get_threshold() == (young, middle, 100)


def test_each_collection_is_timed_under_its_generation() -> None:
    heap.time_pauses()
    heap.time_pauses()  # once per process, however often asked
    assert gc.callbacks.count(heap._TIMER) == 1
    gc.disable()  # no collection but the test's own
    try:
        before = {generation: counted(generation) for generation in range(3)}
        gc.collect(2)
        gc.collect(0)
        gc.collect(0)
    finally:
        gc.enable()
    assert counted(2) == before[2] + 1
    assert counted(0) == before[0] + 2
    assert counted(1) == before[1]
    assert pauses(2) > 0
