"""UpdateModel, ToggleModel, UpdateModelAccess and DeleteModel: what each
changes, what it keeps, and what is stored afterwards (models, model_grants,
model_words, model_counts through the totals), on gRPC and through Envoy,
on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2

from registry_support import (
    FACES,
    FAVICON,
    GRPC,
    PREFIXES,
    Registered,
    api_json,
    assert_rpc_error,
    callers_for,
    invalid,
    ok,
    refused,
    rpc_error,
    seen_by_reader,
    seen_by_writer,
)
from support import query, start_registry, stored_grants

USERS = {"author": {"can_create": True}, "editor": {}, "viewer": {}}
_ids = itertools.count()


@dataclass
class Web(Registered):
    @property
    def url(self) -> str:
        return self.registry.database_url

    def new_model(self, owner: str = "admin", **fields: Any) -> dict[str, Any]:
        model_id = fields.pop("id", None) or f"change-{next(_ids)}"
        model = {"id": model_id, "name": f"Model {model_id}", "params": {}, "meta": {}, **fields}
        self.callers[owner].create(model)
        return self.full(model_id)

    def full(self, model_id: str) -> dict[str, Any]:
        return api_json(self.admin.get(model_id))


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Web]:
    registry = start_registry(database_url_factory(), http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            web = Web(registry, callers_for(registry, channel, USERS))
            web.admin.create_group("team")
            web.admin.add_member("team", "editor")
            yield web
    finally:
        assert registry.stop() == 0


def stored_row(web: Web, model_id: str) -> dict[str, Any] | None:
    rows = query(
        web.url,
        "SELECT id, user_id, base_model_id, name, params, meta, is_active, created_at,"
        " updated_at, commit_message FROM models WHERE id = :id",
        id=model_id,
    )
    if not rows:
        return None
    row = rows[0]._asdict()
    for column in ("params", "meta"):
        if isinstance(row[column], str):  # SQLite hands JSON back as text
            row[column] = json.loads(row[column])
    row["is_active"] = bool(row["is_active"])
    return row


def stored_words(web: Web, model_id: str) -> set[str]:
    rows = query(web.url, "SELECT word FROM model_words WHERE model_id = :id", id=model_id)
    return {row.word for row in rows}


# -- UpdateModel --------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_update_replaces_the_fields_and_keeps_what_it_must(web: Web, face: str):
    grants = [{"access_type": "user", "access_id": "viewer", "permission": "read"}]
    before = web.new_model(
        name="Old name",
        base_model_id="gpt-3.5",
        params={"temperature": 0.2, "stop": ["x"]},
        meta={"description": "old", "tags": ["a"]},
        access_grants=grants,
        is_active=False,
    )
    change = {
        "id": before["id"],
        "name": "New name",
        "base_model_id": "gpt-4",
        "params": {"max_tokens": 100},
        "meta": {"description": "new", "profile_image_url": "https://example.com/a.png"},
        "commit_message": "rename it",
        # server-set fields: ignored
        "user_id": "mallory",
        "created_at": 5,
        "updated_at": 6,
    }
    reply = web.admin.on(face).update(change)
    after = {
        **before,
        "name": "New name",
        "base_model_id": "gpt-4",
        "params": {"max_tokens": 100},
        "meta": {"description": "new", "profile_image_url": "https://example.com/a.png"},
        "updated_at": reply.updated_at,
        "version_id": reply.version_id,
    }
    assert reply == ok(face, after)  # is_active absent: still false; grants as they were
    assert after["updated_at"] >= before["updated_at"]
    row = stored_row(web, before["id"])
    assert row == {
        "id": before["id"],
        "user_id": "admin",
        "base_model_id": "gpt-4",
        "name": "New name",
        "params": {"max_tokens": 100},
        "meta": after["meta"],
        "is_active": False,
        "created_at": before["created_at"],
        "updated_at": after["updated_at"],
        "commit_message": "rename it",
    }
    assert stored_grants(web.url, before["id"]) == grants
    assert stored_words(web, before["id"]) == {
        "change",
        before["id"].split("-")[1],
        "new",
        "name",
        "gpt",
        "4",
    }

    # is_active, when sent, is replaced too; base_model_id left out is unset.
    change = {"id": before["id"], "name": "New name", "params": {}, "meta": {}, "is_active": True}
    reply = web.admin.on(face).update(change)
    assert reply.body["is_active"] is True and reply.body["base_model_id"] is None
    assert reply.body["meta"] == {"profile_image_url": FAVICON}
    assert stored_row(web, before["id"])["commit_message"] is None


@pytest.mark.parametrize("prefix", PREFIXES)
def test_an_editor_payload_with_nulls_updates(web: Web, prefix: str):
    """Open WebUI's editor sends null for what is not set, and the grants."""
    before = web.new_model(base_model_id="gpt-4", params={"temperature": 0.3})
    body = {
        "id": before["id"],
        "base_model_id": None,
        "name": "Edited",
        "meta": {"profile_image_url": None, "description": None, "tags": []},
        "params": {"temperature": None},
        "access_grants": [
            {"principal_type": "user", "principal_id": "viewer", "permission": "write"}
        ],
        "is_active": None,
        "commit_message": None,
    }
    response = web.admin.http("POST", f"{prefix}/models/model/update", body)
    assert response.status == 200, response.body
    assert response.json() == {
        **before,
        "name": "Edited",
        "base_model_id": None,
        "meta": {"profile_image_url": FAVICON, "description": None, "tags": []},
        "params": {"temperature": None},
        "updated_at": response.json()["updated_at"],
        "version_id": response.json()["version_id"],
    }
    assert stored_grants(web.url, before["id"]) == []  # grants are not UpdateModel's


