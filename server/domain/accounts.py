"""Users and their API keys, as the operator manages them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from .auth import hash_key, is_acceptable_key, mint_key, mint_key_id
from .models import ROLE_ADMIN, ROLES, ApiKey, User
from .stores import ApiKeyStore, DuplicateKey, UserStore


class AccountError(Exception):
    """An operator's request that cannot be carried out; the message says why."""


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: str
    key: str  # shown once, never stored


class Accounts:
    def __init__(self, users: UserStore, keys: ApiKeyStore) -> None:
        self._users = users
        self._keys = keys

    def create_user(self, user_id: str, *, role: str, can_create_models: bool) -> User:
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        if not user_id or " " in user_id or not user_id.isprintable() or len(user_id) > 256:
            raise AccountError("user id must be 1 to 256 characters without whitespace")
        user = User(user_id, role, can_create_models, int(time.time()))
        try:
            self._users.insert(user)
        except DuplicateKey:
            raise AccountError(f"user {user_id!r} exists already") from None
        return user

    def issue_key(self, user_id: str, key: str | None = None) -> IssuedKey:
        """A new key for `user_id`: minted, or `key` if the operator chose one."""
        if not self._users.exists(user_id):
            raise AccountError(f"no user {user_id!r}")
        issued = _new_key(key)
        try:
            self._keys.insert(issued.id, user_id, hash_key(issued.key), int(time.time()))
        except DuplicateKey:
            raise AccountError("that key is in use already") from None
        return issued

    def revoke_key(self, key_id: str) -> None:
        if not self._keys.revoke(key_id, int(time.time())):
            raise AccountError(f"no active key {key_id!r}")

    def bootstrap_admin(self, key: str | None) -> IssuedKey | None:
        """On an empty database, create the admin user and its first key;
        None if there are users already. Safe when several servers start at
        once on an empty database: the user and key are written in one
        transaction, the primary key lets one of them win, and the others
        return None."""
        if self._users.count() > 0:
            return None
        issued = _new_key(key)
        admin = User("admin", ROLE_ADMIN, True, int(time.time()))
        try:
            self._users.insert_with_key(admin, issued.id, hash_key(issued.key))
        except DuplicateKey:
            return None  # another server made the admin first
        return issued

    def list_users(self) -> Sequence[User]:
        return self._users.list()

    def list_keys(self, user_id: str | None = None) -> Sequence[ApiKey]:
        return self._keys.list(user_id)


def _new_key(key: str | None) -> IssuedKey:
    """A minted key, or the operator's own if it is acceptable."""
    if key is None:
        key = mint_key()
    elif not is_acceptable_key(key):
        raise AccountError("a chosen key must be 32 to 512 printable ASCII characters, no spaces")
    return IssuedKey(mint_key_id(), key)
