"""Versions: every create, update, toggle, access change and restore records
one; the history, one version, restore and delete, on gRPC and through Envoy
on both path prefixes, on SQLite and PostgreSQL, with the rows they store."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from registry_support import (
    FACES,
    GRPC,
    Registered,
    Reply,
    api_json,
    callers_for,
    invalid,
    ok,
    refused,
)
from support import query, start_registry

USERS = {"author": {"can_create": True}, "editor": {}, "viewer": {}, "stranger": {}}
_ids = itertools.count()


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Registered]:
    registry = start_registry(database_url_factory(), http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            yield Registered(registry, callers_for(registry, channel, USERS))
    finally:
        assert registry.stop() == 0


def new_model(web: Registered, **fields: Any) -> dict[str, Any]:
    """A model made by "author", shared: editor may write, viewer may read."""
    model_id = f"versioned-{next(_ids)}"
    model = {
        "id": model_id,
        "name": "First",
        "params": {"temperature": 0.5},
        "meta": {"description": "one"},
        "access_grants": [
            {"access_type": "user", "access_id": "editor", "permission": "write"},
            {"access_type": "user", "access_id": "viewer", "permission": "read"},
        ],
        "commit_message": "created",
        **fields,
    }
    return api_json(web.callers["author"].create(model))


def snapshot_of(model: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "base_model_id", "params", "meta", "is_active", "access_grants")
    return {key: model[key] for key in keys}


def not_found_version(face: str) -> Reply:
    if face == GRPC:
        return Reply("NOT_FOUND", {"detail": "Model version not found"}, "MODEL_VERSION_NOT_FOUND")
    return Reply(404, {"detail": "Model version not found"})


def stored_versions(web: Registered, model_id: str) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in query(
            web.registry.database_url,
            "SELECT number, id, parent_id, user_id, commit_message FROM model_versions"
            " WHERE model_id = :id ORDER BY number",
            id=model_id,
        )
    ]


@pytest.mark.parametrize("face", FACES)
def test_every_write_records_a_version_with_its_snapshot(web: Registered, face: str):
    author, editor = web.callers["author"], web.callers["editor"]
    states = [new_model(web)]
    model_id = states[0]["id"]
    update = {"id": model_id, "name": "Second", "params": {"top_p": 0.9}, "meta": {}}
    states.append(api_json(editor.update({**update, "commit_message": "tuned"})))
    states.append(api_json(author.toggle(model_id)))
    grants = [{"access_type": "group", "access_id": "ops", "permission": "read"}]
    states.append(api_json(author.update_access(model_id, grants)))

    history = web.admin.on(face).history(model_id)
    assert history.status == ok(face, None).status
    entries = history.body
    assert [e["number"] for e in entries] == [4, 3, 2, 1]
    assert [e["id"] for e in entries] == [s["version_id"] for s in reversed(states)]
    assert [e["parent_id"] for e in entries] == [e["id"] for e in entries[1:]] + [None]
    assert [e["user_id"] for e in entries] == ["author", "author", "editor", "author"]
    assert [e["commit_message"] for e in entries] == [None, None, "tuned", "created"]
    assert [e["user"] for e in entries] == [{"name": e["user_id"]} for e in entries]
    assert all("snapshot" not in e for e in entries)
    assert [e["created_at"] for e in entries] == [s["updated_at"] for s in reversed(states)]

    for state in states:
        version = web.admin.on(face).version(model_id, state["version_id"])
        entry = next(e for e in entries if e["id"] == state["version_id"])
        assert version == ok(face, {**entry, "snapshot": snapshot_of(state)})

    assert web.admin.on(face).get(model_id).body["version_id"] == states[-1]["version_id"]
    assert [row[0] for row in stored_versions(web, model_id)] == [1, 2, 3, 4]


@pytest.mark.parametrize("face", FACES)
def test_restore_makes_a_new_version_and_can_go_back(web: Registered, face: str):
    first = new_model(web)
    model_id = first["id"]
    second = api_json(
        web.callers["author"].update(
            {"id": model_id, "name": "Second", "params": {}, "meta": {"x": 1}, "is_active": False}
        )
    )

    restored = web.callers["editor"].on(face).restore(model_id, first["version_id"])
    assert restored.status == ok(face, None).status
    body = restored.body
    assert snapshot_of(body) == snapshot_of(first)
    assert (body["id"], body["user_id"], body["created_at"]) == (
        model_id,
        "author",
        first["created_at"],
    )
    assert body["version_id"] not in (first["version_id"], second["version_id"])
    assert web.admin.on(face).get(model_id).body == {**body, "write_access": True}

    back = web.callers["author"].on(face).restore(model_id, second["version_id"])
    assert snapshot_of(back.body) == snapshot_of(second)

    entries = web.admin.on(face).history(model_id).body
    assert [(e["number"], e["parent_id"], e["commit_message"]) for e in entries] == [
        (4, body["version_id"], "Restored version 2"),
        (3, second["version_id"], "Restored version 1"),
        (2, first["version_id"], None),
        (1, None, "created"),
    ]
    assert [e["user_id"] for e in entries[:2]] == ["author", "editor"]


def test_restore_takes_a_commit_message_over_grpc(web: Registered):
    first = new_model(web)
    web.callers["author"].toggle(first["id"])
    model = web.callers["author"].restore(
        first["id"], first["version_id"], commit_message="back to active"
    )
    assert model.is_active is True
    newest = web.admin.history(first["id"]).versions[0]
    assert (newest.number, newest.commit_message) == (3, "back to active")


@pytest.mark.parametrize("face", FACES)
def test_deleting_a_version_relinks_its_child(web: Registered, face: str):
    first = new_model(web)
    model_id = first["id"]
    second = api_json(web.callers["author"].toggle(model_id))
    third = api_json(web.callers["author"].toggle(model_id))

    assert web.callers["editor"].on(face).delete_version(model_id, second["version_id"]) == ok(
        face, True
    )
    entries = web.admin.on(face).history(model_id).body
    assert [(e["id"], e["parent_id"]) for e in entries] == [
        (third["version_id"], first["version_id"]),
        (first["version_id"], None),
    ]
    assert web.admin.on(face).version(model_id, second["version_id"]) == not_found_version(face)
    assert web.admin.on(face).delete_version(model_id, second["version_id"]) == (
        not_found_version(face)
    )


@pytest.mark.parametrize("face", FACES)
def test_the_current_version_cannot_be_deleted(web: Registered, face: str):
    model = new_model(web)
    reply = web.admin.on(face).delete_version(model["id"], model["version_id"])
    if face == GRPC:
        expected = Reply(
            "FAILED_PRECONDITION",
            {"detail": "Cannot delete the current version"},
            "CURRENT_VERSION",
        )
    else:
        expected = Reply(400, {"detail": "Cannot delete the current version"})
    assert reply == expected
    assert len(stored_versions(web, model["id"])) == 1


@pytest.mark.parametrize("face", FACES)
def test_history_needs_write_access_and_hides_models_one_may_not_see(web: Registered, face: str):
    model = new_model(web)
    model_id, version_id = model["id"], model["version_id"]
    for caller, why in (("viewer", "denied"), ("stranger", "not_found"), ("no_key", None)):
        on = web.callers[caller].on(face)
        expected = refused(face, why or "unauthenticated")
        assert on.history(model_id) == expected, caller
        assert on.version(model_id, version_id) == expected, caller
        assert on.restore(model_id, version_id) == expected, caller
        assert on.delete_version(model_id, version_id) == expected, caller
    # A version id of another model, or none at all, is no version of this one.
    other = new_model(web)
    assert web.admin.on(face).version(model_id, other["version_id"]) == not_found_version(face)
    assert web.admin.on(face).restore(model_id, "no-such-version") == not_found_version(face)
    assert web.admin.on(face).history("no-such-model") == refused(face, "not_found")
    assert len(stored_versions(web, model_id)) == 1


@pytest.mark.parametrize("face", FACES)
def test_history_pages_newest_first(web: Registered, face: str):
    model = new_model(web)
    model_id = model["id"]
    for _ in range(44):
        web.callers["author"].toggle(model_id)
    on = web.admin.on(face)
    pages = [on.history(model_id, page=page).body for page in (1, 2, 3, 4)]
    assert [[e["number"] for e in page] for page in pages] == [
        list(range(45, 25, -1)),
        list(range(25, 5, -1)),
        list(range(5, 0, -1)),
        [],
    ]
    assert on.history(model_id).body == pages[0]  # page 1 by default


def test_history_pages_by_token_over_grpc(web: Registered):
    model = new_model(web)
    model_id = model["id"]
    for _ in range(9):
        web.callers["author"].toggle(model_id)
    numbers, token = [], ""
    while True:
        page = web.admin.history(model_id, page_size=4, page_token=token)
        numbers += [v.number for v in page.versions]
        token = page.next_page_token
        if not token:
            break
    assert numbers == list(range(10, 0, -1))

    first_page = web.admin.history(model_id, page_size=4)
    other = new_model(web)
    with pytest.raises(grpc.RpcError) as error:
        web.admin.history(other["id"], page_token=first_page.next_page_token)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "page_token is not a token of this model's history"


@pytest.mark.parametrize("face", FACES)
def test_bad_history_pages_are_refused(web: Registered, face: str):
    model = new_model(web)
    reply = web.admin.on(face).history(model["id"], page=100_001)
    assert reply == invalid(face, "page must be between 1 and 100000")


def test_a_deleted_model_takes_its_versions_and_a_new_one_starts_afresh(web: Registered):
    model = new_model(web)
    web.callers["author"].toggle(model["id"])
    web.callers["author"].delete(model["id"])
    assert stored_versions(web, model["id"]) == []
    again = api_json(
        web.callers["author"].create({"id": model["id"], "name": "Again", "params": {}, "meta": {}})
    )
    assert [(v.number, v.parent_id) for v in web.admin.history(model["id"]).versions] == [(1, "")]
    assert stored_versions(web, model["id"]) == [(1, again["version_id"], None, "author", None)]


def test_concurrent_updates_make_one_chain_without_gaps(web: Registered):
    model = new_model(web)
    model_id = model["id"]
    editor = web.callers["editor"]

    def update(n: int) -> dict[str, Any]:
        change = {"id": model_id, "name": f"Update {n}", "params": {"n": n}, "meta": {}}
        return api_json(editor.update({**change, "commit_message": f"update {n}"}))

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(update, range(32)))

    rows = stored_versions(web, model_id)
    assert [row[0] for row in rows] == list(range(1, 34))
    assert [row[2] for row in rows] == [None] + [row[1] for row in rows[:-1]]
    by_version = {result["version_id"]: result for result in results}
    assert {row[1] for row in rows[1:]} == set(by_version)
    newest = rows[-1]
    current = api_json(web.admin.get(model_id))
    assert current["version_id"] == newest[1]
    assert snapshot_of(current) == snapshot_of(by_version[newest[1]])
    assert newest[4] == f"update {current['params']['n']}"


def test_every_model_row_names_a_version_of_its_own(web: Registered):
    new_model(web)
    orphans = query(
        web.registry.database_url,
        "SELECT m.id FROM models m LEFT JOIN model_versions v"
        " ON v.id = m.version_id AND v.model_id = m.id WHERE v.id IS NULL",
    )
    assert orphans == []


def test_concurrent_changes_succeed_or_fail_alone(web: Registered):
    """Changes that arrive together (on SQLite, committed together) each get
    their own answer: refusals do not undo their neighbours."""
    model = new_model(web)
    model_id = model["id"]
    author, viewer = web.callers["author"], web.callers["viewer"]

    def change(n: int) -> str:
        try:
            if n % 4 == 0:
                author.toggle(model_id)
            elif n % 4 == 1:
                viewer.toggle(model_id)  # may read, may not change
            elif n % 4 == 2:
                author.toggle(f"{model_id}-missing")
            else:
                author.update({"id": model_id, "name": "", "params": {}, "meta": {}})  # invalid
            return "OK"
        except grpc.RpcError as error:
            return error.code().name

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(change, range(64)))
    assert [answers[n] for n in range(0, 64, 4)] == ["OK"] * 16
    assert {answers[n] for n in range(1, 64, 4)} == {"PERMISSION_DENIED"}
    assert {answers[n] for n in range(2, 64, 4)} == {"NOT_FOUND"}
    assert {answers[n] for n in range(3, 64, 4)} == {"INVALID_ARGUMENT"}
    rows = stored_versions(web, model_id)
    assert [row[0] for row in rows] == list(range(1, 18))  # the create and 16 toggles
    assert api_json(web.admin.get(model_id))["is_active"] is True  # toggled an even number
