"""API keys: minting, hashing, and turning an Authorization value into the
calling user.

Keys are 256-bit random strings shown once; only their SHA-256 is stored.
Lookups are by that hash, and the stored hash is compared again in constant
time, so neither the database nor this code leaks a key through timing.
Recent lookups are cached for `cache_seconds` (a revoked key keeps working
for at most that long); the cache is keyed by the hash, never the key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable

from .errors import ServiceUnavailable, Unauthenticated
from .models import Principal
from .stores import KeyLookup, StorageUnavailable

KEY_PREFIX = "mr-"
MIN_KEY_LENGTH = 32  # for keys supplied by an operator
MAX_KEY_LENGTH = 512
CACHE_MAX_ENTRIES = 10_000


def mint_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def mint_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_acceptable_key(key: str) -> bool:
    return (
        MIN_KEY_LENGTH <= len(key) <= MAX_KEY_LENGTH
        and key.isascii()
        and key.isprintable()
        and " " not in key
    )


class Authenticator:
    def __init__(
        self,
        keys: KeyLookup,
        *,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def cached(self, authorization: str | None) -> Principal | None:
        """The caller if its key was looked up recently; None means: call
        `authenticate` (which may touch the database). A missing or malformed
        value is Unauthenticated here already, with no lookup."""
        return self._from_cache(_key_hash(authorization), self._clock())

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller, or Unauthenticated for a missing, malformed, unknown or
        revoked key (all alike, so a caller cannot tell them apart)."""
        key_hash = _key_hash(authorization)
        now = self._clock()
        principal = self._from_cache(key_hash, now)
        if principal is not None:
            return principal
        try:
            found = self._keys.find_active(key_hash)
        except StorageUnavailable as error:
            raise ServiceUnavailable() from error
        if found is None or not hmac.compare_digest(found.key_hash, key_hash):
            raise Unauthenticated()
        principal = found.owner
        if self._cache_seconds > 0:
            with self._lock:
                if len(self._cache) >= CACHE_MAX_ENTRIES:
                    self._cache.clear()
                self._cache[key_hash] = (principal, now + self._cache_seconds)
        return principal

    def _from_cache(self, key_hash: str, now: float) -> Principal | None:
        entry = self._cache.get(key_hash)
        if entry is not None and entry[1] > now:
            return entry[0]
        return None


def _key_hash(authorization: str | None) -> str:
    key = _bearer_key(authorization)
    if key is None:
        raise Unauthenticated()
    return hash_key(key)


def _bearer_key(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or " " in key:
        return None
    return key