GRANTS_WITH_EVERYONE = [
    {"access_type": "user", "access_id": "*", "permission": "read"},
    {"access_type": "user", "access_id": "editor", "permission": "write"},
    {"access_type": "group", "access_id": "team", "permission": "write"},
    {"access_type": "user", "access_id": "viewer", "permission": "read"},
]


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("who", ["admin", "author", "editor"])
def test_the_grants_are_exactly_as_they_were_after_an_update(web: Web, who: str, face: str):
    """Whoever updates, and whatever grants the body carries (Open WebUI
    sends the model whole), the model keeps its grants, `*` among them."""
    before = web.new_model("author", access_grants=GRANTS_WITH_EVERYONE)
    change = {
        "id": before["id"],
        "name": f"Updated by {who}",
        "params": {"top_p": 0.9},
        "meta": {},
        "access_grants": [{"access_type": "user", "access_id": who, "permission": "write"}],
    }
    reply = web.callers[who].on(face).update(change)
    assert reply.status in ("OK", 200), reply
    assert reply.body["access_grants"] == GRANTS_WITH_EVERYONE
    assert stored_grants(web.url, before["id"]) == GRANTS_WITH_EVERYONE
    assert web.full(before["id"])["access_grants"] == GRANTS_WITH_EVERYONE
    # ... and they still work: the viewer reads it, without params
    reader = web.callers["viewer"].on(face).get(before["id"])
    assert reader == ok(face, seen_by_reader(web.full(before["id"])))


