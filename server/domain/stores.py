"""What the domain needs from storage: the stores, as Protocols, and the two
failures a store reports (any method may raise StorageUnavailable). Storage
implements these; the domain never imports storage, so its rules can be read
and tested without a database."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .listing import ListQuery, ModelPage, Reader, Visibility
from .models import ActiveKey, ApiKey, Group, Model, ModelVersion, User
from .versions import VersionPage, VersionQuery


class DuplicateKey(Exception):
    """A row with this primary or unique key exists already."""


class StorageUnavailable(Exception):
    """The database cannot be reached or is not answering in time."""


class ModelStore(Protocol):
    async def insert(self, model: Model) -> None:
        """Store a new model durably; DuplicateKey if its id is taken."""
        ...

    async def get(self, model_id: str, user_id: str) -> tuple[Model | None, frozenset[str]]:
        """The model (grants included) and the groups of `user_id`."""
        ...

    async def list(self, query: ListQuery, reader: Reader) -> tuple[ModelPage, frozenset[str]]:
        """One page of the models `reader` may read that match `query`, and
        the reader's groups (empty unless `reader.needs_groups`)."""
        ...

    async def tags(self, reader: Reader) -> Sequence[str]:
        """The tags of the models `reader` may read, each once (by tag_key),
        sorted by key."""
        ...

    async def modify(self, model_id: str, user_id: str, change: ModelChange) -> Model | None:
        """Apply `change` to the model in one transaction (no other write to
        it in between) and return what it became. A model with a new
        version_id gets that version (written by `user_id`) in the same
        transaction, its parent the version it was."""
        ...

    async def versions(
        self, query: VersionQuery, user_id: str
    ) -> tuple[Model | None, frozenset[str], VersionPage]:
        """The model, the groups of `user_id` and a page of the model's
        versions (without snapshots), newest first."""
        ...

    async def version(
        self, model_id: str, version_id: str, user_id: str
    ) -> tuple[Model | None, frozenset[str], ModelVersion | None]:
        """The model, the groups of `user_id` and that version of the model."""
        ...

    async def restore(
        self, model_id: str, version_id: str, user_id: str, change: VersionChange
    ) -> Model:
        """As modify, with the version (of this model, or None) given to `change`."""
        ...

    async def delete_version(
        self, model_id: str, version_id: str, user_id: str, check: VersionCheck
    ) -> None:
        """Delete the version if `check` (given the model, the version and the
        caller's groups, in the transaction) does not raise; versions whose
        parent it was get its parent."""
        ...


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What one batch of an import writes: new models (with their first
    versions), then changes (before, after) in record order, each with its
    new version. A change's `before` may be a model new in the batch."""

    new: list[Model] = field(default_factory=list)
    changes: list[tuple[Model, Model]] = field(default_factory=list)


# Given the stored models of a batch's ids (locked) and the caller's groups,
# what to write.
ImportDecision = Callable[[Mapping[str, Model], frozenset[str]], ImportPlan]


class TransferStore(Protocol):
    """Export's reads and import's batches; synchronous, as the command
    line uses it (the server runs it on its database threads)."""

    def groups_of(self, user_id: str) -> frozenset[str]: ...

    def visible_ids(self, ids: Sequence[str], visibility: Visibility) -> frozenset[str]:
        """Those of `ids` that are models `visibility` lets through."""
        ...

    def export(
        self, visibility: Visibility, ids: Sequence[str], after: str | None, limit: int
    ) -> list[Model]:
        """Up to `limit` models `visibility` lets through (only those of
        `ids` if any), by id, after the id `after`."""
        ...

    def import_batch(
        self, ids: Sequence[str], user_id: str, decide: ImportDecision, *, write: bool
    ) -> frozenset[str]:
        """In one transaction: load the models of `ids` (locked when
        `write`), ask `decide` what to write, write it (versions by
        `user_id`) when `write`. Returns the ids of new models that another
        writer took meanwhile: neither they nor changes to them are written."""
        ...


class UserStore(Protocol):
    def insert(self, user: User) -> None: ...

    def insert_with_key(self, user: User, key_id: str, key_hash: str) -> None:
        """A user and its first key in one transaction: both or neither."""
        ...

    def list(self) -> Sequence[User]: ...

    def exists(self, user_id: str) -> bool: ...

    def count(self) -> int: ...


class KeyLookup(Protocol):
    def find_active(self, key_hash: str) -> ActiveKey | None:
        """The unrevoked key with this hash and its owner, or None."""
        ...


class ApiKeyStore(KeyLookup, Protocol):
    def insert(self, key_id: str, user_id: str, key_hash: str, created_at: int) -> None: ...

    def revoke(self, key_id: str, revoked_at: int) -> bool:
        """True if an active key was revoked."""
        ...

    def list(self, user_id: str | None = None) -> Sequence[ApiKey]: ...


# A model's next state, given its current one (None: there is none) and the
# caller's groups; None deletes it. It may raise the domain's errors, which
# leave the model as it was.
ModelChange = Callable[[Model | None, frozenset[str]], Model | None]
# The same, for a change made from one of the model's versions.
VersionChange = Callable[[Model | None, ModelVersion | None, frozenset[str]], Model]
VersionCheck = Callable[[Model | None, ModelVersion | None, frozenset[str]], None]


class GroupStore(Protocol):
    def create(self, group: Group) -> None:
        """DuplicateKey if the id is taken."""
        ...

    def delete(self, group_id: str, revoke: Callable[[Model], Model], user_id: str) -> bool:
        """True if there was such a group; its memberships go with it, and
        each model whose grants name it is stored as `revoke` makes it (a new
        version, by `user_id`), in the same transaction."""
        ...

    def get(self, group_id: str) -> Group | None: ...

    def list(self) -> Sequence[Group]: ...

    def add_member(self, group_id: str, user_id: str) -> None:
        """Idempotent; the group and the user must exist."""
        ...

    def remove_member(self, group_id: str, user_id: str) -> bool:
        """True if the user was a member."""
        ...
