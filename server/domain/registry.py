"""Model operations: who may do what, then the rules, then storage."""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import ModelIdTaken, PermissionDenied, ServiceUnavailable
from .models import Model, ModelDraft, Principal
from .stores import DuplicateKey, ModelStore, StorageUnavailable
from .validation import build_model


class ModelRegistry:
    def __init__(self, store: ModelStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create_model(self, caller: Principal, draft: ModelDraft) -> Model:
        # Permission first: a caller without rights learns nothing about ids.
        if not caller.may_create_models:
            raise PermissionDenied()
        model = build_model(draft, user_id=caller.user_id, now=int(self._clock()))
        try:
            await self._store.insert(model)  # the primary key decides uniqueness
        except DuplicateKey as error:
            raise ModelIdTaken() from error
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error
        return model