UPDATE_ERRORS = [
    (
        {"params": {"max_tokens": 0}},
        "params.max_tokens",
        "params.max_tokens must be a positive integer",
    ),
    (
        {"params": {"temperature": "hot"}},
        "params.temperature",
        "params.temperature must be a number",
    ),
    ({"name": " "}, "name", "name is required and must not be empty"),
    (
        {"base_model_id": "gpt 4"},
        "base_model_id",
        "base_model_id must not contain whitespace or control characters",
    ),
    (
        {"meta": {"profile_image_url": "javascript:alert(1)"}},
        "meta.profile_image_url",
        "meta.profile_image_url must be an http(s) URL, a path starting with '/'"
        " or a data:image/ URI",
    ),
    ({"meta": {"capabilities": []}}, "meta.capabilities", "meta.capabilities must be an object"),
    (
        {"commit_message": "x" * 4097},
        "commit_message",
        "commit_message is too long (max 4096 characters)",
    ),
]


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(("fields", "field", "message"), UPDATE_ERRORS)
def test_update_follows_the_rules_of_create(web: Web, fields, field: str, message: str, face: str):
    before = web.new_model("author", params={"max_tokens": 5})
    change = {"id": before["id"], "name": "Valid", "params": {}, "meta": {}, **fields}
    reply = web.callers["author"].on(face).update(change)
    assert reply == invalid(face, message)
    if face == GRPC:
        error = rpc_error(web.callers["author"].update, change)
        assert_rpc_error(error, grpc.StatusCode.INVALID_ARGUMENT, message, field=field)
    assert web.full(before["id"]) == before
    # create says the same about the same fields
    error = rpc_error(web.callers["author"].create, {**change, "id": f"{before['id']}-new"})
    assert_rpc_error(error, grpc.StatusCode.INVALID_ARGUMENT, message, field=field)


def test_update_without_params_or_meta_is_invalid(web: Web):
    before = web.new_model()
    error = rpc_error(web.admin.update, {"id": before["id"], "name": "x", "meta": {}})
    assert_rpc_error(
        error,
        grpc.StatusCode.INVALID_ARGUMENT,
        "params is required (send {} for none)",
        field="params",
    )
    response = web.admin.http(
        "POST", "/api/models/model/update", {"id": before["id"], "name": "x", "params": {}}
    )
    assert (response.status, response.json()) == (
        400,
        {"detail": "meta is required (send {} for none)"},
    )
    assert web.full(before["id"]) == before


MASKED = {
    "name": "Masked name",
    "base_model_id": "masked-base",
    "params": {"temperature": 1.5},
    "meta": {"description": "masked"},
    "is_active": False,
}


@pytest.mark.parametrize(
    "mask", [["name"], ["base_model_id"], ["params", "meta"], ["is_active"], ["name", "is_active"]]
)
def test_update_mask_changes_only_the_named_fields(web: Web, mask: list[str]):
    before = web.new_model(
        name="Unmasked", base_model_id="base", params={"top_p": 0.5}, meta={"description": "d"}
    )
    reply = api_json(web.admin.update({"id": before["id"], **MASKED}, mask=mask))
    expected = dict(before)
    for field in mask:
        expected[field] = MASKED[field]
    if "meta" in mask:
        expected["meta"] = {**MASKED["meta"], "profile_image_url": FAVICON}
    written = {"updated_at": reply["updated_at"], "version_id": reply["version_id"]}
    assert reply["version_id"] != before["version_id"]
    assert reply == {**expected, **written}
    assert web.full(before["id"]) == {**expected, **written}


def test_update_mask_fields_left_out_of_the_model_are_cleared_or_required(web: Web):
    before = web.new_model(base_model_id="base", params={"top_p": 0.5})
    reply = api_json(web.admin.update({"id": before["id"]}, mask=["base_model_id"]))
    assert reply["base_model_id"] is None and reply["name"] == before["name"]
    assert reply["params"] == {"top_p": 0.5}
    error = rpc_error(web.admin.update, {"id": before["id"]}, mask=["params"])
    assert_rpc_error(
        error,
        grpc.StatusCode.INVALID_ARGUMENT,
        "params is required (send {} for none)",
        field="params",
    )


@pytest.mark.parametrize(
    ("mask", "unknown"),
    [
        (["user_id"], "user_id"),
        (["name", "access_grants"], "access_grants"),
        (["id", "created_at"], "created_at, id"),
    ],
)
def test_an_unknown_update_mask_path_is_invalid(web: Web, mask: list[str], unknown: str):
    before = web.new_model()
    error = rpc_error(web.admin.update, {"id": before["id"], **MASKED}, mask=mask)
    message = (
        f"update_mask may name only name, base_model_id, params, meta, is_active (not {unknown})"
    )
    assert_rpc_error(error, grpc.StatusCode.INVALID_ARGUMENT, message, field="update_mask")
    assert web.full(before["id"]) == before


