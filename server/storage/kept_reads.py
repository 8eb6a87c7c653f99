"""What a reader's list reads found, kept while the database does not change.

A reader's page (not an admin's) reads every model the reader may see,
sorts and counts them all, and cuts one page out: its cost follows what the
reader may read, and every page of the same query pays it again. Within one
data version (loop_first.py) the answer cannot differ, so a query asked
again at the version it was answered at is answered from what was kept: its
matches in order (every page of it, and its total) and the reader's groups.

Any commit to the database, here or in another process, makes a new
version, and nothing kept at an older one is used again. So a registry that
changes all the time only pays for a version check: a query is kept on its
second miss at one version (asked twice between two changes), never on its
first, unless it was kept at an earlier version: then it is kept at its
first miss at the next one too.

The event loop's thread alone uses it (loop reads are the only ones with a
version), so it takes no lock."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .loop_first import Version

V = TypeVar("V")

DEFAULT_BUDGET_BYTES = 16 * 1024 * 1024
# A kept match: a tuple, its id and version id (about 40 and 36 characters),
# its sort key.
BYTES_PER_MATCH = 256
_MISSES_REMEMBERED = 4096
_REFUSED = -1


@dataclass(frozen=True, slots=True)
class _Kept(Generic[V]):
    version: Version
    value: V
    cost: int


class KeptReads(Generic[V]):
    """Values by key, each valid at the one version it was read at, within a
    byte budget (least recently used go first)."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._used = 0
        self._kept: OrderedDict[Hashable, _Kept[V]] = OrderedDict()
        # key -> (version, misses at it): a key is kept on its second miss.
        self._misses: OrderedDict[Hashable, tuple[Version, int]] = OrderedDict()

    def get(self, key: Hashable, version: Version) -> V | None:
        kept = self._kept.get(key)
        if kept is None:
            return None
        if kept.version != version:
            # Asked often enough to be kept at its version: worth keeping at
            # this one from its first miss (worth_keeping), not its second.
            self._drop(key)
            self._misses.pop(key, None)
            self._misses[key] = (version, 1)
            return None
        self._kept.move_to_end(key)
        return kept.value

    def worth_keeping(self, key: Hashable, version: Version) -> bool:
        """Count a miss of `key` at `version`; True from its second on: asked
        twice without a change between, it is likely to be asked again (a
        keeping that did not finish, stopped on the loop, is tried again)."""
        seen = self._misses.pop(key, None)
        misses = 1
        if seen is not None and seen[0] == version:
            misses = seen[1] if seen[1] < 0 else seen[1] + 1
        self._misses[key] = (version, misses)
        if len(self._misses) > _MISSES_REMEMBERED:
            self._misses.popitem(last=False)
        return misses >= 2

    def offer(self, key: Hashable, version: Version, value: V, cost: int) -> None:
        """A value just read at `version`: a miss (worth_keeping), kept if
        worth keeping."""
        if self.worth_keeping(key, version):
            self.put(key, version, value, cost)

    def refuse(self, key: Hashable, version: Version) -> None:
        """Not worth keeping at `version` after all (too large): no more tries."""
        self._misses[key] = (version, _REFUSED)

    def put(self, key: Hashable, version: Version, value: V, cost: int) -> None:
        """Keep `value` (about `cost` bytes) for `key` at `version`."""
        self._drop(key)
        self._misses.pop(key, None)
        if cost > self._budget:
            return
        self._kept[key] = _Kept(version, value, cost)
        self._used += cost
        while self._used > self._budget:
            _, dropped = self._kept.popitem(last=False)
            self._used -= dropped.cost

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def used_bytes(self) -> int:
        return self._used

    def _drop(self, key: Hashable) -> None:
        dropped = self._kept.pop(key, None)
        if dropped is not None:
            self._used -= dropped.cost
