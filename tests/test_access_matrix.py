"""Who may do what with a model (server/domain/access.py), end to end: every
kind of caller against GetModel, ListModels, UpdateModel, ToggleModel,
UpdateModelAccess and DeleteModel, on gRPC and through Envoy on both path
prefixes, on SQLite and PostgreSQL; and the groups that grants name.

Every model here belongs to `owner` and is made from one of three templates:
"shared" (a read and a write grant to a user and to a group each), "public"
(the same and a read grant to every signed-in user, `*`), "private" (grants
to others only). ACCESS says what each caller may do with each."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from registry_support import (
    FACES,
    FAVICON,
    GRPC,
    Registered,
    Reply,
    api_json,
    assert_rpc_error,
    callers_for,
    ok,
    refused,
    rpc_error,
    seen_by_reader,
    seen_by_writer,
)
from support import start_registry

READ, WRITE, NONE = "read", "write", "none"

GRANTS = {
    "shared": [
        {"access_type": "user", "access_id": "reader", "permission": "read"},
        {"access_type": "user", "access_id": "writer", "permission": "write"},
        {"access_type": "group", "access_id": "readers", "permission": "read"},
        {"access_type": "group", "access_id": "writers", "permission": "write"},
    ],
    "private": [
        {"access_type": "user", "access_id": "someone-else", "permission": "write"},
        {"access_type": "group", "access_id": "nobody", "permission": "read"},
    ],
}
GRANTS["public"] = [
    *GRANTS["shared"],
    {"access_type": "user", "access_id": "*", "permission": "read"},
]
TEMPLATES = tuple(GRANTS)

# caller -> template -> what they may do. The caller "everyone" has no grant
# of its own; the stranger is in a group ("bystanders") that no grant names.
ACCESS = {
    "admin": {"shared": WRITE, "public": WRITE, "private": WRITE},
    "owner": {"shared": WRITE, "public": WRITE, "private": WRITE},
    "reader": {"shared": READ, "public": READ, "private": NONE},
    "writer": {"shared": WRITE, "public": WRITE, "private": NONE},
    "group_reader": {"shared": READ, "public": READ, "private": NONE},
    "group_writer": {"shared": WRITE, "public": WRITE, "private": NONE},
    "everyone": {"shared": NONE, "public": READ, "private": NONE},
    "stranger": {"shared": NONE, "public": READ, "private": NONE},
}
CALLERS = (*ACCESS, "no_key")
# The template a caller's change calls are tried on: where its grant is.
TARGET = {
    "admin": "private",
    "owner": "private",
    "reader": "shared",
    "writer": "shared",
    "group_reader": "shared",
    "group_writer": "shared",
    "everyone": "public",
    "stranger": "shared",
    "no_key": "public",
}
USERS = {
    "owner": {"can_create": True},
    "reader": {},
    "writer": {},
    "group_reader": {},
    "group_writer": {},
    "everyone": {},
    "stranger": {"can_create": True},
}
GROUPS = {
    "readers": ["group_reader"],
    "writers": ["group_writer"],
    "bystanders": ["stranger"],
}
MODEL = {
    "base_model_id": "gpt-4",
    "params": {"system": "You are a secret prompt.", "temperature": 0.5, "max_tokens": 300},
    "meta": {"description": "A model of the matrix", "capabilities": {"vision": True}},
}

_case_ids = itertools.count()


@dataclass
class World(Registered):
    def new_model(self, template: str, **fields: Any) -> dict[str, Any]:
        """A model of `owner` from `template`, as its owner sees it."""
        model_id = fields.pop("id", None) or f"case-{template}-{next(_case_ids)}"
        self.callers["owner"].create(
            {
                "id": model_id,
                "name": f"Case {model_id}",
                **MODEL,
                "access_grants": GRANTS[template],
                **fields,
            }
        )
        return self.full(model_id)

    def full(self, model_id: str) -> dict[str, Any]:
        """The stored model, as a caller who may change it gets it."""
        return api_json(self.admin.get(model_id))


@pytest.fixture(scope="module")
def world(database_url_factory: Callable[[], str]) -> Iterator[World]:
    registry = start_registry(database_url_factory(), http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            world = World(registry, callers_for(registry, channel, USERS))
            for group, members in GROUPS.items():
                world.admin.create_group(group)
                for member in members:
                    world.admin.add_member(group, member)
            for template in TEMPLATES:
                world.new_model(template, id=f"fixed-{template}", name=f"Fixed {template}")
            yield world
    finally:
        assert registry.stop() == 0


def expected_read(face: str, caller: str, template: str, model: dict[str, Any]) -> Reply:
    if caller == "no_key":
        return refused(face, "unauthenticated")
    access = ACCESS[caller][template]
    if access == NONE:
        return refused(face, "not_found")
    return ok(face, seen_by_reader(model) if access == READ else seen_by_writer(model))


def expected_change(face: str, caller: str, template: str) -> Reply | None:
    """The refusal `caller` gets for changing a `template` model; None: allowed."""
    if caller == "no_key":
        return refused(face, "unauthenticated")
    access = ACCESS[caller][template]
    if access == NONE:
        return refused(face, "not_found")
    if access == READ:
        return refused(face, "denied")
    return None


# -- reading ------------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("caller", CALLERS)
def test_get(world: World, caller: str, template: str, face: str):
    model_id = f"fixed-{template}"
    reply = world.callers[caller].on(face).get(model_id)
    assert reply == expected_read(face, caller, template, world.full(model_id))


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("caller", CALLERS)
def test_list(world: World, caller: str, face: str):
    """Whether each model is in the caller's list, with what write_access and
    params; `total` counts only those."""
    reply = world.callers[caller].on(face).list(query="fixed", order_by="name")
    if caller == "no_key":
        assert reply == refused(face, "unauthenticated")
        return
    items = []
    for template in sorted(TEMPLATES):  # names "Fixed private" < "Fixed public" < "Fixed shared"
        seen = expected_read(face, caller, template, world.full(f"fixed-{template}"))
        if seen.body != {"detail": "Model not found"}:
            items.append(seen.body)
    assert reply == ok(face, {"items": items, "total": len(items), "next_page_token": ""})


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("caller", CALLERS)
def test_a_model_that_does_not_exist_is_not_found(world: World, caller: str, face: str):
    calls = world.callers[caller].on(face)
    missing = "no-such-model"
    expected = refused(face, "unauthenticated" if caller == "no_key" else "not_found")
    assert calls.get(missing) == expected
    assert calls.update({"id": missing, "name": "x", "params": {}, "meta": {}}) == expected
    assert calls.toggle(missing) == expected
    assert calls.update_access(missing, []) == expected
    assert calls.delete(missing) == expected


@pytest.mark.parametrize("method", ["GetModel", "ToggleModel", "DeleteModel"])
def test_a_hidden_model_and_a_missing_one_give_the_same_status(world: World, method: str):
    """NOT_FOUND with the same message and details, byte for byte, and the
    same HTTP reply: a caller learns nothing about ids they may not read."""
    stranger = world.callers["stranger"]
    request = {"GetModel": "get", "ToggleModel": "toggle", "DeleteModel": "delete"}[method]
    hidden = rpc_error(getattr(stranger, request), "fixed-private")
    missing = rpc_error(getattr(stranger, request), "no-such-model")
    assert hidden.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    assert hidden.details() == missing.details() == "Model not found"
    assert dict(hidden.trailing_metadata()) == dict(missing.trailing_metadata())
    path = {
        "GetModel": ("GET", "/api/v1/models/model?id={}", False),
        "ToggleModel": ("POST", "/api/models/model/toggle?id={}", False),
        "DeleteModel": ("POST", "/api/v1/models/model/delete", True),
    }[method]
    replies = []
    for model_id in ("fixed-private", "no-such-model"):
        body = {"id": model_id} if path[2] else None
        response = stranger.http(path[0], path[1].format(model_id), body)
        replies.append((response.status, response.body))
    assert replies[0] == replies[1] == (404, b'{"detail":"Model not found"}')


# -- changing: a fresh model per case -------------------------------------------------


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("caller", CALLERS)
def test_update(world: World, caller: str, face: str):
    template = TARGET[caller]
    before = world.new_model(template)
    change = {
        "id": before["id"],
        "name": f"Renamed by {caller}",
        "base_model_id": "gpt-4o",
        "params": {"temperature": 0.1},
        "meta": {"description": "changed"},
        "commit_message": "matrix",
    }
    reply = world.callers[caller].on(face).update(change)
    refusal = expected_change(face, caller, template)
    if refusal is not None:
        assert reply == refusal
        assert world.full(before["id"]) == before
        return
    after = {
        **before,
        "name": change["name"],
        "base_model_id": "gpt-4o",
        "params": {"temperature": 0.1},
        "meta": {"description": "changed", "profile_image_url": FAVICON},
        "updated_at": reply.updated_at,
        "version_id": reply.version_id,
    }
    assert reply == ok(face, after)
    assert after["updated_at"] >= before["updated_at"]
    assert world.full(before["id"]) == after  # the grants among them, unchanged


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("caller", CALLERS)
def test_toggle(world: World, caller: str, face: str):
    template = TARGET[caller]
    before = world.new_model(template)
    reply = world.callers[caller].on(face).toggle(before["id"])
    refusal = expected_change(face, caller, template)
    if refusal is not None:
        assert reply == refusal
        assert world.full(before["id"]) == before
        return
    after = {
        **before,
        "is_active": False,
        "updated_at": reply.updated_at,
        "version_id": reply.version_id,
    }
    assert reply == ok(face, after)
    assert after["updated_at"] >= before["updated_at"]
    assert world.full(before["id"]) == after


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("caller", CALLERS)
def test_update_access(world: World, caller: str, face: str):
    template = TARGET[caller]
    before = world.new_model(template)
    grants = [{"access_type": "user", "access_id": "newcomer", "permission": "read"}]
    reply = world.callers[caller].on(face).update_access(before["id"], grants, name=before["name"])
    refusal = expected_change(face, caller, template)
    if refusal is not None:
        assert reply == refusal
        assert world.full(before["id"]) == before
        return
    after = {
        **before,
        "access_grants": grants,
        "updated_at": reply.updated_at,
        "version_id": reply.version_id,
    }
    assert reply == ok(face, after)
    assert world.full(before["id"]) == after


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("caller", CALLERS)
def test_delete(world: World, caller: str, face: str):
    template = TARGET[caller]
    before = world.new_model(template)
    reply = world.callers[caller].on(face).delete(before["id"])
    refusal = expected_change(face, caller, template)
    if refusal is not None:
        assert reply == refusal
        assert world.full(before["id"]) == before
        return
    assert reply == ok(face, True)
    assert world.admin.on(GRPC).get(before["id"]) == refused(GRPC, "not_found")


@pytest.mark.parametrize("face", FACES)
def test_a_write_grant_to_everyone_lets_every_signed_in_user_change_it(world: World, face: str):
    grants = [{"access_type": "user", "access_id": "*", "permission": "write"}]
    before = world.new_model("private", access_grants=grants)
    assert world.callers["everyone"].on(face).get(before["id"]) == ok(face, seen_by_writer(before))
    reply = world.callers["stranger"].on(face).toggle(before["id"])
    assert reply.status in ("OK", 200) and reply.body["is_active"] is False
    assert world.callers["no_key"].on(face).toggle(before["id"]) == refused(face, "unauthenticated")


# -- groups ---------------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_a_new_member_reads_on_the_next_request_and_a_removed_one_no_longer(
    world: World, face: str
):
    group = f"late-{face.replace('/', '-')}"
    world.admin.create_group(group)
    grants = [{"access_type": "group", "access_id": group, "permission": "read"}]
    model = world.new_model("private", access_grants=grants)
    member = world.callers["everyone"].on(face)
    listed = {"query": model["id"]}

    assert member.get(model["id"]) == refused(face, "not_found")
    assert member.list(**listed).body["total"] == 0

    assert list(world.admin.add_member(group, "everyone").member_ids) == ["everyone"]
    assert member.get(model["id"]) == ok(face, seen_by_reader(model))
    assert member.list(**listed).body["items"] == [seen_by_reader(model)]

    assert list(world.admin.remove_member(group, "everyone").member_ids) == []
    assert member.get(model["id"]) == refused(face, "not_found")
    assert member.list(**listed).body == {"items": [], "total": 0, "next_page_token": ""}


@pytest.mark.parametrize("face", FACES)
def test_a_deleted_groups_grants_reach_no_one(world: World, face: str):
    group = f"doomed-{face.replace('/', '-')}"
    world.admin.create_group(group)
    world.admin.add_member(group, "everyone")
    grants = [{"access_type": "group", "access_id": group, "permission": "write"}]
    model = world.new_model("private", access_grants=grants)
    member = world.callers["everyone"].on(face)
    assert member.get(model["id"]) == ok(face, seen_by_writer(model))

    world.admin.delete_group(group)
    assert group not in [g.id for g in world.admin.list_groups().groups]
    assert member.get(model["id"]) == refused(face, "not_found")
    assert member.toggle(model["id"]) == refused(face, "not_found")
    assert member.list(query=model["id"]).body["total"] == 0
    # A group made again with the id has none of the old members, nor the
    # old grants: adding the member back opens nothing.
    world.admin.create_group(group)
    assert member.get(model["id"]) == refused(face, "not_found")
    world.admin.add_member(group, "everyone")
    assert member.get(model["id"]) == refused(face, "not_found")
    owner_view = world.admin.on(face).get(model["id"])
    assert owner_view.body["access_grants"] == []


@pytest.mark.parametrize("face", FACES)
def test_a_deleted_groups_write_grant_leaves_every_copy_of_the_model(world: World, face: str):
    """Models are kept by version (the list's models, GetModel's JSON): the
    grant a deleted group took with it must not live on in a kept copy, nor
    come back for a group made again with the id."""
    group = f"gone-{face.replace('/', '-')}"
    world.admin.create_group(group)
    world.admin.add_member(group, "everyone")
    everyone = {"access_type": "user", "access_id": "*", "permission": "read"}
    grants = [{"access_type": "group", "access_id": group, "permission": "write"}, everyone]
    # One word of its own, so that a query for it finds it alone.
    model_id = "lostgrant" + face.replace("/", "")
    model = world.new_model("private", id=model_id, access_grants=grants)
    member, admin = world.callers["everyone"].on(face), world.admin.on(face)
    [listed] = member.list(query=model["id"]).body["items"]
    assert listed["write_access"] is True and member.get(model["id"]).body["write_access"]
    assert len(admin.list(query=model["id"]).body["items"][0]["access_grants"]) == 2

    world.admin.delete_group(group)
    world.admin.create_group(group)
    world.admin.add_member(group, "everyone")
    [listed] = member.list(query=model["id"]).body["items"]
    got = member.get(model["id"]).body
    for seen in (listed, got):
        assert (seen["write_access"], seen["params"]) == (False, {})
    assert member.toggle(model["id"]) == refused(face, "denied")
    [listed] = admin.list(query=model["id"]).body["items"]
    assert listed["access_grants"] == admin.get(model["id"]).body["access_grants"] == [everyone]
    # The change is a version of the model, as a change of its grants is.
    newest = admin.history(model["id"]).body[0]
    assert newest["commit_message"] == f"Group {group} deleted"
    assert newest["id"] == listed["version_id"]


def test_groups_are_listed_with_their_members(world: World):
    world.admin.create_group("listed", "A listed group")
    world.admin.add_member("listed", "writer")
    world.admin.add_member("listed", "reader")
    world.admin.add_member("listed", "reader")  # again: nothing changes
    groups = {g.id: g for g in world.admin.list_groups().groups}
    assert groups["listed"].name == "A listed group"
    assert list(groups["listed"].member_ids) == ["reader", "writer"]
    assert groups["listed"].created_at > 0
    assert list(groups["readers"].member_ids) == ["group_reader"]
    assert groups["readers"].name == "readers"  # no name: the id
    ids = [g.id for g in world.admin.list_groups().groups]
    assert ids == sorted(ids)


NON_ADMIN_GROUP_CALLS = {
    "CreateGroup": lambda c: c.create_group("by-a-user"),
    "ListGroups": lambda c: c.list_groups(),
    "DeleteGroup": lambda c: c.delete_group("readers"),
    "AddGroupMember": lambda c: c.add_member("readers", "stranger"),
    "RemoveGroupMember": lambda c: c.remove_member("readers", "group_reader"),
}


@pytest.mark.parametrize("method", NON_ADMIN_GROUP_CALLS)
@pytest.mark.parametrize("caller", ["owner", "group_writer", "stranger", "no_key"])
def test_only_admins_manage_groups(world: World, caller: str, method: str):
    error = rpc_error(NON_ADMIN_GROUP_CALLS[method], world.callers[caller])
    if caller == "no_key":
        assert_rpc_error(error, grpc.StatusCode.UNAUTHENTICATED, "Unauthorized")
    else:
        assert_rpc_error(error, grpc.StatusCode.PERMISSION_DENIED, "Unauthorized")
    groups = {g.id: list(g.member_ids) for g in world.admin.list_groups().groups}
    assert "by-a-user" not in groups
    assert groups["readers"] == ["group_reader"]


def test_a_group_id_is_taken_once(world: World):
    world.admin.create_group("twice")
    error = rpc_error(world.admin.create_group, "twice", "Another name")
    assert_rpc_error(error, grpc.StatusCode.ALREADY_EXISTS, "Group ID is already taken")
    assert [g.name for g in world.admin.list_groups().groups if g.id == "twice"] == ["twice"]


def test_group_errors(world: World):
    admin = world.admin
    admin.create_group("errors")
    cases = [
        (lambda: admin.add_member("errors", "no-such-user"), "User not found"),
        (lambda: admin.add_member("no-such-group", "reader"), "Group not found"),
        (lambda: admin.remove_member("errors", "reader"), "User is not a member of the group"),
        (lambda: admin.remove_member("no-such-group", "reader"), "Group not found"),
        (lambda: admin.delete_group("no-such-group"), "Group not found"),
    ]
    for call, message in cases:
        assert_rpc_error(rpc_error(call), grpc.StatusCode.NOT_FOUND, message)
    assert [list(g.member_ids) for g in admin.list_groups().groups if g.id == "errors"] == [[]]


@pytest.mark.parametrize(
    ("group_id", "message"),
    [
        ("", "id must be 1 to 256 characters"),
        ("x" * 257, "id must be 1 to 256 characters"),
        ("two words", "id must not contain whitespace or control characters"),
        ("tab\there", "id must not contain whitespace or control characters"),
    ],
)
def test_a_bad_group_id_is_invalid(world: World, group_id: str, message: str):
    error = rpc_error(world.admin.create_group, group_id)
    assert_rpc_error(error, grpc.StatusCode.INVALID_ARGUMENT, message, field="id")