# -- ToggleModel --------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_toggle_flips_is_active_both_ways(web: Web, face: str):
    before = web.new_model("author")
    first = web.callers["editor"].on(face).toggle(before["id"])
    assert first == refused(face, "not_found")  # no grant yet
    web.admin.update_access(
        before["id"], [{"access_type": "group", "access_id": "team", "permission": "write"}]
    )
    before = web.full(before["id"])
    editor = web.callers["editor"].on(face)
    off = editor.toggle(before["id"])
    assert off == ok(
        face,
        {**before, "is_active": False, "updated_at": off.updated_at, "version_id": off.version_id},
    )
    assert stored_row(web, before["id"])["is_active"] is False
    on = editor.toggle(before["id"])
    assert on == ok(
        face,
        {**before, "is_active": True, "updated_at": on.updated_at, "version_id": on.version_id},
    )
    assert before["updated_at"] <= off.body["updated_at"] <= on.body["updated_at"]
    assert stored_row(web, before["id"])["is_active"] is True


# -- UpdateModelAccess --------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_access_update_replaces_the_grants_in_either_spelling(web: Web, face: str):
    before = web.new_model(
        "author",
        access_grants=[{"access_type": "user", "access_id": "editor", "permission": "write"}],
    )
    viewer = web.callers["viewer"].on(face)
    assert viewer.get(before["id"]) == refused(face, "not_found")
    sent = [
        {"principal_type": "user", "principal_id": "viewer", "permission": "read"},
        {"access_type": "group", "access_id": "team", "permission": "write"},
        {"access_type": "user", "access_id": "viewer", "permission": "read"},  # the first again
        {"access_type": "user", "access_id": "*", "principal_type": "user", "permission": "read"},
    ]
    grants = [
        {"access_type": "user", "access_id": "viewer", "permission": "read"},
        {"access_type": "group", "access_id": "team", "permission": "write"},
        {"access_type": "user", "access_id": "*", "permission": "read"},
    ]
    reply = web.callers["editor"].on(face).update_access(before["id"], sent, name="ignored")
    assert reply == ok(
        face,
        {
            **before,
            "access_grants": grants,
            "updated_at": reply.updated_at,
            "version_id": reply.version_id,
        },
    )
    assert stored_grants(web.url, before["id"]) == grants
    assert viewer.get(before["id"]) == ok(face, seen_by_reader(web.full(before["id"])))

    # [] removes them all
    reply = web.callers["author"].on(face).update_access(before["id"], [])
    assert reply.body["access_grants"] == []
    assert stored_grants(web.url, before["id"]) == []
    assert viewer.get(before["id"]) == refused(face, "not_found")
    assert web.callers["editor"].on(face).get(before["id"]) == refused(face, "not_found")


ACCESS_ERRORS = [
    (
        [
            {"access_type": "user", "access_id": "viewer", "permission": "read"},
            {"access_type": "user", "access_id": "viewer", "permission": "admin"},
        ],
        "access_grants[1].permission must be 'read' or 'write'",
    ),
    (
        [{"access_type": "team", "access_id": "viewer", "permission": "read"}],
        "access_grants[0].access_type must be 'user' or 'group'",
    ),
    (
        [{"access_type": "user", "access_id": "", "permission": "read"}],
        "access_grants[0].access_id must be a non-empty id without control characters",
    ),
    (
        [
            {
                "access_type": "user",
                "principal_type": "group",
                "access_id": "x",
                "permission": "read",
            }
        ],
        "access_grants[0] gives access_type and principal_type with different values:"
        " send one of the two spellings",
    ),
]


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(("grants", "message"), ACCESS_ERRORS)
def test_a_bad_grant_is_invalid_and_changes_nothing(web: Web, grants, message: str, face: str):
    before = web.new_model(
        access_grants=[{"access_type": "user", "access_id": "viewer", "permission": "read"}]
    )
    assert web.admin.on(face).update_access(before["id"], grants) == invalid(face, message)
    assert stored_grants(web.url, before["id"]) == before["access_grants"]
    assert web.full(before["id"]) == before


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_grant_of_the_wrong_json_type_is_400(web: Web, prefix: str):
    before = web.new_model()
    body = {
        "id": before["id"],
        "access_grants": [{"access_type": "user", "access_id": "v", "permission": 1}],
    }
    response = web.admin.http("POST", f"{prefix}/models/model/access/update", body)
    assert (response.status, response.json()) == (
        400,
        {"detail": "access_grants[0].permission must be a string"},
    )
    assert web.full(before["id"]) == before


