"""The JSON/HTTP face: the spec's HTTP contract, through the real Envoy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelregistry_server.envoy import DEFAULT_CONFIG, EnvoyOptions, EnvoyProcess, envoy_binary

from spec_examples import SPEC_REQUEST, SPEC_RESPONSE, minimal
from support import (
    ADMIN_KEY,
    HttpResponse,
    Registry,
    database_locked,
    execute,
    free_port,
    http_request,
    query,
    start_registry,
)

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["/api/models/create", "/api/v1/models/create"]


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Registry]:
    """`model-registry serve`: the gRPC server and Envoy, on each backend."""
    running = start_registry(database_url_factory(), http=True)
    yield running
    assert running.stop() == 0


def post(web: Registry, body, *, path: str = "/api/models/create", key=ADMIN_KEY, **kw):
    return http_request(web.http_port, "POST", path, body, key=key, **kw)


def assert_detail(response: HttpResponse, status: int, detail: str | None = None) -> str:
    assert response.status == status, (response.status, response.body)
    assert response.headers["content-type"] == "application/json"
    assert not [h for h in response.headers if h.startswith(("grpc-", "x-envoy-"))]
    assert response.body.startswith(b'{"detail":"') and response.body.endswith(b'"}')
    body = response.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str) and body["detail"]
    if detail is not None:
        assert body["detail"] == detail
    return body["detail"]


def stored(web: Registry, model_id: str):
    rows = query(web.database_url, "SELECT user_id, name FROM models WHERE id = :id", id=model_id)
    return tuple(rows[0]) if rows else None


def test_envoy_validates_the_config():
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(DEFAULT_CONFIG)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration" in result.stdout and "OK" in result.stdout


@pytest.mark.parametrize("path", PATHS)
def test_spec_example_gives_spec_response(web: Registry, path: str):
    model_id = "my-custom-gpt4" + path.replace("/", "-")
    before = int(time.time())
    response = post(web, {**SPEC_REQUEST, "id": model_id}, path=path)
    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/json"
    assert not [h for h in response.headers if h.startswith(("grpc-", "x-envoy-"))]
    body = json.loads(response.body)
    # The spec's keys in its order, then the version the model is (as Open
    # WebUI's own replies carry it).
    assert list(body) == [*SPEC_RESPONSE, "version_id"]
    [(version_id,)] = query(
        web.database_url, "SELECT version_id FROM models WHERE id = :id", id=model_id
    )
    assert body["version_id"] == version_id and len(version_id) == 36
    for key in SPEC_RESPONSE:
        if key not in ("id", "user_id", "created_at", "updated_at"):
            assert body[key] == SPEC_RESPONSE[key], key
    assert body["id"] == model_id
    assert body["user_id"] == "admin"
    assert type(body["created_at"]) is int and type(body["updated_at"]) is int
    assert before <= body["created_at"] == body["updated_at"] <= int(time.time())
    assert type(body["params"]["max_tokens"]) is int
    assert b'"created_at":' + str(body["created_at"]).encode() + b"," in response.body


def test_minimal_model_prints_every_field(web: Registry, unique_id: str):
    body = post(web, minimal(unique_id)).json()
    assert body["access_grants"] == [] and body["is_active"] is True
    assert body["params"] == {} and body["meta"] == {"profile_image_url": "/static/favicon.png"}
    assert body["base_model_id"] is None  # the key is always there, null when unset
    assert list(body) == [*SPEC_RESPONSE, "version_id"]


def test_nested_created_at_keys_are_left_alone(web: Registry, unique_id: str):
    params = {"created_at": "123", "nested": {"updated_at": "456"}}
    body = post(web, minimal(unique_id, params=params, meta={"created_at": "7"})).json()
    assert body["params"] == params and body["meta"]["created_at"] == "7"
    assert type(body["created_at"]) is int


def test_is_active_false_and_unknown_keys(web: Registry, unique_id: str):
    body = post(web, {**minimal(unique_id, is_active=False), "surprise": 1}).json()
    assert body["is_active"] is False and "surprise" not in body


def test_authorization_header_reaches_the_server(web: Registry, unique_id: str):
    key = web.add_user(f"http-{unique_id}", can_create=True)
    body = post(web, minimal(unique_id), key=key).json()
    assert body["user_id"] == f"http-{unique_id}"
    assert stored(web, unique_id)[0] == f"http-{unique_id}"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer"},
    ],
)
def test_unauthenticated_is_401(web: Registry, unique_id: str, headers: dict):
    response = post(web, minimal(unique_id), key=None, headers=headers)
    assert_detail(response, 401, "Unauthorized")
    assert stored(web, unique_id) is None


def test_no_permission_is_401(web: Registry, unique_id: str):
    key = web.add_user(f"reader-{unique_id}")
    assert_detail(post(web, minimal(unique_id), key=key), 401, "Unauthorized")


def test_duplicate_id_is_400(web: Registry, unique_id: str):
    assert post(web, minimal(unique_id)).status == 200
    for path in PATHS:
        response = post(web, minimal(unique_id), path=path)
        assert_detail(response, 400, "Model ID is already taken")
        assert response.body == b'{"detail":"Model ID is already taken"}'


def test_too_long_id_is_400(web: Registry):
    response = post(web, minimal("é" * 257))
    assert response.body == b'{"detail":"Model ID is too long (max 256 characters)"}'
    assert_detail(response, 400)
    assert post(web, minimal("é" * 256)).status == 200


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ({"id": "x1", "params": {}, "meta": {}}, "name"),
        ({"id": "x2", "name": "n", "meta": {}}, "params"),
        ({"id": "x3", "name": "n", "params": {"max_tokens": 1.5}, "meta": {}}, "params.max_tokens"),
        (
            {"id": "x4", "name": "n", "params": {}, "meta": {"profile_image_url": "javascript:x"}},
            "meta.profile_image_url",
        ),
        # the transcoder drops unknown keys: a grant with other names arrives empty
        (
            {**minimal("x5"), "access_grants": [{"type": "user", "id": "u", "perm": "read"}]},
            "access_grants[0].access_type",
        ),
        ({}, "id"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(web: Registry, model: dict, field: str):
    detail = assert_detail(post(web, model), 400)
    assert detail.startswith(field + " "), detail


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ('{"id": "m", "name": ', "Invalid JSON: the body ends too early at line 1, column 21"),
        ("not json", "Invalid JSON: unexpected character at line 1, column 1"),
        ('{"id": "m",\n "name": 5, "params": {}, "meta": {}}', "name must be a string"),
        ('{"id": "m", "name": "n", "params": "x", "meta": {}}', "params must be an object"),
        ('{"id": "m", "name": "n", "params": {}, "meta": [1]}', "meta must be an object"),
        (
            '{"id": "m", "name": "n", "params": {}, "meta": {}, "is_active": 1}',
            "is_active must be true or false",
        ),
        (
            '{"id": "m", "name": "n", "params": {}, "meta": {}, "access_grants": 5}',
            "access_grants must be an array",
        ),
        ('{"id": ["x"], "name": "n", "params": {}, "meta": {}}', "id must be a string"),
        (
            '{"id": "m", "name": "n", "params": {"a": NaN}, "meta": {}}',
            "Invalid JSON: unexpected character at line 1, column 42",
        ),
        (
            '{"id": "m\\ud800", "name": "n", "params": {}, "meta": {}}',
            "Invalid JSON: invalid escape sequence in a string at line 1, column 10",
        ),
        (
            '{"id": "m", "name": "n", "params": {}, "meta": {}, "created_at": "abc"}',
            "created_at must be an integer",
        ),
    ],
)
def test_malformed_json_and_wrong_types_are_400(web: Registry, body: str, detail: str):
    assert_detail(post(web, body), 400, detail)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/models/create"),
        ("PUT", "/api/models/create"),
        ("POST", "/nope"),
        ("GET", "/"),
        ("POST", "/modelregistry.v1.ModelService/Nope"),
    ],
)
def test_unknown_path_or_method_is_404(web: Registry, method: str, path: str):
    response = http_request(web.http_port, method, path, None if method == "GET" else "{}")
    assert_detail(response, 404, "Not Found")


@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_the_limit_is_413_and_never_reaches_the_server(web: Registry, chunked: bool):
    model_id = f"too-big-{chunked}"
    big = minimal(model_id, meta={"description": "x" * (1024 * 1024)})
    response = post(web, big, chunked=chunked)
    assert_detail(response, 413, "Request body too large")
    assert stored(web, model_id) is None


def test_body_just_under_the_limit_is_served(web: Registry, unique_id: str):
    model = minimal(unique_id, meta={"description": ""})
    room = 1024 * 1024 - len(json.dumps(model))
    model["meta"]["description"] = "x" * room
    assert len(json.dumps(model)) == 1024 * 1024
    assert post(web, model).status == 200


def test_database_unavailable_is_503(web: Registry, unique_id: str):
    assert post(web, minimal(unique_id)).status == 200  # key cached
    with database_locked(web.database_url):
        response = post(web, minimal(unique_id + "-blocked"))
    assert_detail(response, 503, "Service Unavailable")


def test_internal_error_is_500(database_url_factory: Callable[[], str]):
    url = database_url_factory()
    registry = start_registry(url, http=True)
    try:
        execute(url, "ALTER TABLE models RENAME TO models_elsewhere")
        response = post(registry, minimal("m"))
        assert_detail(response, 500, "Internal Server Error")
    finally:
        assert registry.stop() == 0


def test_backend_down_is_503():
    async def scenario() -> HttpResponse:
        options = EnvoyOptions(port=free_port())
        envoy = EnvoyProcess(options, endpoints=[("127.0.0.1", free_port())])
        await envoy.start()
        try:
            return await asyncio.to_thread(
                http_request,
                options.port,
                "POST",
                "/api/models/create",
                minimal("m"),
                key=ADMIN_KEY,
            )
        finally:
            await envoy.stop()

    assert_detail(asyncio.run(scenario()), 503, "Service Unavailable")


def test_details_never_echo_what_was_sent(web: Registry, unique_id: str):
    model = minimal(unique_id, name='é"x<\\')
    detail = assert_detail(post(web, {**model, "id": 'é"x<' + "\t"}), 400)
    assert detail == "id must not contain whitespace or control characters"
    response = post(web, '{"id": "m", "name": "n", "params": {}, "meta": {}, "is_active": "é\\""}')
    assert_detail(response, 400, "is_active must be true or false")
    grants = [{"access_type": "user", "principal_type": 'gr"oup\u0001', "permission": "read"}]
    detail = assert_detail(post(web, minimal(unique_id, access_grants=grants)), 400)
    assert detail == (
        "access_grants[0] gives access_type and principal_type with different values:"
        " send one of the two spellings"
    )


@pytest.mark.parametrize("body", ["", "{}"])
def test_empty_bodies_are_400(web: Registry, body: str):
    assert_detail(post(web, body), 400, "id is required and must not be empty")
    detail = "Invalid JSON: the body ends too early at line 2, column 1"
    assert_detail(post(web, " \n"), 400, detail)


def test_a_body_that_is_not_an_object_is_400(web: Registry):
    for body in ["null", "[]", '"m"', "5", "true"]:
        assert_detail(post(web, body), 400, "The request body must be a JSON object")


@pytest.mark.parametrize("value", ['"yes"', '"true"', '"false"', '"1"', '"no"'])
def test_is_active_must_be_a_json_boolean(web: Registry, unique_id: str, value: str):
    body = (
        f'{{"id": "{unique_id}", "name": "n", "params": {{}}, "meta": {{}}, "is_active": {value}}}'
    )
    assert_detail(post(web, body), 400, "is_active must be true or false")
    assert stored(web, unique_id) is None


def test_is_active_strings_nested_in_params_or_meta_are_fine(web: Registry, unique_id: str):
    model = minimal(unique_id, params={"is_active": "yes"}, meta={"x": [{"is_active": "no"}]})
    body = post(web, model).json()
    assert body["params"] == {"is_active": "yes"} and body["is_active"] is True


def test_body_limit_is_a_setting(tmp_path: Path):
    registry = start_registry(
        f"sqlite:///{tmp_path / 'r.db'}", http=True, extra_args=("--max-body-bytes", "3145728")
    )
    try:
        two_mib = minimal("two-mib", meta={"description": "x" * (2 * 1024 * 1024)})
        assert post(registry, two_mib).status == 200
        four_mib = minimal("four-mib", meta={"description": "x" * (4 * 1024 * 1024)})
        # Envoy answers 413 and closes while the client is still sending the
        # rest of 4 MiB; the kernel may then reset the connection before the
        # client reads the answer (seen on HEAD's envoy.yaml too). Retried.
        for attempt in range(5):
            try:
                response = post(registry, four_mib)
                break
            except ConnectionResetError:
                if attempt == 4:
                    raise
        assert_detail(response, 413, "Request body too large")
        assert stored(registry, "four-mib") is None
    finally:
        assert registry.stop() == 0


def test_envoy_goes_when_the_server_is_killed(tmp_path: Path):
    import signal

    registry = start_registry(f"sqlite:///{tmp_path / 'r.db'}", http=True)
    registry.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            http_request(registry.http_port, "GET", "/")
        except OSError:
            return  # nothing listens any more
        time.sleep(0.1)
    raise AssertionError("Envoy outlived the killed server")


@pytest.mark.parametrize("depth", [30, 60, 5000])
def test_deeply_nested_params_are_400(web: Registry, depth: int):
    body = f'{{"id": "deep-{depth}", "name": "n", "meta": {{}}, "params": '
    body += '{"a":' * depth + "1" + "}" * depth + "}"
    detail = assert_detail(post(web, body), 400)
    assert "deep" in detail
    assert stored(web, f"deep-{depth}") is None


def test_base_model_id_null_survives_escaped_ids(web: Registry):
    user = 'q"u\\ser'
    key = web.add_user(user, can_create=True)
    model_id = 'a"b\\c<\u00e9>'
    body = post(web, minimal(model_id), key=key).json()
    assert (body["id"], body["user_id"], body["base_model_id"]) == (model_id, user, None)
    assert list(body) == [*SPEC_RESPONSE, "version_id"]
