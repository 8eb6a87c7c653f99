"""Models kept by version: a version is immutable (every write makes a new
version id), so a model once read at version V is the same model whenever V
is current again, on any replica. ListModels reads only the ids and current
versions of a page, then decodes just the models it has not seen at those
versions. A change elsewhere shows at once: its new version id misses."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from ..domain.models import Model

DEFAULT_BUDGET_BYTES = 64 * 1024 * 1024
# What a kept model costs: its params and meta decoded take about 2-5 times
# their JSON text (measured on Open WebUI's exports), plus the model's other
# objects and strings.
_DECODED_PER_STORED_BYTE = 4
_OVERHEAD_BYTES = 1024


class ModelCache:
    """The most recently used models by version id, within a byte budget
    (an estimate of their memory, from their params' and meta's size as
    stored)."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._used = 0
        self._kept: OrderedDict[str, tuple[Model, int]] = OrderedDict()
        self._lock = threading.Lock()  # the database threads share it

    def get(self, version_id: str) -> Model | None:
        with self._lock:
            kept = self._kept.get(version_id)
            if kept is None:
                return None
            self._kept.move_to_end(version_id)
            return kept[0]

    def get_many(self, version_ids: Sequence[str | None]) -> list[Model | None]:
        """get() of each (None for a missing or empty version id), taking
        the lock once."""
        found: list[Model | None] = []
        with self._lock:
            for version_id in version_ids:
                kept = self._kept.get(version_id) if version_id else None
                if version_id and kept is not None:
                    self._kept.move_to_end(version_id)
                    found.append(kept[0])
                else:
                    found.append(None)
        return found

    def put(self, model: Model, stored_bytes: int) -> None:
        """Keep `model` (at its version_id), whose params and meta take
        `stored_bytes` as stored; the least recently used go to make room."""
        if not model.version_id:
            return  # written before versions: nothing names this state
        cost = stored_bytes * _DECODED_PER_STORED_BYTE + _OVERHEAD_BYTES
        if cost > self._budget:
            return
        with self._lock:
            previous = self._kept.pop(model.version_id, None)
            if previous is not None:
                self._used -= previous[1]
            self._kept[model.version_id] = (model, cost)
            self._used += cost
            while self._used > self._budget:
                _, (_, freed) = self._kept.popitem(last=False)
                self._used -= freed

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def used_bytes(self) -> int:
        return self._used