# -- DeleteModel --------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_delete_removes_the_model_its_grants_and_its_words(web: Web, face: str):
    grants = [
        {"access_type": "user", "access_id": "viewer", "permission": "read"},
        {"access_type": "group", "access_id": "team", "permission": "write"},
    ]
    before = web.new_model(name="Doomed helper", base_model_id="llama-3", access_grants=grants)
    model_id = before["id"]
    assert stored_grants(web.url, model_id) == grants
    assert stored_words(web, model_id) >= {"doomed", "helper", "llama", "3"}

    reply = web.callers["editor"].on(face).delete(model_id)
    assert reply == ok(face, True)
    assert stored_row(web, model_id) is None
    assert stored_grants(web.url, model_id) == []
    assert stored_words(web, model_id) == set()
    assert web.admin.on(face).get(model_id) == refused(face, "not_found")
    assert web.admin.on(face).delete(model_id) == refused(face, "not_found")
    assert web.admin.on(face).list(query="doomed").body["total"] == 0


def test_delete_over_grpc_answers_a_bool_value(web: Web):
    before = web.new_model()
    reply = web.admin.delete(before["id"])
    assert reply == wrappers_pb2.BoolValue(value=True)
    assert reply.SerializeToString() == wrappers_pb2.BoolValue(value=True).SerializeToString()


@pytest.mark.parametrize("prefix", PREFIXES)
def test_delete_over_http_answers_true(web: Web, prefix: str):
    before = web.new_model()
    response = web.admin.http("POST", f"{prefix}/models/model/delete", {"id": before["id"]})
    assert (response.status, response.headers["content-type"], response.body) == (
        200,
        "application/json",
        b"true",
    )


@pytest.mark.parametrize("face", FACES)
def test_a_model_made_again_with_a_deleted_id_inherits_no_grant(web: Web, face: str):
    model_id = f"reborn-{face.replace('/', '-')}"
    old = web.new_model(
        "author",
        id=model_id,
        access_grants=[
            {"access_type": "user", "access_id": "viewer", "permission": "write"},
            {"access_type": "group", "access_id": "team", "permission": "read"},
            {"access_type": "user", "access_id": "*", "permission": "read"},
        ],
    )
    for user in ("viewer", "editor"):
        assert web.callers[user].on(face).get(model_id).status in ("OK", 200)
    assert web.callers["author"].on(face).delete(model_id) == ok(face, True)

    new = web.new_model("author", id=model_id, name="Reborn")
    assert new["access_grants"] == [] and new["created_at"] >= old["created_at"]
    assert stored_grants(web.url, model_id) == []
    for user in ("viewer", "editor"):
        calls = web.callers[user].on(face)
        assert calls.get(model_id) == refused(face, "not_found")
        assert calls.toggle(model_id) == refused(face, "not_found")
        assert calls.list(query="reborn").body["total"] == 0
    assert web.callers["author"].on(face).get(model_id) == ok(face, seen_by_writer(new))


