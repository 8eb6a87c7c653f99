"""Model operations: who may do what (access.py), then the rules
(validation.py), then storage. Every change is decided inside the store's
transaction (ModelStore.modify), so access is checked against the model as
it is written, never a stale copy."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import TypeVar

from .access import FULL_ACCESS, access_to, as_seen_by
from .derived import Derived
from .errors import (
    CurrentVersion,
    FieldViolation,
    InvalidArgument,
    ModelIdTaken,
    ModelNotFound,
    PermissionDenied,
    ServiceUnavailable,
    VersionNotFound,
)
from .listing import Listed, ListedPage, ListQuery, Reader
from .models import ROLE_ADMIN, GrantDraft, Model, ModelDraft, ModelVersion, Principal
from .stores import DuplicateKey, ModelChange, ModelStore, StorageUnavailable
from .validation import build_model, check_commit_message, check_grants
from .versions import VersionPage, VersionQuery, new_version_id, restored

# What UpdateModel may change; update_mask names a subset of these.
UPDATABLE_FIELDS = ("name", "base_model_id", "params", "meta", "is_active")
# Pages as their callers see them, kept while storage answers with the same page.
LISTED_PAGES_KEPT = 4096
T = TypeVar("T")


class ModelRegistry:
    def __init__(self, store: ModelStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._listed: Derived[ListedPage] = Derived(LISTED_PAGES_KEPT)

    async def create_model(self, caller: Principal, draft: ModelDraft) -> Model:
        # Permission first: a caller without rights learns nothing about ids.
        if not caller.may_create_models:
            raise PermissionDenied()
        model = build_model(draft, user_id=caller.user_id, now=self._now())
        model = replace(model, version_id=new_version_id())
        try:
            await self._store.insert(model)  # the primary key decides uniqueness
        except DuplicateKey as error:
            raise ModelIdTaken() from error
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error
        return model

    async def get_model(self, caller: Principal, model_id: str) -> Model:
        try:
            model, groups = await self._store.get(model_id, caller.user_id)
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error
        if model is None:
            raise ModelNotFound()
        access = access_to(caller, model, groups)
        if not access.read:
            raise ModelNotFound()
        return as_seen_by(model, access)

    async def list_models(self, caller: Principal, query: ListQuery) -> ListedPage:
        """A page of the models the caller may read, each with whether they
        may change it (Listed.seen: the model as they may see it); the same
        object as last time when storage answered with the same page."""
        admin = caller.role == ROLE_ADMIN
        # An admin sees everything, but what was shared with them (with their
        # groups too) still takes their groups.
        needs_groups = not admin or query.view == "shared"
        reader = Reader(caller.user_id, everything=admin, needs_groups=needs_groups)
        try:
            page, groups = await self._store.list(query, reader)
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error
        key = (caller, query)
        listed = self._listed.get(key, page)  # the same page as last time: nothing changed
        if listed is None:
            # Every listed model is readable: storage filtered by the same rules.
            items = [Listed(m, access_to(caller, m, groups).write) for m in page.models]
            listed = ListedPage(items=items, total=page.total, last=page.last)
            self._listed.put(key, page, listed)
        return listed

    async def list_tags(self, caller: Principal) -> list[str]:
        """The tags of the models the caller may read."""
        admin = caller.role == ROLE_ADMIN
        try:
            reader = Reader(caller.user_id, everything=admin, needs_groups=not admin)
            return list(await self._store.tags(reader))
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error

    async def update_model(
        self, caller: Principal, draft: ModelDraft, fields: Collection[str] | None = None
    ) -> Model:
        """Replace the fields named in `fields` (all updatable ones if None)
        with the draft's, under create's rules. id, user_id, created_at and
        the grants stay."""
        if fields is not None:
            unknown = sorted(set(fields) - set(UPDATABLE_FIELDS))
            if unknown:
                raise InvalidArgument(
                    [
                        FieldViolation(
                            "update_mask",
                            f"update_mask may name only {', '.join(UPDATABLE_FIELDS)}"
                            f" (not {', '.join(unknown)})",
                        )
                    ]
                )
        now = self._now()

        chosen = frozenset(UPDATABLE_FIELDS if fields is None else fields)

        def change(current: Model | None, groups: frozenset[str]) -> Model:
            current = _writable(caller, current, groups)
            is_active = draft.is_active
            if fields is None and is_active is None:
                is_active = current.is_active  # an absent is_active keeps its value
            merged = ModelDraft(
                id=current.id,
                name=_pick(chosen, "name", draft.name, current.name),
                base_model_id=_pick(
                    chosen, "base_model_id", draft.base_model_id, current.base_model_id
                ),
                params=_pick(chosen, "params", draft.params, current.params),
                meta=_pick(chosen, "meta", draft.meta, current.meta),
                access_grants=[],
                is_active=_pick(chosen, "is_active", is_active, current.is_active),
                commit_message=draft.commit_message,
            )
            built = build_model(merged, user_id=current.user_id, now=now)
            return replace(
                built,
                access_grants=current.access_grants,
                created_at=current.created_at,
                updated_at=max(now, current.updated_at),
                version_id=new_version_id(),
            )

        return await self._modify(caller, draft.id, change)

    async def toggle_model(self, caller: Principal, model_id: str) -> Model:
        now = self._now()

        def change(current: Model | None, groups: frozenset[str]) -> Model:
            current = _writable(caller, current, groups)
            return replace(
                current,
                is_active=not current.is_active,
                updated_at=max(now, current.updated_at),
                commit_message=None,
                version_id=new_version_id(),
            )

        return await self._modify(caller, model_id, change)

    async def update_model_access(
        self, caller: Principal, model_id: str, grants: list[GrantDraft]
    ) -> Model:
        checked = check_grants(grants)  # a bad grant is refused before any lookup
        now = self._now()

        def change(current: Model | None, groups: frozenset[str]) -> Model:
            current = _writable(caller, current, groups)
            return replace(
                current,
                access_grants=checked,
                updated_at=max(now, current.updated_at),
                commit_message=None,
                version_id=new_version_id(),
            )

        return await self._modify(caller, model_id, change)

    async def delete_model(self, caller: Principal, model_id: str) -> None:
        def change(current: Model | None, groups: frozenset[str]) -> None:
            _writable(caller, current, groups)
            return None  # gone, with its grants

        await self._change(caller, model_id, change)

    async def list_versions(self, caller: Principal, query: VersionQuery) -> VersionPage:
        """A page of the model's history, for those who may change it."""
        try:
            model, groups, page = await self._store.versions(query, caller.user_id)
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error
        _writable(caller, model, groups)
        return page

    async def get_version(self, caller: Principal, model_id: str, version_id: str) -> ModelVersion:
        try:
            model, groups, version = await self._store.version(model_id, version_id, caller.user_id)
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error
        return _version_of(caller, model, version, groups)

    async def restore_version(
        self, caller: Principal, model_id: str, version_id: str, commit_message: str | None
    ) -> Model:
        """The model made what one of its versions was, as a new version."""
        check_commit_message(commit_message)
        now = self._now()

        def change(
            current: Model | None, version: ModelVersion | None, groups: frozenset[str]
        ) -> Model:
            version = _version_of(caller, current, version, groups)
            assert current is not None
            return restored(current, version, now=now, commit_message=commit_message)

        try:
            model = await self._store.restore(model_id, version_id, caller.user_id, change)
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error
        return as_seen_by(model, FULL_ACCESS)

    async def delete_version(self, caller: Principal, model_id: str, version_id: str) -> None:
        def check(
            current: Model | None, version: ModelVersion | None, groups: frozenset[str]
        ) -> None:
            version = _version_of(caller, current, version, groups)
            assert current is not None
            if version.id == current.version_id:
                raise CurrentVersion()

        try:
            await self._store.delete_version(model_id, version_id, caller.user_id, check)
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error

    async def _modify(
        self,
        caller: Principal,
        model_id: str,
        change: Callable[[Model | None, frozenset[str]], Model],
    ) -> Model:
        changed = await self._change(caller, model_id, change)
        assert changed is not None
        return as_seen_by(changed, FULL_ACCESS)

    async def _change(self, caller: Principal, model_id: str, change: ModelChange) -> Model | None:
        try:
            return await self._store.modify(model_id, caller.user_id, change)
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error

    def _now(self) -> int:
        return int(self._clock())


def _pick(chosen: frozenset[str], name: str, sent: T, stored: T) -> T:
    return sent if name in chosen else stored


def _writable(caller: Principal, current: Model | None, groups: frozenset[str]) -> Model:
    """`current`, if the caller may change it; else the error they get: a
    model they may not see does not exist for them."""
    if current is None:
        raise ModelNotFound()
    access = access_to(caller, current, groups)
    if not access.read:
        raise ModelNotFound()
    if not access.write:
        raise PermissionDenied()
    return current


def _version_of(
    caller: Principal,
    model: Model | None,
    version: ModelVersion | None,
    groups: frozenset[str],
) -> ModelVersion:
    """`version`, if the caller may see the model's history (which holds its
    params: write access); a version of a model they may not see is the
    model's NOT_FOUND."""
    _writable(caller, model, groups)
    if version is None:
        raise VersionNotFound()
    return version
