"""What was made from an object, kept while that same object lives and
comes back.

Storage answers a page asked again at the database version it was read at
with the very page object it answered then (storage/list_reads.py). What is
made from it (the page as its caller may see it, the reply's bytes) would
come out the same, so it is looked up instead of made again. Identity, not
equality: a page read afresh is a new object, and what is made from it is
made afresh too.

A source is held weakly: what was made from it goes when it does. So the
pages storage keeps, within its budget, bound what is kept here too (with
the replies' bytes, which have a budget of their own)."""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

D = TypeVar("D")


class Derived(Generic[D]):
    """By key, the last value made and the object it was made from, within a
    budget of costs (least recently used go first). Used from the event
    loop's thread only (where kept pages are dropped too), so without a lock."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._used = 0
        self._kept: OrderedDict[Hashable, tuple[weakref.ref[Any], D, int]] = OrderedDict()

    def get(self, key: Hashable, source: object) -> D | None:
        """What was made under `key` from this very `source`, if kept."""
        kept = self._kept.get(key)
        if kept is None or kept[0]() is not source:
            return None
        self._kept.move_to_end(key)
        return kept[1]

    def put(self, key: Hashable, source: object, value: D, cost: int = 1) -> None:
        """Keep `value`, made from `source`, in place of what `key` held,
        until `source` goes."""
        self._forget(key)
        if cost > self._budget:
            return

        # A value replaced first takes its weak reference, and so this call, with it.
        self._kept[key] = (weakref.ref(source, lambda _ref: self._forget(key)), value, cost)
        self._used += cost
        while self._used > self._budget:
            _, (_, _, freed) = self._kept.popitem(last=False)
            self._used -= freed

    def _forget(self, key: Hashable) -> None:
        old = self._kept.pop(key, None)
        if old is not None:
            self._used -= old[2]

    def __len__(self) -> int:
        return len(self._kept)