# -- ids that mean something in a URL ------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("model_id", ["a&b/c?d#e%f+gé", "x=y;z", "100%25", "日本語/モデル"])
def test_an_id_with_url_characters_works_on_every_path(web: Web, model_id: str, prefix: str):
    model_id = f"{model_id}{prefix}"
    before = web.new_model(id=model_id, name="Odd id")
    admin = web.admin.on(prefix)
    assert admin.get(model_id) == ok(prefix, before)
    toggled = admin.toggle(model_id)
    assert toggled == ok(
        prefix,
        {
            **before,
            "is_active": False,
            "updated_at": toggled.updated_at,
            "version_id": toggled.version_id,
        },
    )
    changed = admin.update({"id": model_id, "name": "Odder", "params": {}, "meta": {}})
    assert changed.body["id"] == model_id and changed.body["name"] == "Odder"
    grants = [{"access_type": "user", "access_id": "viewer", "permission": "read"}]
    assert admin.update_access(model_id, grants).body["access_grants"] == grants
    listed = admin.list(query="odder", owner_id="admin").body["items"]
    assert model_id in [m["id"] for m in listed]
    assert admin.delete(model_id) == ok(prefix, True)
    assert stored_row(web, model_id) is None


# -- concurrency --------------------------------------------------------------------


def numbered_update(model_id: str, round_: int, n: int) -> dict[str, Any]:
    return {
        "id": model_id,
        "name": f"Round{round_} A-{n}",
        "base_model_id": f"base-{n}",
        "params": {"n": n},
        "meta": {"n": n},
        "is_active": n % 2 == 0,
        "commit_message": f"update {n}",
    }


def update_at_once(web: Web, changes: list[dict[str, Any]]) -> None:
    """Every change at the same moment, from its own thread: odd ones over
    gRPC, even ones over HTTP (both prefixes), by the owner and an editor."""
    barrier = threading.Barrier(len(changes))

    def update(n: int) -> None:
        caller = web.callers["editor" if n % 4 else "author"]
        barrier.wait(timeout=60)
        face = GRPC if n % 2 else PREFIXES[n % 4 // 2]
        reply = caller.on(face).update(changes[n])
        assert reply.status in ("OK", 200), reply
        assert (reply.body["name"], reply.body["params"]) == (
            changes[n]["name"],
            changes[n]["params"],
        )

    with ThreadPoolExecutor(len(changes)) as pool:
        list(pool.map(update, range(len(changes))))


def test_concurrent_updates_leave_one_of_them_whole(web: Web):
    """2 x 16 updates of one model at once (gRPC and HTTP), each setting every
    field to values of its own number: the model ends as one of them, never
    a mix, with the words of that name and the grants it had."""
    grants = [{"access_type": "group", "access_id": "team", "permission": "write"}]
    before = web.new_model("author", access_grants=grants)
    model_id = before["id"]
    for round_ in range(3):
        update_at_once(web, [numbered_update(model_id, round_, n) for n in range(32)])

        row = stored_row(web, model_id)
        n = row["params"]["n"]
        assert row == {
            **row,
            "name": f"Round{round_} A-{n}",
            "base_model_id": f"base-{n}",
            "params": {"n": n},
            "meta": {"n": n, "profile_image_url": FAVICON},
            "is_active": n % 2 == 0,
            "commit_message": f"update {n}",
        }
        assert stored_words(web, model_id) == {
            "change",
            model_id.split("-")[1],
            f"round{round_}",
            "a",
            str(n),
            "base",
        }
        assert stored_grants(web.url, model_id) == grants
        assert web.full(model_id)["name"] == row["name"]


# -- totals -------------------------------------------------------------------------


def stored_counts(web: Web) -> dict[str, int]:
    rows = query(web.url, "SELECT is_active, COUNT(*) AS n FROM models GROUP BY is_active")
    counts = {bool(row.is_active): row.n for row in rows}
    return {
        "all": sum(counts.values()),
        "active": counts.get(True, 0),
        "inactive": counts.get(False, 0),
    }


def listed_totals(web: Web, face: str = GRPC) -> dict[str, int]:
    admin = web.admin.on(face)
    return {
        "all": admin.list().body["total"],
        "active": admin.list(is_active=True).body["total"],
        "inactive": admin.list(is_active=False).body["total"],
    }


@pytest.mark.parametrize("face", FACES)
def test_totals_follow_creates_toggles_and_deletes(web: Web, face: str):
    assert listed_totals(web, face) == stored_counts(web)
    made = [web.new_model(is_active=i % 3 != 0)["id"] for i in range(9)]
    assert listed_totals(web, face) == stored_counts(web)
    for model_id in made[:4]:
        web.admin.on(face).toggle(model_id)
    assert listed_totals(web, face) == stored_counts(web)
    for model_id in made[3:7]:
        web.admin.on(face).delete(model_id)
    assert listed_totals(web, face) == stored_counts(web)
    web.admin.on(face).update(
        {"id": made[0], "name": "x", "params": {}, "meta": {}, "is_active": False}
    )
    web.admin.on(face).update(
        {"id": made[1], "name": "x", "params": {}, "meta": {}, "is_active": True}
    )
    assert listed_totals(web, face) == stored_counts(web)


def test_totals_after_concurrent_creates_toggles_updates_and_deletes(web: Web):
    """Many writers at once, on the same and on different models, in both
    directions of is_active: every call succeeds, and the kept totals are
    the stored rows' counts."""
    made = [web.new_model(is_active=i % 2 == 0)["id"] for i in range(40)]
    rng = random.Random(11)
    work: list[tuple[str, str]] = []
    for model_id in made:
        work += [("toggle", model_id)] * rng.randint(1, 3)
        work.append(rng.choice([("delete", model_id), ("update", model_id), ("toggle", model_id)]))
    work += [("create", f"burst-{next(_ids)}") for _ in range(40)]
    active = {model_id: rng.random() < 0.5 for _, model_id in work}
    rng.shuffle(work)
    failures: list[Any] = []

    def run(item: tuple[str, str]) -> None:
        action, model_id = item
        admin = web.admin.on(GRPC)
        if action == "create":
            model = {"id": model_id, "name": "Burst", "params": {}, "meta": {}}
            admin.caller.create({**model, "is_active": active[model_id]})
            return
        if action == "update":
            reply = admin.update(
                {
                    "id": model_id,
                    "name": "u",
                    "params": {},
                    "meta": {},
                    "is_active": active[model_id],
                }
            )
        else:
            reply = getattr(admin, action)(model_id)
        if reply.status != "OK" and reply != refused(GRPC, "not_found"):
            failures.append((action, model_id, reply))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(run, work))
    assert failures == []
    assert listed_totals(web) == stored_counts(web)
    assert listed_totals(web, PREFIXES[1]) == stored_counts(web)


