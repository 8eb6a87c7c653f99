"""Every rule of CreateModel and every limit of the README, at its edge: the
last accepted value and the first rejected one, over gRPC and as JSON through
Envoy, with the exact status, message and stored row."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from spec_examples import minimal
from support import (
    ADMIN_KEY,
    Client,
    Registry,
    as_json,
    http_request,
    model_request,
    query,
    start_registry,
    status_details,
)

MIB = 1024 * 1024
SURFACES = ["grpc", "http"]
ROOT = Path(__file__).resolve().parent.parent

ID_TOO_LONG = "Model ID is too long (max 256 characters)"
ID_BAD_CHARACTERS = "id must not contain whitespace or control characters"
BASE_TOO_LONG = "base_model_id is too long (max 256 characters)"
BASE_BAD_CHARACTERS = "base_model_id must not contain whitespace or control characters"
DEFAULT_URL = "/static/favicon.png"
PROFILE_IMAGE_URL = (
    "meta.profile_image_url must be an http(s) URL, a path starting with '/' or a data:image/ URI"
)

# Whitespace, control and invisible formatting characters, one of each kind.
FORBIDDEN_IN_IDS = {
    "space": "a b",
    "tab": "tab\there",
    "newline": "new\nline",
    "control": "ctl\x01x",
    "delete": "del\x7fx",
    "no-break space": "nb\u00a0sp",
    "ideographic space": "wide\u3000space",
    "line separator": "line\u2028sep",
    "zero-width space": "zero\u200bwidth",
    "zero-width joiner": "zw\u200dj",
    "soft hyphen": "soft\u00adhyphen",
    "byte order mark": "\ufeffbom",
    "bidi override": "bidi\u202eoverride",
}


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Registry]:
    """One server with Envoy in front, on each backend; both surfaces."""
    running = start_registry(database_url_factory(), http=True)
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def grpc_client(web: Registry) -> Iterator[Client]:
    with grpc.insecure_channel(web.grpc_target) as channel:
        yield Client(channel, ADMIN_KEY)


class Surface:
    """CreateModel over one surface, answers in one shape."""

    def __init__(self, name: str, web: Registry, client: Client) -> None:
        self.name, self.web, self.client = name, web, client

    def accepted(self, model: dict[str, Any]) -> dict[str, Any]:
        """The created model as JSON; fails unless the create succeeded."""
        if self.name == "grpc":
            return as_json(self.client.create(model))
        response = http_request(
            self.web.http_port, "POST", "/api/models/create", model, key=ADMIN_KEY
        )
        assert response.status == 200, (response.status, response.body)
        return response.json()

    def invalid(self, model: dict[str, Any], field: str, message: str) -> None:
        """Rejected as INVALID_ARGUMENT / 400 with exactly `message`, naming
        `field` (and only it), and nothing stored."""
        if self.name == "grpc":
            error = self.client.create_error(model)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
            assert error.details() == message
            details = status_details(error)
            assert details["ErrorInfo"].reason == "INVALID_ARGUMENT"
            violations = [(v.field, v.description) for v in details["BadRequest"].field_violations]
            assert violations == [(field, message)]
        else:
            response = http_request(
                self.web.http_port, "POST", "/api/models/create", model, key=ADMIN_KEY
            )
            assert (response.status, response.json()) == (400, {"detail": message})
        if isinstance(model.get("id"), str):
            assert stored(self.web, model["id"]) is None


@pytest.fixture(params=SURFACES)
def surface(request: pytest.FixtureRequest, web: Registry, grpc_client: Client) -> Surface:
    return Surface(request.param, web, grpc_client)


def stored(web: Registry, model_id: str) -> dict[str, Any] | None:
    rows = query(
        web.database_url,
        "SELECT base_model_id, name, params, meta FROM models WHERE id = :id",
        id=model_id,
    )
    if not rows:
        return None
    row = rows[0]._asdict()
    for column in ("params", "meta"):
        if isinstance(row[column], str):  # SQLite returns the JSON text
            row[column] = json.loads(row[column])
    return row


def nested(depth: int, *, kind: str = "object") -> Any:
    """A value with `depth` levels of objects (or arrays) inside it."""
    value: Any = {} if kind == "object" else []
    for _ in range(depth - 1):
        value = {"a": value} if kind == "object" else [value]
    return value


# -- id and base_model_id ------------------------------------------------------------


@pytest.mark.parametrize("unit", ["x", "é", "😀"])
def test_256_characters_are_accepted_in_id_and_base_model_id(
    surface: Surface, unique_id: str, unit: str
):
    model_id = (unique_id + "-" + unit * 256)[:256]
    base = unit * 256
    created = surface.accepted(minimal(model_id, base_model_id=base))
    assert (created["id"], created["base_model_id"]) == (model_id, base)
    assert stored(surface.web, model_id)["base_model_id"] == base


@pytest.mark.parametrize("unit", ["x", "é", "😀"])
def test_257_characters_are_too_long_in_id_and_base_model_id(
    surface: Surface, unique_id: str, unit: str
):
    surface.invalid(minimal(unique_id + unit * 257), "id", ID_TOO_LONG)
    surface.invalid(minimal(unique_id, base_model_id=unit * 257), "base_model_id", BASE_TOO_LONG)


@pytest.mark.parametrize("value", FORBIDDEN_IN_IDS.values(), ids=FORBIDDEN_IN_IDS.keys())
def test_whitespace_control_and_formatting_characters_are_refused_in_ids(
    surface: Surface, unique_id: str, value: str
):
    surface.invalid(minimal(f"{unique_id}-{value}"), "id", ID_BAD_CHARACTERS)
    model = minimal(unique_id, base_model_id=value)
    surface.invalid(model, "base_model_id", BASE_BAD_CHARACTERS)


def test_empty_base_model_id_is_refused_and_absent_is_null(surface: Surface, unique_id: str):
    model = minimal(unique_id, base_model_id="")
    if surface.name == "grpc":
        error = surface.client.create_error(model)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("base_model_id ")
    else:
        response = http_request(
            surface.web.http_port, "POST", "/api/models/create", model, key=ADMIN_KEY
        )
        assert response.status == 400
        assert response.json()["detail"].startswith("base_model_id ")
    assert stored(surface.web, unique_id) is None
    created = surface.accepted(minimal(unique_id))
    assert created.get("base_model_id") is None
    assert stored(surface.web, unique_id)["base_model_id"] is None


@pytest.mark.parametrize("value", ["ünïcödé-模型", "e\u0301", "a/b:c@d", "עברית", "gpt-4o"])
def test_printable_unicode_base_model_ids_are_kept(surface: Surface, unique_id: str, value: str):
    created = surface.accepted(minimal(unique_id, base_model_id=value))
    assert created["base_model_id"] == value
    assert stored(surface.web, unique_id)["base_model_id"] == value


# -- nesting inside params and meta ----------------------------------------------------


@pytest.mark.parametrize("kind", ["object", "array"])
@pytest.mark.parametrize("where", ["params", "meta"])
def test_nesting_at_the_limit_is_kept_and_one_more_level_is_refused(
    surface: Surface, unique_id: str, where: str, kind: str
):
    at_limit = {"deep": nested(24, kind=kind)}
    created = surface.accepted(minimal(unique_id, **{where: at_limit}))
    expected = at_limit if where == "params" else {**at_limit, "profile_image_url": DEFAULT_URL}
    assert created[where] == expected
    assert stored(surface.web, unique_id)[where] == expected

    too_deep = {"deep": nested(25, kind=kind)}
    model = minimal(unique_id + "-deeper", **{where: too_deep})
    surface.invalid(model, where, f"{where} nests deeper than 24 levels")


# -- the other rules, at their edges --------------------------------------------------


@pytest.mark.parametrize(
    ("model_fields", "field", "message"),
    [
        ({"name": ""}, "name", "name is required and must not be empty"),
        ({"name": " \t"}, "name", "name is required and must not be empty"),
        ({"params": {"max_tokens": 0}}, "params.max_tokens", None),
        ({"params": {"max_tokens": 2.5}}, "params.max_tokens", None),
        ({"params": {"temperature": "0.7"}}, "params.temperature", None),
        ({"params": {"top_p": True}}, "params.top_p", None),
        ({"params": {"frequency_penalty": {}}}, "params.frequency_penalty", None),
        ({"params": {"presence_penalty": []}}, "params.presence_penalty", None),
        ({"meta": {"profile_image_url": "javascript:alert(1)"}}, "meta.profile_image_url", None),
        ({"meta": {"profile_image_url": "http://"}}, "meta.profile_image_url", None),
        ({"meta": {"description": 1}}, "meta.description", None),
        ({"meta": {"capabilities": ["vision"]}}, "meta.capabilities", None),
        (
            {"access_grants": [{"access_type": "team", "access_id": "a", "permission": "read"}]},
            "access_grants[0].access_type",
            None,
        ),
        (
            {"access_grants": [{"access_type": "user", "access_id": "", "permission": "read"}]},
            "access_grants[0].access_id",
            None,
        ),
        (
            {"access_grants": [{"access_type": "group", "access_id": "g", "permission": "own"}]},
            "access_grants[0].permission",
            None,
        ),
    ],
)
def test_each_rule_refuses_its_first_bad_value(
    surface: Surface, unique_id: str, model_fields: dict, field: str, message: str | None
):
    model = {**minimal(unique_id), **model_fields}
    if message is None:
        # The message names the field first; its wording is the server's.
        message = _message_for(surface, model)
        assert message.startswith(field + " "), message
    surface.invalid(model, field, message)


def _message_for(surface: Surface, model: dict) -> str:
    if surface.name == "grpc":
        return surface.client.create_error(model).details()
    response = http_request(
        surface.web.http_port, "POST", "/api/models/create", model, key=ADMIN_KEY
    )
    return response.json()["detail"]


def test_each_rule_keeps_its_last_good_value(surface: Surface, unique_id: str):
    model = minimal(
        unique_id,
        name=" x ",
        params={
            "max_tokens": 1,
            "temperature": 0,
            "top_p": -0.0,
            "frequency_penalty": -2.5,
            "presence_penalty": 2**53,
        },
        meta={
            "profile_image_url": "http://h",
            "description": "",
            "capabilities": {},
        },
        access_grants=[
            {"access_type": "user", "access_id": "x", "permission": "read"},
            {"access_type": "group", "access_id": "x", "permission": "write"},
            {"access_type": "user", "access_id": "x", "permission": "read"},
        ],
        is_active=False,
    )
    created = surface.accepted(model)
    assert created["name"] == " x "
    assert created["params"] == model["params"]
    assert created["meta"] == model["meta"]
    assert created["access_grants"] == model["access_grants"][:2]
    assert created["is_active"] is False
    row = stored(surface.web, unique_id)
    assert row["params"] == model["params"] and row["meta"] == model["meta"]
    assert type(row["params"]["max_tokens"]) is int
    assert type(row["params"]["presence_penalty"]) is int


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/static/a b.png",
        "https://h/x.png",
        "HTTPS://H/x.png",
        "data:image/x,",
        "DATA:IMAGE/y,",
    ],
)
def test_profile_image_url_edges_that_are_image_sources(surface: Surface, unique_id: str, url: str):
    created = surface.accepted(minimal(unique_id, meta={"profile_image_url": url}))
    assert created["meta"] == {"profile_image_url": url}
    assert stored(surface.web, unique_id)["meta"] == {"profile_image_url": url}


@pytest.mark.parametrize("url", ["relative.png", "data:text/plain,x", "ftp://h/x", "https:/x"])
def test_profile_image_url_edges_that_are_not(surface: Surface, unique_id: str, url: str):
    model = minimal(unique_id, meta={"profile_image_url": url})
    surface.invalid(model, "meta.profile_image_url", PROFILE_IMAGE_URL)


def test_values_sent_for_server_fields_are_ignored(surface: Surface, unique_id: str):
    model = minimal(unique_id, user_id="mallory", created_at=1, updated_at=2)
    created = surface.accepted(model)
    assert created["user_id"] == "admin"
    assert int(created["created_at"]) == int(created["updated_at"]) > 2
    row = query(
        surface.web.database_url,
        "SELECT user_id, created_at, updated_at FROM models WHERE id = :id",
        id=unique_id,
    )
    when = int(created["created_at"])
    assert [tuple(r) for r in row] == [("admin", when, when)]


def test_nan_and_infinity_are_refused_over_grpc(grpc_client: Client, web: Registry, unique_id):
    for where in ("params", "meta"):
        for number in (float("nan"), float("inf"), float("-inf")):
            request = model_request(minimal(unique_id))
            getattr(request.model, where).update({"x": [number]})
            with pytest.raises(grpc.RpcError) as caught:
                grpc_client.stub.CreateModel(
                    request, metadata=[("authorization", f"Bearer {ADMIN_KEY}")], timeout=10
                )
            message = f"{where} must not contain NaN or infinite numbers"
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details() == message
    assert stored(web, unique_id) is None


# -- limits ------------------------------------------------------------------------------


def test_http_body_at_the_limit_is_served_and_one_byte_more_is_413(web: Registry, unique_id):
    model = minimal(unique_id, meta={"description": ""})
    model["meta"]["description"] = "x" * (MIB - len(json.dumps(model)))
    body = json.dumps(model).encode()
    assert len(body) == MIB
    assert (
        http_request(web.http_port, "POST", "/api/models/create", body, key=ADMIN_KEY).status == 200
    )

    over = minimal(unique_id + "-over", meta={"description": ""})
    over["meta"]["description"] = "x" * (MIB + 1 - len(json.dumps(over)))
    body = json.dumps(over).encode()
    assert len(body) == MIB + 1
    response = http_request(web.http_port, "POST", "/api/models/create", body, key=ADMIN_KEY)
    assert (response.status, response.json()) == (413, {"detail": "Request body too large"})
    assert stored(web, unique_id + "-over") is None


def sized_request(model_id: str, size: int):
    """A CreateModel request of exactly `size` bytes. The padding is in the
    server-set user_id, which the reply does not echo, so the reply is smaller
    than the request and only the request's size is under test."""
    request = model_request(minimal(model_id, name="n"))
    request.model.user_id = "u" * (size - request.ByteSize())
    while request.ByteSize() > size:  # the length prefix grew with the padding
        request.model.user_id = request.model.user_id[:-1]
    assert request.ByteSize() == size
    return request


