"""Export and import on gRPC and through Envoy on both path prefixes, on
SQLite and PostgreSQL: round trips into an empty database, re-imports that
change nothing, bad records, dry runs, conflict modes, who may import what,
what an export holds and how it is paged, and Open WebUI's own export.
The command line's export and import: tests/test_transfer_cli.py."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from registry_support import (
    FACES,
    GRPC,
    PREFIXES,
    Registered,
    Reply,
    api_json,
    assert_rpc_error,
    callers_for,
    invalid,
    ok,
    refused,
    rpc_error,
)
from support import database_locked, query, start_registry

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OPEN_WEBUI_EXPORT = FIXTURES / "openwebui-0.12.4-models-export.json"
USERS = {
    "author": {"can_create": True},
    "editor": {"can_create": True},
    "viewer": {"can_create": True},
    "lurker": {},
    "big": {"can_create": True},
    "pager": {"can_create": True},
}
FAVICON = "/static/favicon.png"
_ids = itertools.count()


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Registered]:
    registry = start_registry(database_url_factory(), http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            yield Registered(registry, callers_for(registry, channel, USERS))
    finally:
        assert registry.stop() == 0


@pytest.fixture(scope="module")
def target(database_url_factory: Callable[[], str]) -> Iterator[Registered]:
    """A second registry, empty at first: where exports are imported."""
    registry = start_registry(database_url_factory(), http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            yield Registered(registry, callers_for(registry, channel, {}))
    finally:
        assert registry.stop() == 0


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def model(model_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": model_id, "name": model_id.title(), "params": {}, "meta": {}, **fields}


def version_rows(registered: Registered, ids: list[str]) -> list[tuple[str, int]]:
    rows = query(
        registered.registry.database_url,
        "SELECT model_id, number FROM model_versions ORDER BY model_id, number",
    )
    return [tuple(row) for row in rows if row[0] in ids]


def without_versions(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "version_id"} for m in models]


def report(created=0, updated=0, unchanged=0, skipped=0, failed=0, results=()) -> dict[str, Any]:
    return {
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "skipped": skipped,
        "failed": failed,
        "results": [
            {"index": index, "id": model_id, "outcome": outcome, "reason": reason}
            for index, model_id, outcome, reason in results
        ],
    }


def diverse_models(web: Registered) -> list[str]:
    """Models of every shape, made and changed by the admin; their ids."""
    admin = web.admin
    ids = [fresh("round-trip") for _ in range(4)]
    admin.create(
        model(
            ids[0],
            name="Code reviewer ✓",
            base_model_id="gpt-4o",
            params={"temperature": 0.25, "max_tokens": 2000, "stop": ["\n"], "extra": None},
            meta={"description": "Reviews", "capabilities": {"vision": True}, "tags": [{"n": 1}]},
            access_grants=[
                {"access_type": "group", "access_id": "developers", "permission": "read"},
                {"access_type": "user", "access_id": "editor", "permission": "write"},
            ],
        )
    )
    admin.create(model(ids[1], is_active=False, meta={"profile_image_url": "https://x.test/a.png"}))
    admin.create(model(ids[2], params={"system": "Be brief.", "deep": {"a": [1, {"b": 2.5}]}}))
    admin.update(model(ids[2], name="Updated twice", params={"top_p": 0.9}))
    admin.toggle(ids[2])
    admin.create(model(ids[3], base_model_id="llama3.1:8b"))
    return ids


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_export_imported_into_an_empty_database_exports_the_same(
    web: Registered, target: Registered, face: str
):
    ids = diverse_models(web)
    exported = web.admin.on(face).export(ids)
    assert exported.status == ok(face, None).status
    assert [m["id"] for m in exported.body] == sorted(ids)
    assert all("write_access" not in m for m in exported.body)

    imported = target.admin.on(face).import_models(exported.body)
    results = [(i, m, "created", "") for i, m in enumerate(sorted(ids))]
    assert imported == ok(face, report(created=4, results=results))

    again = target.admin.on(face).export(ids).body
    # Owner (the same admin), timestamps and content are kept; only the
    # version ids are the new database's own.
    assert without_versions(again) == without_versions(exported.body)
    assert not {m["version_id"] for m in again} & {m["version_id"] for m in exported.body}
    assert version_rows(target, ids) == [(i, 1) for i in sorted(ids)]


@pytest.mark.parametrize("face", FACES)
def test_importing_the_same_export_again_changes_nothing(web: Registered, face: str):
    ids = diverse_models(web)
    exported = web.admin.on(face).export(ids).body
    versions = version_rows(web, ids)
    rows = query(web.registry.database_url, "SELECT * FROM models ORDER BY id")

    results = [(i, m, "unchanged", "") for i, m in enumerate(sorted(ids))]
    for _ in range(2):
        reply = web.admin.on(face).import_models(exported)
        assert reply == ok(face, report(unchanged=4, results=results))
    assert version_rows(web, ids) == versions
    assert query(web.registry.database_url, "SELECT * FROM models ORDER BY id") == rows
    assert web.admin.on(face).export(ids).body == exported


# -- what an import does with each record ----------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_bad_records_are_reported_by_index_and_the_good_ones_go_in(web: Registered, face: str):
    good, other = fresh("good"), fresh("good")
    records = [
        model(good),
        "not a model",
        {"name": "No id", "params": {}, "meta": {}},
        model("has space", name=""),
        model(fresh("bad-grant"), access_grants=[{"principal_type": "role", "principal_id": "x"}]),
        model(fresh("bad-params"), params={"temperature": "hot", "max_tokens": 1.5}),
        model(fresh("bad-types"), params=[], is_active="yes"),
        model(
            other,
            access_grants=[
                {"principal_type": "group", "principal_id": "crew", "permission": "read"}
            ],
        ),
    ]
    reply = web.callers["author"].on(face).import_models(records)
    assert reply == ok(
        face,
        report(
            created=2,
            failed=6,
            results=[
                (0, good, "created", ""),
                (1, "", "failed", "the record is not a JSON object"),
                (2, "", "failed", "id is required and must not be empty"),
                (
                    3,
                    "has space",
                    "failed",
                    "id must not contain whitespace or control characters;"
                    " name is required and must not be empty",
                ),
                (
                    4,
                    records[4]["id"],
                    "failed",
                    "access_grants[0].access_type must be 'user' or 'group';"
                    " access_grants[0].permission must be 'read' or 'write'",
                ),
                (
                    5,
                    records[5]["id"],
                    "failed",
                    "params.temperature must be a number;"
                    " params.max_tokens must be a positive integer",
                ),
                (
                    6,
                    records[6]["id"],
                    "failed",
                    "params must be an object; is_active must be true or false",
                ),
                (7, other, "created", ""),
            ],
        ),
    )
    stored_ids = {row[0] for row in query(web.registry.database_url, "SELECT id FROM models")}
    assert {good, other} <= stored_ids and not {r["id"] for r in records[3:7]} & stored_ids
    stored = web.callers["author"].on(face).get(other).body
    assert stored["user_id"] == "author"
    assert stored["access_grants"] == [
        {"access_type": "group", "access_id": "crew", "permission": "read"}
    ]


@pytest.mark.parametrize("face", FACES)
def test_a_dry_run_reports_each_record_and_writes_nothing(web: Registered, face: str):
    author = web.callers["author"]
    same, changed, new = fresh("dry"), fresh("dry"), fresh("dry")
    author.create(model(same))
    author.create(model(changed))
    before = query(web.registry.database_url, "SELECT * FROM models ORDER BY id")
    versions = query(web.registry.database_url, "SELECT id FROM model_versions ORDER BY id")

    records = [model(same), model(changed, name="Other"), model(new), model(new, name=" ")]
    reply = author.on(face).import_models(records, dry_run=True)
    assert reply == ok(
        face,
        report(
            created=1,
            updated=1,
            unchanged=1,
            failed=1,
            results=[
                (0, same, "unchanged", ""),
                (1, changed, "updated", ""),
                (2, new, "created", ""),
                (3, new, "failed", "name is required and must not be empty"),
            ],
        ),
    )
    assert query(web.registry.database_url, "SELECT * FROM models ORDER BY id") == before
    assert query(web.registry.database_url, "SELECT id FROM model_versions ORDER BY id") == versions


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    ("mode", "outcome", "reason"),
    [
        ("update", "updated", ""),
        ("skip", "skipped", "the model exists with other content"),
        ("fail", "failed", "the model exists with other content (on_conflict is fail)"),
    ],
)
def test_an_id_that_exists_with_other_content_follows_on_conflict(
    web: Registered, face: str, mode: str, outcome: str, reason: str
):
    author = web.callers["author"]
    model_id, unchanged = fresh("conflict"), fresh("conflict")
    first = api_json(author.create(model(model_id, params={"temperature": 0.1})))
    author.create(model(unchanged))
    records = [model(model_id, name="New name", params={"temperature": 0.9}), model(unchanged)]

    reply = author.on(face).import_models(records, on_conflict=mode)
    counts = {outcome: 1, "unchanged": 1}
    results = [(0, model_id, outcome, reason), (1, unchanged, "unchanged", "")]
    assert reply == ok(face, report(**counts, results=results))

    stored = api_json(author.get(model_id))
    if mode == "update":
        assert (stored["name"], stored["params"]) == ("New name", {"temperature": 0.9})
        assert stored["created_at"] == first["created_at"] and stored["user_id"] == "author"
        history = author.history(model_id).versions
        assert [(v.number, v.commit_message) for v in history] == [(2, "Imported"), (1, "")]
        assert history[0].id == stored["version_id"] != first["version_id"]
    else:
        assert stored == {**first, "write_access": True}
        assert version_rows(web, [model_id]) == [(model_id, 1)]


@pytest.mark.parametrize("face", FACES)
def test_who_may_import_what(web: Registered, face: str):
    author, editor, viewer = (web.callers[u] for u in ("author", "editor", "viewer"))
    shared, private, writable, new = (fresh("owned") for _ in range(4))
    author.create(
        model(
            shared,
            access_grants=[{"access_type": "user", "access_id": "viewer", "permission": "read"}],
        )
    )
    author.create(model(private))
    author.create(
        model(
            writable,
            access_grants=[{"access_type": "user", "access_id": "editor", "permission": "write"}],
        )
    )
    records = [
        model(shared, name="Mine now"),
        model(private),
        model(new, user_id="author"),  # a file's owner is never read
    ]
    reply = viewer.on(face).import_models(records)
    assert reply == ok(
        face,
        report(
            created=1,
            failed=2,
            results=[
                (0, shared, "failed", "Unauthorized"),
                (1, private, "failed", "Model ID is already taken"),
                (2, new, "created", ""),
            ],
        ),
    )
    assert api_json(viewer.get(new))["user_id"] == "viewer"

    update = model(writable, name="Edited", access_grants=[])
    assert editor.on(face).import_models([update]).body["updated"] == 1
    stored = api_json(author.get(writable))
    assert (stored["user_id"], stored["name"], stored["access_grants"]) == ("author", "Edited", [])
    assert author.history(writable).versions[0].user_id == "editor"

    assert web.callers["lurker"].on(face).import_models([model(fresh("no"))]) == refused(
        face, "denied"
    )
    assert web.callers["no_key"].on(face).import_models([]) == refused(face, "unauthenticated")


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    ("records", "fields", "detail"),
    [
        (1, {"on_conflict": "overwrite"}, "on_conflict must be 'update', 'skip' or 'fail'"),
        (1, {"format_version": 2}, "format_version 2 is newer than this registry reads (1 to 1)"),
        (1001, {}, "models may hold at most 1000 records"),
    ],
)
def test_a_bad_import_request_is_refused_whole(
    web: Registered, face: str, records: int, fields: dict[str, Any], detail: str
):
    prefix = fresh("refused")
    sent = [model(f"{prefix}-{i}") for i in range(records)]
    assert web.callers["author"].on(face).import_models(sent, **fields) == invalid(face, detail)
    assert (
        query(web.registry.database_url, f"SELECT id FROM models WHERE id LIKE '{prefix}-%'") == []
    )


def test_an_import_while_the_database_is_locked_is_unavailable_and_writes_nothing(
    web: Registered,
):
    model_id = fresh("locked")
    with database_locked(web.registry.database_url):
        reply = web.callers["author"].on(GRPC).import_models([model(model_id)])
    assert reply == Reply("UNAVAILABLE", {"detail": "Service Unavailable"}, "DATABASE_UNAVAILABLE")
    assert query(web.registry.database_url, f"SELECT id FROM models WHERE id = '{model_id}'") == []
    again = web.callers["author"].on(GRPC).import_models([model(model_id)])
    assert again.body["created"] == 1


# -- what an export holds -------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_an_export_is_what_the_caller_may_read_as_they_may_see_it(web: Registered, face: str):
    author, lurker = web.callers["author"], web.callers["lurker"]
    readable, writable, hidden = fresh("seen"), fresh("seen"), fresh("seen")
    params = {"system": "secret prompt"}
    grant = {"access_type": "user", "access_id": "lurker"}
    author.create(model(readable, params=params, access_grants=[{**grant, "permission": "read"}]))
    author.create(model(writable, params=params, access_grants=[{**grant, "permission": "write"}]))
    author.create(model(hidden, params=params))

    everything = lurker.on(face).export()
    created = {m: api_json(author.get(m)) for m in (readable, writable)}
    for body in created.values():
        del body["write_access"]
    assert everything.status == ok(face, None).status
    # lurker reads only what this test's runs (one per face) shared with them.
    assert all(m["id"].startswith("seen-") for m in everything.body)
    mine = [m for m in everything.body if m["id"] in (readable, writable, hidden)]
    assert mine == [{**created[readable], "params": {}}, created[writable]]
    assert lurker.on(face).export([writable]) == ok(face, [created[writable]])
    missing = lurker.on(face).export([writable, hidden, "no-such-model"])
    if face == GRPC:
        assert missing == Reply(
            "NOT_FOUND", {"detail": f"Model not found: {hidden}"}, "MODEL_NOT_FOUND"
        )
    else:
        assert missing == Reply(404, {"detail": f"Model not found: {hidden}"})


def test_a_grpc_export_comes_in_pages_that_together_are_the_whole(web: Registered):
    pager = web.callers["pager"]
    ids = sorted(fresh("paged") for _ in range(7))
    for model_id in ids:
        pager.create(model(model_id, params={"n": len(model_id)}))
    whole = pager.export()
    assert [m.id for m in whole.models] == ids and whole.next_page_token == ""
    assert whole.format_version == 1

    pages, token = [], ""
    while True:
        page = pager.export(page_size=3, page_token=token)
        pages.append([m.id for m in page.models])
        token = page.next_page_token
        if not token:
            break
    assert pages == [ids[:3], ids[3:6], ids[6:]]

    error = rpc_error(pager.export, page_size=3, page_token="bm90IGEgdG9rZW4")
    assert_rpc_error(
        error,
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token is not a token of this export",
        field="page_token",
    )


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("parameter", ["page_size=5", "page_token=abc", "pageSize=5"])
def test_over_http_an_export_is_never_paged(web: Registered, prefix: str, parameter: str):
    field = "page_token" if "token" in parameter else "page_size"
    response = web.admin.http("GET", f"{prefix}/models/export?{parameter}")
    assert (response.status, response.json()) == (
        400,
        {
            "detail": f"{field} pages the export over gRPC only: over HTTP the export is one"
            " whole JSON array (ask for fewer ids, or run `model-registry export`)"
        },
    )


TOO_LARGE = (
    "The export is larger than one reply may be (4 MiB): ask for fewer ids,"
    " page it over gRPC (page_size, page_token) or run `model-registry export`"
)


@pytest.mark.parametrize("face", FACES)
def test_an_export_larger_than_a_reply_is_refused_never_cut_short(web: Registered, face: str):
    big = web.callers["big"]
    ids = [f"big-{i}" for i in range(5)]  # made once, by the first face's test
    if not big.export(page_size=1).models:
        for model_id in ids:
            big.create(model(model_id, params={"system": "x" * 900_000}))

    whole = big.on(face).export()
    if face == GRPC:
        assert whole == Reply("FAILED_PRECONDITION", {"detail": TOO_LARGE}, "EXPORT_TOO_LARGE")
    else:
        assert whole == Reply(400, {"detail": TOO_LARGE})
    # Fewer ids fit; over gRPC, pages end before 4 MiB.
    assert [m["id"] for m in big.on(face).export(ids[:2]).body] == ids[:2]
    first = big.export(page_size=10)
    second = big.export(page_size=10, page_token=first.next_page_token)
    assert [m.id for m in first.models] == ids[:4] and first.ByteSize() < 4 * 1024 * 1024
    assert [m.id for m in second.models] == ids[4:] and second.next_page_token == ""


# -- Open WebUI's export --------------------------------------------------------------


def test_open_webuis_export_imports_with_its_grants_and_extra_keys(
    database_url_factory: Callable[[], str],
):
    records = json.loads(OPEN_WEBUI_EXPORT.read_text())
    registry = start_registry(database_url_factory(), http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            callers = callers_for(registry, channel, {})
            admin = callers["admin"]
            # What Open WebUI's front end sends: {"models": items.map(m => m.info ?? m)}.
            response = admin.http("POST", "/api/v1/models/import", {"models": records})
            ids = [r["id"] for r in records]
            results = [(i, m, "created", "") for i, m in enumerate(ids)]
            assert (response.status, response.json()) == (200, report(created=4, results=results))

            stored = {m["id"]: m for m in admin.on("/api/v1").export().body}
            reviewer = stored["code-reviewer"]
            assert reviewer["user_id"] == "admin"  # the importer, not Open WebUI's user
            assert (reviewer["created_at"], reviewer["updated_at"]) == (1751462400, 1752000000)
            assert reviewer["params"] == records[0]["params"]
            assert reviewer["meta"] == records[0]["meta"]
            assert reviewer["access_grants"] == [
                {
                    "access_type": "group",
                    "access_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
                    "permission": "read",
                },
                {
                    "access_type": "user",
                    "access_id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
                    "permission": "write",
                },
            ]
            helper = stored["public-helper"]
            assert helper["meta"]["profile_image_url"] == FAVICON  # Open WebUI's "" is none
            assert helper["access_grants"] == [
                {"access_type": "user", "access_id": "*", "permission": "read"}
            ]
            tutor = stored["llama3.1-tutor"]
            assert tutor["is_active"] is False and tutor["base_model_id"] == "llama3.1:8b"
            assert tutor["meta"]["background_image_data"] == records[2]["background_image_data"]
            assert tutor["params"]["model_controls"] == records[2]["params"]["model_controls"]
            assert "background_image_data" not in stored["plain-preset"]["meta"]
            assert stored["plain-preset"]["base_model_id"] is None

            # The same file again, on the other prefix: nothing changes.
            again = admin.http("POST", "/api/models/import", {"models": records}).json()
            assert again == report(
                unchanged=4, results=[(i, m, "unchanged", "") for i, m in enumerate(ids)]
            )
            assert admin.on("/api/v1").export().body == list(stored.values())
            # Older Open WebUI exports wrap each model in "info".
            wrapped = [{"id": r["id"], "object": "model", "info": r} for r in records]
            assert admin.on(GRPC).import_models(wrapped).body["unchanged"] == 4
    finally:
        assert registry.stop() == 0