# -- a body sent where the route takes none -----------------------------------------

# Envoy's transcoder reads such a body as the whole request, so it is
# checked as one: a 400 in the user's terms, never protobuf's, never echoing it.
BODYLESS_ROUTES = {
    # route: a body with a field of the wrong JSON type, and its detail
    ("POST", "/models/model/toggle?id={id}"): ('{"id": 5}', "id must be a string"),
    ("GET", "/models/model?id={id}"): ('{"id": ["x"]}', "id must be a string"),
    ("GET", "/models/list"): ('{"page": "x"}', "page must be an integer"),
}
MALFORMED_BODIES = [
    ("secret-garbage", "Invalid JSON: unexpected character at line 1, column 1"),
    ('{"id": "x"', "Invalid JSON: the body ends too early at line 1, column 11"),
    ("[1]", "The request body must be a JSON object"),
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("route", BODYLESS_ROUTES)
def test_a_body_where_none_is_taken_is_checked_like_any_other(
    web: Web, prefix: str, route: tuple[str, str]
):
    before = web.new_model()
    method, path = route
    for body, detail in [*MALFORMED_BODIES, BODYLESS_ROUTES[route]]:
        response = web.admin.http(method, prefix + path.format(id=before["id"]), body)
        assert (response.status, response.json()) == (400, {"detail": detail}), body
    assert web.full(before["id"]) == before


@pytest.mark.parametrize("prefix", PREFIXES)
def test_an_empty_body_where_none_is_taken_is_fine(web: Web, prefix: str):
    before = web.new_model()
    for body in (None, "", "{}"):
        response = web.admin.http("POST", f"{prefix}/models/model/toggle?id={before['id']}", body)
        assert response.status == 200, response.body
    assert web.full(before["id"])["is_active"] is False
