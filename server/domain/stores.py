"""What the domain needs from storage: the stores, as Protocols, and the two
failures a store reports (any method may raise StorageUnavailable). Storage
implements these; the domain never imports storage, so its rules can be read
and tested without a database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .models import ActiveKey, ApiKey, Model, User


class DuplicateKey(Exception):
    """A row with this primary or unique key exists already."""


class StorageUnavailable(Exception):
    """The database cannot be reached or is not answering in time."""


class ModelStore(Protocol):
    async def insert(self, model: Model) -> None:
        """Store a new model durably; DuplicateKey if its id is taken."""
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
