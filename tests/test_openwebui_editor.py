"""What Open WebUI's own front end sends, through the real Envoy.

Open WebUI 0.12.4's `createNewModel` (src/lib/apis/models/index.ts) posts
`JSON.stringify({id, base_model_id, name, meta, params, access_grants,
is_active, commit_message})` to `{API_BASE}/models/create` with `Accept` and
`Content-Type: application/json` and `authorization: Bearer ...`; on an error
it shows the body's `detail`. Its model editor (ModelEditor.svelte) builds the
model: `base_model_id: null` when none is chosen, `meta` with `null` for every
unset optional key, grants spelled `principal_type` / `principal_id`, and
`commit_message` when the user typed one. JSON.stringify drops keys whose
value is undefined, which is why some keys are absent rather than null."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from modelregistry.v1 import model_service_pb2 as pb

from spec_examples import minimal
from support import (
    ADMIN_KEY,
    Client,
    HttpResponse,
    Registry,
    http_request,
    query,
    start_registry,
    stored_grants,
)

PATHS = ["/api/v1/models/create", "/api/models/create"]
FAVICON = "/static/favicon.png"

# The editor's capabilities for a new model (DEFAULT_CAPABILITIES; `usage:
# undefined` is dropped by JSON.stringify).
CAPABILITIES = {
    "file_context": True,
    "vision": True,
    "file_upload": True,
    "web_search": True,
    "image_generation": True,
    "code_interpreter": True,
    "terminal": True,
    "citations": True,
    "status_updates": True,
    "memory": True,
    "builtin_tools": True,
}


def editor_payload(model_id: str, **changes: Any) -> dict[str, Any]:
    """A new model saved in the editor with everything left at its default."""
    payload = {
        "id": model_id,
        "base_model_id": None,
        "name": "Code helper",
        "meta": {
            "profile_image_url": FAVICON,
            "background_image_url": None,
            "voice_avatar": None,
            "description": None,
            "suggestion_prompts": None,
            "tags": [],
            "capabilities": CAPABILITIES,
            "builtinTools": {},
        },
        "params": {},
        "access_grants": [],
    }
    payload.update(changes)
    return payload


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Registry]:
    running = start_registry(database_url_factory(), http=True)
    yield running
    assert running.stop() == 0


def create_new_model(web: Registry, path: str, payload: dict[str, Any]) -> HttpResponse:
    """Sends what createNewModel sends."""
    return http_request(
        web.http_port,
        "POST",
        path,
        json.dumps(payload, separators=(",", ":")),
        headers={
            "Accept": "application/json",
            "Content-Type": "application/json",
            "authorization": f"Bearer {ADMIN_KEY}",
        },
    )


def stored_row(web: Registry, model_id: str) -> dict[str, Any]:
    rows = query(
        web.database_url,
        "SELECT base_model_id, name, params, meta, is_active, commit_message"
        " FROM models WHERE id = :id",
        id=model_id,
    )
    assert len(rows) == 1, rows
    row = rows[0]._asdict()
    row["access_grants"] = stored_grants(web.database_url, model_id)
    for column in ("params", "meta"):
        if isinstance(row[column], str):  # SQLite hands JSON back as text
            row[column] = json.loads(row[column])
    row["is_active"] = bool(row["is_active"])
    return row


@pytest.mark.parametrize("path", PATHS)
def test_a_new_model_saved_with_the_editor_defaults(web: Registry, path: str, unique_id: str):
    response = create_new_model(web, path, editor_payload(unique_id))
    assert response.status == 200, response.body
    body = response.json()
    assert body["id"] == unique_id and body["user_id"] == "admin"
    assert body["base_model_id"] is None
    assert body["meta"] == editor_payload(unique_id)["meta"]  # nulls kept as sent
    assert body["params"] == {} and body["access_grants"] == [] and body["is_active"] is True
    assert isinstance(body["created_at"], int) and body["created_at"] == body["updated_at"]
    row = stored_row(web, unique_id)
    assert row["meta"] == body["meta"] and row["base_model_id"] is None
    assert row["commit_message"] is None


@pytest.mark.parametrize("path", PATHS)
def test_a_model_with_everything_the_editor_can_set(web: Registry, path: str, unique_id: str):
    payload = editor_payload(
        unique_id,
        base_model_id="gpt-4o",
        meta={
            **editor_payload(unique_id)["meta"],
            "profile_image_url": "data:image/png;base64,iVBORw0KGgo=",
            "description": "Reviews pull requests",
            "tags": [{"name": "code"}],
            "toolIds": ["web_search"],
            "knowledge": [{"id": "k1", "name": "Handbook", "type": "collection"}],
        },
        params={
            "system": "You are a careful reviewer.",
            "temperature": 0.2,
            "max_tokens": 2048,
            "stop": ["</end>"],
            "custom_params": {"seed": 42},
        },
        access_grants=[
            {"principal_type": "user", "principal_id": "*", "permission": "read"},
            {"principal_type": "group", "principal_id": "reviewers", "permission": "write"},
        ],
        commit_message="First version: review prompt",
    )
    response = create_new_model(web, path, payload)
    assert response.status == 200, response.body
    body = response.json()
    assert body["base_model_id"] == "gpt-4o"
    assert body["params"] == payload["params"] and body["meta"] == payload["meta"]
    assert body["access_grants"] == [
        {"access_type": "user", "access_id": "*", "permission": "read"},
        {"access_type": "group", "access_id": "reviewers", "permission": "write"},
    ]
    assert "commit_message" not in body  # kept with the model, not returned
    row = stored_row(web, unique_id)
    assert row["commit_message"] == "First version: review prompt"
    assert row["access_grants"] == body["access_grants"]


@pytest.mark.parametrize("path", PATHS)
def test_errors_reach_the_editor_as_detail(web: Registry, path: str, unique_id: str):
    assert create_new_model(web, path, editor_payload(unique_id)).status == 200
    again = create_new_model(web, path, editor_payload(unique_id))
    assert (again.status, again.json()) == (400, {"detail": "Model ID is already taken"})


# -- null means "not set" -------------------------------------------------------

# (what is sent, what is stored and returned)
NULLS = [
    ({"base_model_id": None}, {"base_model_id": None}),
    ({"is_active": None}, {"is_active": True}),
    ({"access_grants": None}, {"access_grants": []}),
    ({"commit_message": None}, {}),
    ({"meta": {"profile_image_url": None}}, {"meta": {"profile_image_url": FAVICON}}),
    (
        {"meta": {"description": None}},
        {"meta": {"description": None, "profile_image_url": FAVICON}},
    ),
    (
        {"meta": {"capabilities": None}},
        {"meta": {"capabilities": None, "profile_image_url": FAVICON}},
    ),
    (
        {"meta": {"anything_else": None}},
        {"meta": {"anything_else": None, "profile_image_url": FAVICON}},
    ),
    *(
        ({"params": {key: None}}, {"params": {key: None}})
        for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "max_tokens")
    ),
    ({"params": {"seed": None, "stop": None}}, {"params": {"seed": None, "stop": None}}),
]


@pytest.mark.parametrize(("sent", "kept"), NULLS, ids=[json.dumps(s) for s, _ in NULLS])
def test_null_is_not_set_over_http(web: Registry, unique_id: str, sent: dict, kept: dict):
    response = create_new_model(web, PATHS[0], minimal(unique_id, **sent))
    assert response.status == 200, response.body
    body = response.json()
    expected = {
        "base_model_id": None,
        "params": {},
        "meta": {"profile_image_url": FAVICON},
        "access_grants": [],
        "is_active": True,
        **kept,
    }
    for key, value in expected.items():
        assert body[key] == value, key
    row = stored_row(web, unique_id)
    for key, value in expected.items():
        assert row[key] == value, key
    assert row["commit_message"] is None


def _null() -> struct_pb2.Value:
    return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)


def test_null_is_not_set_over_grpc(admin: Client, unique_id: str):
    request = pb.CreateModelRequest(model=pb.Model(id=unique_id, name="n"))
    for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "max_tokens"):
        request.model.params.fields[key].CopyFrom(_null())
    for key in ("profile_image_url", "description", "capabilities"):
        request.model.meta.fields[key].CopyFrom(_null())
    model = admin.stub.CreateModel(
        request, metadata=[("authorization", f"Bearer {ADMIN_KEY}")], timeout=10
    )
    assert {key: value.WhichOneof("kind") for key, value in model.params.fields.items()} == {
        key: "null_value"
        for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "max_tokens")
    }
    assert model.meta.fields["profile_image_url"].string_value == FAVICON
    assert model.meta.fields["description"].WhichOneof("kind") == "null_value"
    assert model.meta.fields["capabilities"].WhichOneof("kind") == "null_value"


# -- commit_message ---------------------------------------------------------------


def test_commit_message_over_grpc_is_kept(admin: Client, registry: Registry, unique_id: str):
    admin.create(minimal(unique_id, commit_message="Tuned for code review"))
    rows = query(
        registry.database_url, "SELECT commit_message FROM models WHERE id = :id", id=unique_id
    )
    assert rows == [("Tuned for code review",)]


def test_commit_message_limit(web: Registry, unique_id: str):
    at_limit = minimal(unique_id, commit_message="é" * 4096)
    assert create_new_model(web, PATHS[0], at_limit).status == 200
    over = minimal(unique_id + "-over", commit_message="x" * 4097)
    response = create_new_model(web, PATHS[0], over)
    assert (response.status, response.json()) == (
        400,
        {"detail": "commit_message is too long (max 4096 characters)"},
    )
    assert query(web.database_url, "SELECT id FROM models WHERE id = :id", id=over["id"]) == []
    wrong_type = create_new_model(web, PATHS[0], minimal(unique_id + "-t", commit_message=5))
    assert wrong_type.json() == {"detail": "commit_message must be a string"}


def test_commit_message_rules_over_grpc(admin: Client, unique_id: str):
    error = admin.create_error(minimal(unique_id, commit_message="a\x00b"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "commit_message must not contain NUL characters"


# -- both spellings of a grant ------------------------------------------------------

SPEC_GRANT = {"access_type": "group", "access_id": "g1", "permission": "read"}
OPEN_WEBUI_GRANT = {"principal_type": "group", "principal_id": "g1", "permission": "read"}


@pytest.mark.parametrize(
    "grant",
    [
        SPEC_GRANT,
        OPEN_WEBUI_GRANT,
        {**SPEC_GRANT, **OPEN_WEBUI_GRANT},  # both spellings, same values
        {"access_type": "group", "principal_id": "g1", "permission": "read"},
    ],
)
def test_either_spelling_is_the_same_grant(web: Registry, unique_id: str, grant: dict):
    model = minimal(unique_id, access_grants=[grant, SPEC_GRANT, OPEN_WEBUI_GRANT])
    body = create_new_model(web, PATHS[0], model).json()
    assert body["access_grants"] == [SPEC_GRANT]  # one grant, in the spec's spelling
    assert stored_row(web, unique_id)["access_grants"] == [SPEC_GRANT]


@pytest.mark.parametrize(
    ("grant", "detail"),
    [
        (
            {**SPEC_GRANT, "principal_type": "user"},
            "access_grants[1] gives access_type and principal_type with different values:"
            " send one of the two spellings",
        ),
        (
            {**OPEN_WEBUI_GRANT, "access_id": "g2"},
            "access_grants[1] gives access_id and principal_id with different values:"
            " send one of the two spellings",
        ),
        (
            {"principal_type": "anyone", "principal_id": "*", "permission": "read"},
            "access_grants[1].access_type must be 'user' or 'group'",
        ),
        (
            {"principal_type": "group", "permission": "read"},
            "access_grants[1].access_id must be a non-empty id without control characters",
        ),
    ],
)
def test_a_grant_that_contradicts_itself_is_400(
    web: Registry, unique_id: str, grant: dict, detail: str
):
    model = minimal(unique_id, access_grants=[SPEC_GRANT, grant])
    response = create_new_model(web, PATHS[0], model)
    assert (response.status, response.json()) == (400, {"detail": detail})
    assert query(web.database_url, "SELECT id FROM models WHERE id = :id", id=unique_id) == []


def test_mixed_spellings_over_grpc(admin: Client, unique_id: str):
    grant = {
        "access_type": "user",
        "principal_type": "group",
        "access_id": "x",
        "permission": "read",
    }
    error = admin.create_error(minimal(unique_id, access_grants=[grant]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "access_grants[0] gives access_type and principal_type with different values:"
        " send one of the two spellings"
    )
