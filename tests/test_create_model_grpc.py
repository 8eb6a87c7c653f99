"""CreateModel over gRPC, through the real server on a real port."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spec_examples import SPEC_REQUEST, SPEC_RESPONSE, minimal
from support import Client, Registry, as_json, model_request, query, status_details

TOO_LONG = "Model ID is too long (max 256 characters)"


def stored_row(registry: Registry, model_id: str):
    engine = sa.create_engine(registry.database_url)
    try:
        with engine.connect() as connection:
            return (
                connection.execute(sa.text("SELECT * FROM models WHERE id = :id"), {"id": model_id})
                .mappings()
                .first()
            )
    finally:
        engine.dispose()


def stored_json_text(registry: Registry, model_id: str, column: str) -> str:
    engine = sa.create_engine(registry.database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.text(f"SELECT CAST({column} AS TEXT) FROM models WHERE id = :id"),
                {"id": model_id},
            ).scalar_one()
    finally:
        engine.dispose()


def assert_error(error: grpc.RpcError, code: grpc.StatusCode, message: str, reason: str) -> dict:
    assert error.code() == code
    assert error.details() == message
    details = status_details(error)
    assert details["ErrorInfo"].reason == reason
    assert details["ErrorInfo"].domain == "modelregistry.v1"
    return details


def assert_invalid(error: grpc.RpcError, field: str, message: str | None = None) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = status_details(error)
    assert details["ErrorInfo"].reason == "INVALID_ARGUMENT"
    violations = {v.field: v.description for v in details["BadRequest"].field_violations}
    assert field in violations, violations
    named = field.split("[")[0].split(".")[0]
    assert named.lower() in violations[field].lower()  # the message names the field
    if message is not None:
        assert error.details() == message
        assert violations[field] == message


# -- the spec's example ------------------------------------------------------


def test_spec_example_request_gives_spec_example_response(admin: Client, registry: Registry):
    before = int(time.time())
    created = as_json(admin.create(SPEC_REQUEST))
    after = int(time.time())

    assert before <= int(created["created_at"]) <= after
    assert created["created_at"] == created["updated_at"]
    assert created["user_id"] == "admin"
    volatile = ("user_id", "created_at", "updated_at", "version_id")
    expected = {k: v for k, v in SPEC_RESPONSE.items() if k not in volatile}
    assert {k: v for k, v in created.items() if k not in volatile} == expected

    row = stored_row(registry, "my-custom-gpt4")
    assert row["user_id"] == "admin"
    assert row["name"] == "My Custom GPT-4"
    assert row["base_model_id"] == "gpt-4"
    assert row["is_active"] in (True, 1)
    assert row["created_at"] == int(created["created_at"])
    [version] = query(
        registry.database_url,
        "SELECT id, number, parent_id, user_id FROM model_versions WHERE model_id = :id",
        id="my-custom-gpt4",
    )
    assert tuple(version) == (created["version_id"], 1, None, "admin")


def test_integer_params_stay_integers(admin: Client, registry: Registry, unique_id: str):
    params = {"max_tokens": 2000, "temperature": 0.5, "seed": -7, "big": 2**53, "one": 1.0}
    created = admin.create(minimal(unique_id, params=params))
    # gRPC carries every number as a double, so only the values can be
    # compared in the reply; the stored JSON shows the types.
    assert as_json(created)["params"] == params
    raw = stored_json_text(registry, unique_id, "params")
    assert '"max_tokens":2000' in raw and "2000.0" not in raw
    stored = {key: (type(value), value) for key, value in json.loads(raw).items()}
    assert stored == {
        "max_tokens": (int, 2000),
        "temperature": (float, 0.5),
        "seed": (int, -7),
        "big": (int, 2**53),
        "one": (int, 1),  # an integral JSON number is an integer
    }


# -- who may call ------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", "mr-no-scheme", "Bearer unknown-key"],
)
def test_missing_malformed_or_unknown_key_is_unauthenticated(
    admin: Client, unique_id: str, authorization: str | None
):
    metadata = [] if authorization is None else [("authorization", authorization)]
    with pytest.raises(grpc.RpcError) as caught:
        admin.stub.CreateModel(model_request(minimal(unique_id)), metadata=metadata, timeout=10)
    assert_error(caught.value, grpc.StatusCode.UNAUTHENTICATED, "Unauthorized", "UNAUTHENTICATED")


def test_revoked_key_is_unauthenticated_like_an_unknown_one(
    admin: Client, registry: Registry, unique_id: str
):
    key = registry.add_user(f"revoked-{unique_id}", can_create=True)
    key_id = registry.cli("keys", "list", "--user", f"revoked-{unique_id}").split()[0]
    registry.cli("keys", "revoke", key_id)
    revoked = admin.create_error(minimal(unique_id), key=key)
    unknown = admin.create_error(minimal(unique_id), key=key + "x")
    for error in (revoked, unknown):
        assert_error(error, grpc.StatusCode.UNAUTHENTICATED, "Unauthorized", "UNAUTHENTICATED")
    assert stored_row(registry, unique_id) is None


def test_authentication_comes_before_validation(admin: Client):
    error = admin.create_error({"id": "x" * 300}, key=None)
    assert_error(error, grpc.StatusCode.UNAUTHENTICATED, "Unauthorized", "UNAUTHENTICATED")


def test_user_without_create_permission_is_denied_before_validation(
    admin: Client, registry: Registry, unique_id: str
):
    key = registry.add_user(f"reader-{unique_id}")
    taken = f"{unique_id}-taken"
    admin.create(minimal(taken, name="the admin's"))
    for model in (minimal(unique_id), {"id": "x" * 300}, minimal(taken)):
        error = admin.create_error(model, key=key)
        assert_error(error, grpc.StatusCode.PERMISSION_DENIED, "Unauthorized", "PERMISSION_DENIED")
    assert stored_row(registry, unique_id) is None
    assert stored_row(registry, taken)["name"] == "the admin's"


def test_user_with_create_permission_creates_as_itself(
    admin: Client, registry: Registry, unique_id: str
):
    user = f"creator-{unique_id}"
    key = registry.add_user(user, can_create=True)
    created = admin.create(minimal(unique_id), key=key)
    assert created.user_id == user
    assert stored_row(registry, unique_id)["user_id"] == user


def test_a_second_admin_may_create(admin: Client, registry: Registry, unique_id: str):
    key = registry.add_user(f"admin2-{unique_id}", role="admin")
    assert admin.create(minimal(unique_id), key=key).user_id == f"admin2-{unique_id}"


# -- id rules ----------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 255, 256])
def test_ids_up_to_256_characters_are_accepted(admin: Client, unique_id: str, length: int):
    model_id = (unique_id + "x" * 300)[:length] if length > 1 else unique_id[-1]
    if length == 1:
        model_id = chr(0x4E00 + len(unique_id) % 5000)  # a fresh one-character id
    assert admin.create(minimal(model_id)).id == model_id


def test_256_non_ascii_characters_are_accepted(admin: Client, registry: Registry):
    model_id = "é" * 256
    assert len(model_id.encode()) == 512
    assert admin.create(minimal(model_id)).id == model_id
    assert stored_row(registry, model_id)["id"] == model_id


@pytest.mark.parametrize("model_id", ["a" * 257, "é" * 257, "😀" * 257, "b" * 10_000])
def test_ids_over_256_characters_are_too_long(admin: Client, registry: Registry, model_id: str):
    error = admin.create_error(minimal(model_id))
    assert_invalid(error, "id", TOO_LONG)
    assert stored_row(registry, model_id) is None


def test_empty_id_is_invalid(admin: Client):
    assert_invalid(admin.create_error(minimal("")), "id", "id is required and must not be empty")


@pytest.mark.parametrize(
    "model_id",
    [
        "a b",
        " lead",
        "trail ",
        "tab\there",
        "new\nline",
        "nb\u00a0sp",
        "zero\u200bwidth",
        "nul\x00",
        "bidi\u202eoverride",
    ],
)
def test_ids_with_whitespace_or_control_characters_are_invalid(
    admin: Client, registry: Registry, model_id: str
):
    error = admin.create_error(minimal(model_id))
    assert_invalid(error, "id", "id must not contain whitespace or control characters")


@pytest.mark.parametrize("model_id", ["ünïcödé-模型", "emoji-😀", "a/b:c@d", "עברית"])
def test_printable_unicode_ids_are_accepted(admin: Client, model_id: str, unique_id: str):
    model_id = f"{model_id}-{unique_id}"
    assert admin.create(minimal(model_id)).id == model_id


# -- other fields ------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_name_is_invalid(admin: Client, unique_id: str, name: str):
    model = minimal(unique_id, name=name)
    assert_invalid(admin.create_error(model), "name", "name is required and must not be empty")


def test_missing_name_params_meta_are_each_named(admin: Client, unique_id: str):
    error = admin.create_error({"id": unique_id})
    violations = [v.field for v in status_details(error)["BadRequest"].field_violations]
    assert violations == ["name", "params", "meta"]
    assert error.details() == "name is required and must not be empty"


def test_params_and_meta_may_be_empty_objects(admin: Client, unique_id: str):
    created = as_json(admin.create(minimal(unique_id)))
    assert created["params"] == {}
    assert created["meta"] == {"profile_image_url": "/static/favicon.png"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"temperature": "hot"}, "params.temperature"),
        ({"temperature": True}, "params.temperature"),
        ({"frequency_penalty": [1]}, "params.frequency_penalty"),
        ({"presence_penalty": {}}, "params.presence_penalty"),
        ({"max_tokens": 0}, "params.max_tokens"),
        ({"max_tokens": -5}, "params.max_tokens"),
        ({"max_tokens": 1.5}, "params.max_tokens"),
        ({"max_tokens": "100"}, "params.max_tokens"),
        ({"max_tokens": True}, "params.max_tokens"),
    ],
)
def test_common_params_must_have_their_json_types(
    admin: Client, registry: Registry, unique_id: str, params: dict, field: str
):
    error = admin.create_error(minimal(unique_id, params=params))
    assert_invalid(error, field)
    assert stored_row(registry, unique_id) is None


def test_common_params_of_the_right_types_are_kept(admin: Client, unique_id: str):
    params = {
        "temperature": 0,
        "top_p": 0.9,
        "frequency_penalty": -1.5,
        "presence_penalty": 2,
        "max_tokens": 1,
        "stop": ["\n"],
        "custom": {"nested": [1, "two", None, False]},
    }
    assert as_json(admin.create(minimal(unique_id, params=params)))["params"] == params


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "http://example.com/a.png",
        "/static/x.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "DATA:IMAGE/svg+xml;base64,PHN2Zz4=",
    ],
)
def test_profile_image_url_accepts_image_sources(admin: Client, unique_id: str, url: str):
    created = admin.create(minimal(unique_id, meta={"profile_image_url": url}))
    assert created.meta["profile_image_url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "//evil.example/x.png",
        "data:text/html,<b>",
        "ftp://example.com/a.png",
        "http://",
        "relative/path.png",
        "",
        5,
        {"u": 1},
    ],
)
def test_profile_image_url_rejects_other_values(admin: Client, unique_id: str, url):
    error = admin.create_error(minimal(unique_id, meta={"profile_image_url": url}))
    assert_invalid(error, "meta.profile_image_url")


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"description": 5}, "meta.description"),
        ({"capabilities": []}, "meta.capabilities"),
        ({"capabilities": "vision"}, "meta.capabilities"),
    ],
)
def test_documented_meta_keys_must_have_their_types(admin: Client, unique_id: str, meta, field):
    assert_invalid(admin.create_error(minimal(unique_id, meta=meta)), field)


def test_other_meta_keys_round_trip_unchanged(admin: Client, registry: Registry, unique_id: str):
    meta = {
        "description": "d",
        "tags": [{"name": "code"}, {"name": "ünï"}],
        "suggestion_prompts": [{"content": "Write a test"}],
        "knowledge": [{"id": "k1", "type": "collection", "meta": {"n": 3}}],
        "empty": {},
        "nothing": None,
    }
    created = as_json(admin.create(minimal(unique_id, meta=meta)))
    assert created["meta"] == {**meta, "profile_image_url": "/static/favicon.png"}
    stored = json.loads(stored_json_text(registry, unique_id, "meta"))
    assert stored == {**meta, "profile_image_url": "/static/favicon.png"}


# -- access grants -------------------------------------------------------------


@pytest.mark.parametrize(
    ("grant", "field"),
    [
        (
            {"access_type": "team", "access_id": "a", "permission": "read"},
            "access_grants[0].access_type",
        ),
        (
            {"access_type": "user", "access_id": "a", "permission": "admin"},
            "access_grants[0].permission",
        ),
        (
            {"access_type": "user", "access_id": "", "permission": "read"},
            "access_grants[0].access_id",
        ),
        (
            {"access_type": "user", "access_id": " ", "permission": "read"},
            "access_grants[0].access_id",
        ),
        ({}, "access_grants[0].access_type"),
        (
            {"access_type": "User", "access_id": "a", "permission": "read"},
            "access_grants[0].access_type",
        ),
    ],
)
def test_invalid_grants_name_the_field(admin: Client, unique_id: str, grant: dict, field: str):
    assert_invalid(admin.create_error(minimal(unique_id, access_grants=[grant])), field)


def test_every_bad_grant_is_reported(admin: Client, unique_id: str):
    good = {"access_type": "user", "access_id": "u1", "permission": "read"}
    error = admin.create_error(minimal(unique_id, access_grants=[good, {}]))
    fields = [v.field for v in status_details(error)["BadRequest"].field_violations]
    assert fields == [
        "access_grants[1].access_type",
        "access_grants[1].access_id",
        "access_grants[1].permission",
    ]


def test_duplicate_grants_are_collapsed_in_order(admin: Client, unique_id: str):
    a = {"access_type": "user", "access_id": "u1", "permission": "read"}
    b = {"access_type": "group", "access_id": "g1", "permission": "write"}
    created = as_json(admin.create(minimal(unique_id, access_grants=[a, b, a, b, a])))
    assert created["access_grants"] == [a, b]


# -- defaults and output-only fields ---------------------------------------------


def test_defaults_when_fields_are_absent(admin: Client, unique_id: str):
    created = admin.create(minimal(unique_id))
    assert created.HasField("is_active") and created.is_active is True
    assert not created.HasField("base_model_id")
    assert created.meta["profile_image_url"] == "/static/favicon.png"
    assert list(created.access_grants) == []


def test_explicit_false_and_base_model_are_kept(admin: Client, registry: Registry, unique_id: str):
    created = admin.create(minimal(unique_id, is_active=False, base_model_id="gpt-4o"))
    assert created.HasField("is_active") and created.is_active is False
    assert created.base_model_id == "gpt-4o"
    row = stored_row(registry, unique_id)
    assert row["is_active"] in (False, 0) and row["base_model_id"] == "gpt-4o"


def test_empty_base_model_id_is_invalid(admin: Client, unique_id: str):
    assert_invalid(admin.create_error(minimal(unique_id, base_model_id="")), "base_model_id")


def test_output_only_fields_sent_by_the_client_are_ignored(admin: Client, unique_id: str):
    before = int(time.time())
    created = admin.create(
        minimal(unique_id, user_id="mallory", created_at="1", updated_at="99999999999")
    )
    assert created.user_id == "admin"
    assert before <= created.created_at <= int(time.time())
    assert created.updated_at == created.created_at


# -- uniqueness ----------------------------------------------------------------


def test_duplicate_id_is_already_exists(admin: Client, registry: Registry, unique_id: str):
    admin.create(minimal(unique_id, name="first"))
    error = admin.create_error(minimal(unique_id, name="second"))
    assert_error(
        error, grpc.StatusCode.ALREADY_EXISTS, "Model ID is already taken", "MODEL_ID_TAKEN"
    )
    assert stored_row(registry, unique_id)["name"] == "first"


def test_concurrent_creates_of_one_id_give_one_success(admin: Client, unique_id: str):
    def attempt(n: int):
        try:
            return admin.create(minimal(unique_id, name=f"racer {n}"))
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(attempt, range(48)))
    successes = [r for r in results if not isinstance(r, grpc.RpcError)]
    failures = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(successes) == 1
    assert len(failures) == 47
    for error in failures:
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error.details() == "Model ID is already taken"


# -- the server ----------------------------------------------------------------


def test_health_check_is_serving(channel: grpc.Channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "modelregistry.v1.ModelService"):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_no_key_is_ever_printed_or_logged(registry: Registry, admin: Client, unique_id: str):
    admin.create(minimal(unique_id))
    admin.create_error(minimal(unique_id), key="mr-some-wrong-key-that-must-not-be-logged")
    log = "".join(registry.output)
    assert admin.key not in log
    assert "mr-some-wrong-key" not in log


def test_a_taken_id_never_fails_the_creates_committed_with_it(admin: Client, unique_id: str):
    taken = [f"{unique_id}-taken-{n}" for n in range(24)]
    for model_id in taken:
        admin.create(minimal(model_id))
    fresh = [f"{unique_id}-fresh-{n}" for n in range(24)]
    mixed = [m for pair in zip(taken, fresh, strict=True) for m in pair]

    def attempt(model_id: str):
        try:
            return admin.create(minimal(model_id)).id
        except grpc.RpcError as error:
            return error.code()

    with ThreadPoolExecutor(len(mixed)) as pool:  # all at once: they share commits
        results = dict(zip(mixed, pool.map(attempt, mixed), strict=True))
    assert all(results[m] == m for m in fresh)
    assert all(results[m] == grpc.StatusCode.ALREADY_EXISTS for m in taken)


# -- limits ----------------------------------------------------------------------


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_params_nested_past_the_limit_are_invalid(admin: Client, registry: Registry, unique_id):
    assert admin.create(minimal(unique_id, params=nested(24))).id == unique_id
    error = admin.create_error(minimal(unique_id + "-deep", params=nested(26)))
    assert_invalid(error, "params", "params nests deeper than 24 levels")
    error = admin.create_error(minimal(unique_id + "-deeper", meta={"x": [[[nested(30)]]]}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stored_row(registry, unique_id + "-deeper") is None


def test_undecodably_deep_requests_are_invalid_not_internal(admin: Client, unique_id: str):
    request = model_request(minimal(unique_id))
    request.model.params.update(nested(60))  # deeper than protobuf decodes
    with pytest.raises(grpc.RpcError) as caught:
        admin.stub.CreateModel(
            request, metadata=[("authorization", f"Bearer {admin.key}")], timeout=10
        )
    assert_invalid(
        caught.value,
        "request",
        "request could not be decoded: malformed, or params/meta nested deeper than 24 levels",
    )


def test_messages_over_the_size_limit_are_resource_exhausted(admin: Client, unique_id: str):
    error = admin.create_error(minimal(unique_id, name="x" * (5 * 1024 * 1024)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in error.details()