def assert_message_limit(target: str, limit: int, unique_id: str, database_url: str) -> None:
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(target, options=options) as channel:
        client = Client(channel, ADMIN_KEY)
        metadata = [("authorization", f"Bearer {ADMIN_KEY}")]
        created = client.stub.CreateModel(
            sized_request(unique_id, limit), metadata=metadata, timeout=60
        )
        assert created.id == unique_id and created.user_id == "admin"
        with pytest.raises(grpc.RpcError) as caught:
            client.stub.CreateModel(
                sized_request(unique_id + "-over", limit + 1), metadata=metadata, timeout=60
            )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{limit + 1} vs. {limit}" in caught.value.details()
    rows = query(database_url, "SELECT id FROM models WHERE id LIKE :p", p=unique_id + "%")
    assert [r.id for r in rows] == [unique_id]


def test_grpc_message_limit_is_4_mib_by_default(web: Registry, unique_id: str):
    assert_message_limit(web.grpc_target, 4 * MIB, unique_id, web.database_url)


def test_a_create_just_under_the_message_limit_is_answered(web: Registry, unique_id: str):
    request = model_request(minimal(unique_id, name="n"))
    request.model.name = "n" * (4 * MIB - 16 - request.ByteSize())
    while request.ByteSize() > 4 * MIB - 16:  # the name's length prefix grew
        request.model.name = request.model.name[:-1]
    assert request.ByteSize() == 4 * MIB - 16
    options = [("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(web.grpc_target, options=options) as channel:
        client = Client(channel, ADMIN_KEY)
        created = client.stub.CreateModel(
            request, metadata=[("authorization", f"Bearer {ADMIN_KEY}")], timeout=60
        )
    assert created.id == unique_id
    rows = query(web.database_url, "SELECT id FROM models WHERE id = :id", id=unique_id)
    assert [r.id for r in rows] == [unique_id]


def test_grpc_message_limit_is_twice_a_larger_body_limit(tmp_path: Path, unique_id: str):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    registry = start_registry(url, http=True, extra_args=("--max-body-bytes", str(3 * MIB)))
    try:
        assert_message_limit(registry.grpc_target, 6 * MIB, unique_id, url)
        # and a body at the new HTTP limit is transcoded and served
        model = minimal(unique_id + "-http", meta={"description": ""})
        model["meta"]["description"] = "é" * ((3 * MIB - len(json.dumps(model))) // 2)
        body = json.dumps(model, ensure_ascii=False).encode()
        body += b" " * (3 * MIB - len(body))
        assert len(body) == 3 * MIB
        response = http_request(
            registry.http_port, "POST", "/api/models/create", body, key=ADMIN_KEY
        )
        assert response.status == 200, response.body[:200]
    finally:
        assert registry.stop() == 0


def _route_timeouts(config: dict) -> list[dict]:
    """The `route` of every route of envoy.yaml that has a timeout."""
    found = []
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                route_config = network_filter.get("typed_config", {}).get("route_config", {})
                for host in route_config.get("virtual_hosts", []):
                    for route in host["routes"]:
                        if "timeout" in route.get("route", {}):
                            found.append(route["route"])
    return found


def test_a_request_through_envoy_times_out_after_15_s_with_504(tmp_path: Path):
    """The shipped route timeout is 15 s; the same config with it at 1 s
    (serve --envoy-config) shows what a client gets when it passes."""
    config = yaml.safe_load((ROOT / "envoy.yaml").read_text())
    routes = _route_timeouts(config)
    assert routes and {route["timeout"] for route in routes} == {"15s"}
    for route in routes:
        route["timeout"] = "1s"
    short = tmp_path / "envoy-short-timeout.yaml"
    # Relative paths in the config (the descriptor set) are the project's.
    short.write_text(yaml.safe_dump(config))

    url = f"sqlite:///{tmp_path / 'r.db'}"
    registry = start_registry(url, http=True, extra_args=("--envoy-config", str(short)))
    try:
        warm = http_request(
            registry.http_port, "POST", "/api/models/create", minimal("warm"), key=ADMIN_KEY
        )
        assert warm.status == 200  # the key is cached; only the write will wait
        with sqlite_write_lock(url):
            response = http_request(
                registry.http_port, "POST", "/api/models/create", minimal("slow"), key=ADMIN_KEY
            )
        assert response.status == 504
        assert response.json() == {"detail": "upstream request timeout"}
    finally:
        assert registry.stop() == 0


class sqlite_write_lock:  # noqa: N801 - used as a context manager
    """Holds the write lock of an SQLite database: writers wait (busy timeout)."""

    def __init__(self, url: str) -> None:
        import sqlite3

        self._connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)

    def __enter__(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, *exc: object) -> None:
        self._connection.execute("ROLLBACK")
        self._connection.close()
