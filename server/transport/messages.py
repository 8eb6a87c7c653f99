"""Model messages kept by what fixes them: a model's version (versions are
immutable, see storage/model_cache.py) and whether the caller may write it
(all that domain/access.py's as_seen_by varies with). A page of ListModels is
mostly models already sent at the same versions; building each message again
was most of a page's cost."""

from __future__ import annotations

from collections import OrderedDict

from modelregistry.v1 import model_service_pb2 as pb

from ..domain.models import Model
from .convert import model_to_proto

DEFAULT_BUDGET_BYTES = 32 * 1024 * 1024
_OVERHEAD_BYTES = 512  # the message object beside its encoded size


class ModelMessages:
    """The most recently used messages, within a byte budget. Used from the
    server's event loop only, so without a lock."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._used = 0
        self._kept: OrderedDict[tuple[str, bool | None], tuple[pb.Model, int]] = OrderedDict()

    def of(self, model: Model) -> pb.Model:
        """The message of `model`, as seen by its caller. The caller gets
        the kept message itself: a message holding it copies it."""
        if not model.version_id:
            return model_to_proto(model)  # written before versions
        key = (model.version_id, model.write_access)
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return kept[0]
        message = model_to_proto(model)
        cost = message.ByteSize() + _OVERHEAD_BYTES
        if cost <= self._budget:
            self._kept[key] = (message, cost)
            self._used += cost
            while self._used > self._budget:
                _, (_, freed) = self._kept.popitem(last=False)
                self._used -= freed
        return message

    def __len__(self) -> int:
        return len(self._kept)
