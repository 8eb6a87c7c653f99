"""domain/access.py: who may read and write a model, as one matrix."""

from __future__ import annotations

import pytest

from modelregistry_server.domain.access import (
    FULL_ACCESS,
    NO_ACCESS,
    Access,
    access_to,
    as_seen_by,
    grant_principals,
)
from modelregistry_server.domain.models import AccessGrant, Model, Principal

READ_ONLY = Access(read=True, write=False)


def fresh(text: str) -> str:
    """An equal string that is not the same object: values that arrive over
    the wire are never the literals in the code, so `is` must not pass for
    `==`."""
    return "".join(list(text)) if len(text) > 1 else text


def grant(access_type: str, access_id: str, permission: str) -> AccessGrant:
    return AccessGrant(fresh(access_type), fresh(access_id), fresh(permission))


def model(*grants: AccessGrant, owner: str = "olivia") -> Model:
    return Model(
        id="m",
        user_id=fresh(owner),
        base_model_id=None,
        name="M",
        params={"system": "secret prompt"},
        meta={},
        access_grants=list(grants),
        is_active=True,
        created_at=1,
        updated_at=1,
    )


def user(user_id: str, role: str = "user") -> Principal:
    return Principal(fresh(user_id), fresh(role), can_create_models=False)


GRANTS = {
    "nothing": [],
    "user read": [grant("user", "ursula", "read")],
    "user write": [grant("user", "ursula", "write")],
    "group read": [grant("group", "devs", "read")],
    "group write": [grant("group", "devs", "write")],
    "everyone read": [grant("user", "*", "read")],
    "everyone write": [grant("user", "*", "write")],
    "other user": [grant("user", "someone-else", "write")],
    "other group": [grant("group", "ops", "write")],
    "group named like the user": [grant("group", "ursula", "write")],
    "user named like the group": [grant("user", "devs", "write")],
    "read and write": [
        grant("user", "ursula", "read"),
        grant("group", "devs", "write"),
    ],
}

# (grants, what ursula -- a member of "devs" -- may do)
EXPECTED = {
    "nothing": NO_ACCESS,
    "user read": READ_ONLY,
    "user write": FULL_ACCESS,
    "group read": READ_ONLY,
    "group write": FULL_ACCESS,
    "everyone read": READ_ONLY,
    "everyone write": FULL_ACCESS,
    "other user": NO_ACCESS,
    "other group": NO_ACCESS,
    "group named like the user": NO_ACCESS,
    "user named like the group": NO_ACCESS,
    "read and write": FULL_ACCESS,
}


@pytest.mark.parametrize("case", list(GRANTS))
def test_a_member_of_devs(case: str):
    assert access_to(user("ursula"), model(*GRANTS[case]), {fresh("devs")}) == EXPECTED[case]


@pytest.mark.parametrize("case", list(GRANTS))
def test_admins_and_owners_may_do_everything(case: str):
    grants = GRANTS[case]
    assert access_to(user("root", "admin"), model(*grants), set()) == FULL_ACCESS
    assert access_to(user("olivia"), model(*grants), set()) == FULL_ACCESS


def test_group_grants_need_membership():
    grants = GRANTS["group write"]
    assert access_to(user("ursula"), model(*grants), set()) == NO_ACCESS
    assert access_to(user("ursula"), model(*grants), {fresh("ops"), fresh("devs")}) == FULL_ACCESS


def test_a_reader_does_not_see_params():
    seen = as_seen_by(model(), READ_ONLY)
    assert seen.params == {} and seen.write_access is False
    assert seen.meta == {} and seen.name == "M"


def test_a_writer_sees_everything():
    seen = as_seen_by(model(), FULL_ACCESS)
    assert seen.params == {"system": "secret prompt"} and seen.write_access is True


def test_grant_principals_are_what_list_looks_up():
    assert grant_principals("ursula", ["devs", "ops"]) == [
        ("user", "ursula"),
        ("user", "*"),
        ("group", "devs"),
        ("group", "ops"),
    ]


def test_full_access_reads_and_writes():
    assert (FULL_ACCESS.read, FULL_ACCESS.write) == (True, True)
    assert (NO_ACCESS.read, NO_ACCESS.write) == (False, False)


def test_an_owner_is_the_same_user_not_one_sorted_near_it():
    for caller in ("alice", "zoe", "olivia2", "olivi"):
        assert access_to(user(caller), model(), set()) == NO_ACCESS


@pytest.mark.parametrize("access_type", ["alpha", "team", "users", "zeta", "Group", "USER"])
def test_a_grant_of_an_unknown_kind_reaches_no_one(access_type: str):
    # Validation never stores one; an old or imported row must still not open a model.
    grants = [grant(access_type, "ursula", "write"), grant(access_type, "devs", "write")]
    assert access_to(user("ursula"), model(*grants), {fresh("devs")}) == NO_ACCESS
