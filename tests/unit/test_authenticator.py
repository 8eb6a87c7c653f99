"""The Authenticator (domain/auth.py) with a fake key store and a fake clock:
what it looks up, what it caches and for how long, and what it refuses."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from modelregistry_server.domain import auth
from modelregistry_server.domain.auth import Authenticator, hash_key, is_acceptable_key, mint_key
from modelregistry_server.domain.errors import ServiceUnavailable, Unauthenticated
from modelregistry_server.domain.models import ActiveKey, Principal
from modelregistry_server.domain.stores import StorageUnavailable

ALICE = Principal("alice", "user", True)
BOB = Principal("bob", "admin", False)
ALICE_KEY = "mr-alice-0123456789abcdefghijklmnopqrstuvwxyz"
BOB_KEY = "mr-bob-0123456789abcdefghijklmnopqrstuvwxyz"


class FakeKeys:
    """Active keys by hash; records every lookup."""

    def __init__(self) -> None:
        self.active: dict[str, Principal] = {}
        self.lookups: list[str] = []
        self.unavailable = False

    def add(self, key: str, owner: Principal) -> None:
        self.active[hash_key(key)] = owner

    def revoke(self, key: str) -> None:
        del self.active[hash_key(key)]

    def find_active(self, key_hash: str) -> ActiveKey | None:
        self.lookups.append(key_hash)
        if self.unavailable:
            raise StorageUnavailable("OperationalError")
        owner = self.active.get(key_hash)
        return None if owner is None else ActiveKey(owner, key_hash)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys() -> FakeKeys:
    store = FakeKeys()
    store.add(ALICE_KEY, ALICE)
    store.add(BOB_KEY, BOB)
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authenticator(keys: FakeKeys, clock: Clock) -> Authenticator:
    return Authenticator(keys, cache_seconds=5, clock=clock)


def bearer(key: str) -> str:
    return f"Bearer {key}"


def test_a_key_is_looked_up_by_its_sha256_never_by_itself(authenticator, keys):
    assert authenticator.authenticate(bearer(ALICE_KEY)) == ALICE
    assert keys.lookups == [hashlib.sha256(ALICE_KEY.encode()).hexdigest()]
    assert len(keys.lookups[0]) == 64


def test_each_key_is_its_owner(authenticator):
    assert authenticator.authenticate(bearer(BOB_KEY)) == BOB
    assert authenticator.authenticate(bearer(ALICE_KEY)) == ALICE


def test_nothing_is_cached_before_the_first_lookup(authenticator, keys):
    assert authenticator.cached(bearer(ALICE_KEY)) is None
    assert keys.lookups == []


def test_a_checked_key_is_served_from_the_cache_until_it_expires(authenticator, keys, clock):
    authenticator.authenticate(bearer(ALICE_KEY))
    clock.now += 4.999
    assert authenticator.cached(bearer(ALICE_KEY)) == ALICE
    assert authenticator.authenticate(bearer(ALICE_KEY)) == ALICE
    assert len(keys.lookups) == 1
    clock.now += 0.001  # exactly cache_seconds after the lookup: expired
    assert authenticator.cached(bearer(ALICE_KEY)) is None
    assert authenticator.authenticate(bearer(ALICE_KEY)) == ALICE
    assert len(keys.lookups) == 2


def test_a_revoked_key_works_until_its_cache_entry_expires_then_never(authenticator, keys, clock):
    authenticator.authenticate(bearer(ALICE_KEY))
    keys.revoke(ALICE_KEY)
    clock.now += 4
    assert authenticator.authenticate(bearer(ALICE_KEY)) == ALICE
    clock.now += 1
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(bearer(ALICE_KEY))
    assert authenticator.cached(bearer(ALICE_KEY)) is None
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(bearer(ALICE_KEY))
    assert len(keys.lookups) == 3


def test_cache_seconds_zero_looks_up_every_call(keys, clock):
    authenticator = Authenticator(keys, cache_seconds=0, clock=clock)
    for _ in range(3):
        assert authenticator.authenticate(bearer(ALICE_KEY)) == ALICE
        assert authenticator.cached(bearer(ALICE_KEY)) is None
    assert len(keys.lookups) == 3


def test_an_unknown_key_is_unauthenticated_and_not_remembered(authenticator, keys):
    key = "mr-carol-0123456789abcdefghijklmnopqrstuvwxyz"
    with pytest.raises(Unauthenticated) as caught:
        authenticator.authenticate(bearer(key))
    assert caught.value.message == "Unauthorized"
    keys.add(key, Principal("carol", "user", False))
    assert authenticator.authenticate(bearer(key)) == Principal("carol", "user", False)
    assert len(keys.lookups) == 2


def test_when_the_cache_is_full_it_starts_over(authenticator, keys, monkeypatch):
    monkeypatch.setattr(auth, "CACHE_MAX_ENTRIES", 2)
    third = "mr-third-0123456789abcdefghijklmnopqrstuvwxyz"
    keys.add(third, Principal("third", "user", False))
    for key in (ALICE_KEY, BOB_KEY, third):
        authenticator.authenticate(bearer(key))
    assert authenticator.cached(bearer(ALICE_KEY)) is None
    assert authenticator.cached(bearer(BOB_KEY)) is None
    assert authenticator.cached(bearer(third)) == Principal("third", "user", False)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        f"Basic {ALICE_KEY}",
        f"Token {ALICE_KEY}",
        f"Bearer{ALICE_KEY}",
        f"Bearer\t{ALICE_KEY}",
        ALICE_KEY,
        "Bearer two words",
        f"Bearer {ALICE_KEY} {ALICE_KEY}",
        "Bearer " + "k" * 513,
    ],
)
def test_a_missing_or_malformed_value_is_unauthenticated_without_a_lookup(
    authenticator, keys, authorization
):
    with pytest.raises(Unauthenticated):
        authenticator.cached(authorization)
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(authorization)
    assert keys.lookups == []


@pytest.mark.parametrize(
    "authorization",
    [
        f"bearer {ALICE_KEY}",
        f"BEARER {ALICE_KEY}",
        f"Bearer   {ALICE_KEY}",
        f"Bearer {ALICE_KEY}  ",
    ],
)
def test_the_scheme_is_case_blind_and_spaces_around_the_key_are_dropped(
    authenticator, authorization
):
    assert authenticator.authenticate(authorization) == ALICE


def test_a_key_of_512_characters_is_looked_up_and_513_is_not(authenticator, keys):
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(bearer("k" * 512))
    assert keys.lookups == [hash_key("k" * 512)]
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(bearer("k" * 513))
    assert len(keys.lookups) == 1


def test_the_stored_hash_is_compared_again_in_constant_time(authenticator, keys, monkeypatch):
    compared: list[tuple[str, str]] = []
    real_compare_digest = hmac.compare_digest

    def compare_digest(stored: str, asked: str) -> bool:
        compared.append((stored, asked))
        return real_compare_digest(stored, asked)

    monkeypatch.setattr(auth.hmac, "compare_digest", compare_digest)
    authenticator.authenticate(bearer(ALICE_KEY))
    assert compared == [(hash_key(ALICE_KEY), hash_key(ALICE_KEY))]


def test_a_store_answering_with_another_hash_is_not_believed(clock):
    class LooseKeys(FakeKeys):
        def find_active(self, key_hash: str) -> ActiveKey | None:
            self.lookups.append(key_hash)
            return ActiveKey(ALICE, key_hash.upper())  # e.g. a case-blind collation

    keys = LooseKeys()
    authenticator = Authenticator(keys, cache_seconds=5, clock=clock)
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(bearer(ALICE_KEY))
    assert authenticator.cached(bearer(ALICE_KEY)) is None


def test_an_unavailable_store_is_service_unavailable_and_not_remembered(authenticator, keys):
    keys.unavailable = True
    with pytest.raises(ServiceUnavailable) as caught:
        authenticator.authenticate(bearer(ALICE_KEY))
    assert caught.value.message == "Service Unavailable"
    assert caught.value.reason == "DATABASE_UNAVAILABLE"
    assert isinstance(caught.value.__cause__, StorageUnavailable)
    keys.unavailable = False
    assert authenticator.authenticate(bearer(ALICE_KEY)) == ALICE


def test_a_cached_key_keeps_working_while_the_store_is_unavailable(authenticator, keys, clock):
    authenticator.authenticate(bearer(ALICE_KEY))
    keys.unavailable = True
    clock.now += 1
    assert authenticator.authenticate(bearer(ALICE_KEY)) == ALICE
    assert len(keys.lookups) == 1


@pytest.mark.parametrize(
    ("key", "acceptable"),
    [
        ("k" * 31, False),
        ("k" * 32, True),
        ("k" * 512, True),
        ("k" * 513, False),
        ("k" * 31 + " ", False),
        ("k" * 31 + "é", False),
        ("k" * 31 + "\t", False),
    ],
)
def test_an_operator_chosen_key_is_32_to_512_printable_ascii_without_spaces(
    key: str, acceptable: bool
):
    assert is_acceptable_key(key) is acceptable


def test_minted_keys_are_prefixed_acceptable_and_distinct():
    minted = {mint_key() for _ in range(50)}
    assert len(minted) == 50
    assert all(key.startswith("mr-") and is_acceptable_key(key) for key in minted)
