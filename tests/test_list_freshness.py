"""ListModels keeps the models and messages it has sent, by version: a page
never shows a model as it was before a write, whichever server made the
write, and each caller gets their own view of the same version. On SQLite
and PostgreSQL, two servers on one database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from modelregistry.v1 import model_service_pb2 as pb

from registry_support import Caller, add_users, plain, replicas
from support import ADMIN_KEY, Registry

READER = "fresh-reader"
WRITER = "fresh-writer"


@pytest.fixture(scope="module")
def servers(database_url_factory: Callable[[], str]) -> Iterator[tuple[Registry, Registry]]:
    """Two servers on one database, as replicas run."""
    with replicas(database_url_factory()) as both:
        yield both


@pytest.fixture(scope="module")
def callers(servers: tuple[Registry, Registry]) -> Iterator[dict[str, Caller]]:
    """The admin and two users on each server: `admin`, `reader`, `writer`
    on the first; `admin2` on the second."""
    first, second = servers
    keys = add_users(first, {READER: {}, WRITER: {}})
    with (
        grpc.insecure_channel(first.grpc_target) as one,
        grpc.insecure_channel(second.grpc_target) as two,
    ):
        yield {
            "admin": Caller(first, one, ADMIN_KEY),
            "reader": Caller(first, one, keys[READER]),
            "writer": Caller(first, one, keys[WRITER]),
            "admin2": Caller(second, two, ADMIN_KEY),
        }


def listed(caller: Caller, model_id: str) -> dict[str, Any]:
    """The model as the caller's list shows it (searched by its id)."""
    page = caller.list(query=model_id)
    found = [item for item in page.items if item.id == model_id]
    assert len(found) == 1, [item.id for item in page.items]
    return plain(json_format.MessageToDict(found[0], preserving_proto_field_name=True))


def fetched(caller: Caller, model_id: str) -> dict[str, Any]:
    return plain(json_format.MessageToDict(caller.get(model_id), preserving_proto_field_name=True))


def test_every_write_shows_in_the_next_page(callers: dict[str, Caller]) -> None:
    admin = callers["admin"]
    model_id = "fresh-every-write"
    admin.create({"id": model_id, "name": "First", "params": {"temperature": 0.1}, "meta": {}})
    first = listed(admin, model_id)
    assert first["params"] == {"temperature": 0.1}

    admin.update({"id": model_id, "name": "Second", "params": {"temperature": 0.9}, "meta": {}})
    updated = listed(admin, model_id)
    assert (updated["name"], updated["params"]) == ("Second", {"temperature": 0.9})
    assert updated["version_id"] != first["version_id"]
    assert updated == fetched(admin, model_id)

    admin.toggle(model_id)
    assert listed(admin, model_id)["is_active"] is False
    assert listed(admin, model_id) == fetched(admin, model_id)

    grants = [{"access_type": "user", "access_id": READER, "permission": "read"}]
    admin.update_access(model_id, grants)
    assert listed(admin, model_id)["access_grants"] == grants

    admin.restore(model_id, first["version_id"])
    restored = listed(admin, model_id)
    assert (restored["name"], restored["params"]) == ("First", {"temperature": 0.1})
    assert restored.get("access_grants", []) == []  # the first version had none
    assert restored == fetched(admin, model_id)


def test_one_version_is_seen_as_each_caller_may_see_it(callers: dict[str, Caller]) -> None:
    admin, reader, writer = callers["admin"], callers["reader"], callers["writer"]
    model_id = "fresh-views"
    grants = [
        {"access_type": "user", "access_id": READER, "permission": "read"},
        {"access_type": "user", "access_id": WRITER, "permission": "write"},
    ]
    admin.create({"id": model_id, "name": "Views", "params": {"system": "secret"}, "meta": {}})
    admin.update_access(model_id, grants)
    # The same version, listed in turn by each: none gets another's view.
    for _ in range(2):
        assert listed(admin, model_id)["params"] == {"system": "secret"}
        assert listed(admin, model_id)["write_access"] is True
        as_read = listed(reader, model_id)
        assert (as_read["params"], as_read["write_access"]) == ({}, False)
        as_written = listed(writer, model_id)
        assert (as_written["params"], as_written["write_access"]) == ({"system": "secret"}, True)


def test_a_write_on_another_server_shows_at_once(callers: dict[str, Caller]) -> None:
    here, there = callers["admin"], callers["admin2"]
    model_id = "fresh-replicas"
    here.create({"id": model_id, "name": "Before", "params": {"top_k": 1}, "meta": {}})
    assert listed(here, model_id)["name"] == "Before"
    assert listed(there, model_id)["name"] == "Before"

    there.update({"id": model_id, "name": "After", "params": {"top_k": 2}, "meta": {}})
    after = listed(here, model_id)
    assert (after["name"], after["params"]) == ("After", {"top_k": 2})

    there.delete(model_id)
    assert here.list(query=model_id).items == []
    here.create({"id": model_id, "name": "Again", "params": {}, "meta": {}})
    again = listed(there, model_id)
    assert (again["name"], again["params"]) == ("Again", {})


def test_a_page_of_many_versions_is_whole_after_writes(callers: dict[str, Caller]) -> None:
    """A page part kept and part read: every model as now stored, in order."""
    admin = callers["admin"]
    ids = [f"fresh-many-{i:02d}" for i in range(12)]
    for model_id in ids:
        admin.create({"id": model_id, "name": f"{model_id} v1", "params": {}, "meta": {}})
    admin.list(query="fresh many", page_size=100)  # every one kept at its first version
    for model_id in ids[::3]:
        admin.update({"id": model_id, "name": f"{model_id} v2", "params": {}, "meta": {}})
    page = admin.list(query="fresh many", page_size=100, order_by="name", direction="asc")
    expected = sorted(f"{i} v2" if n % 3 == 0 else f"{i} v1" for n, i in enumerate(ids))
    assert [item.name for item in page.items] == expected
    assert page.total == len(ids)
    assert [item.version_id for item in page.items] == [
        admin.get(item.id).version_id for item in page.items
    ]


def test_the_list_message_equals_the_get_message(callers: dict[str, Caller]) -> None:
    admin = callers["admin"]
    model_id = "fresh-same"
    admin.create({"id": model_id, "name": "Same", "params": {"n": [1, 2]}, "meta": {"tags": ["x"]}})
    for _ in range(2):  # built, then kept
        page = admin.list(query=model_id)
        item = next(item for item in page.items if item.id == model_id)
        got: pb.Model = admin.get(model_id)
        assert item == got
