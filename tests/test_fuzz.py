"""Generated hostile requests, over gRPC and as JSON through Envoy.

Property: every answer is a success or a client error with a message, never
INTERNAL/UNKNOWN or a 5xx, never a hang; a rejected create writes no row.
The regular run tries FUZZ_EXAMPLES (default 40) cases per surface;
`python3 tasks.py fuzz` tries 10,000 and prints the counts."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator

import grpc
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spec_examples import SPEC_REQUEST
from support import ADMIN_KEY, Registry, http_request, model_request, start_registry

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
CLIENT_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
CLIENT_STATUSES = {200, 400, 401, 404, 413}
_engines: dict[str, sa.Engine] = {}  # one per registry, to read its rows
SEEN: dict[str, Counter] = {"grpc": Counter(), "http": Counter(), "grpc-bytes": Counter()}

# -- strategies ------------------------------------------------------------------

edge_text = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\ud800",  # lone surrogates: JSON can escape them, UTF-8 cannot hold them
            "a\udfffb",
            "\u200f\u0627\u0644\u0645",  # right-to-left
            "\u0301",  # a lone combining mark
            "\u202eabc",
            "e\u0301",
            "\ufeff",
            "é" * 256,
            "é" * 257,
            "x" * 257,
            "😀" * 100,
            "\n",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "/static/x.png",
            "//evil",
            "null",
        ]
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    edge_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(edge_text, children, max_size=4)
    ),
    max_leaves=30,
)
auth_values = st.one_of(
    st.just(f"Bearer {ADMIN_KEY}"),
    st.just(f"bearer {ADMIN_KEY}"),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    st.sampled_from(
        ["Bearer", "Bearer ", "Basic x", f"Bearer {ADMIN_KEY}x", f"Bearer  {ADMIN_KEY}"]
    ),
)
FIELDS = [
    "id",
    "name",
    "base_model_id",
    "params",
    "meta",
    "access_grants",
    "is_active",
    "user_id",
    "created_at",
    "updated_at",
    "extra",
]


@st.composite
def http_bodies(draw) -> tuple[str | None, bytes]:
    """A JSON body: the spec's example with fields dropped, replaced or added,
    or now and then arbitrary JSON or bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None, draw(st.binary(max_size=200))
    if kind == 1:
        return None, json.dumps(draw(json_values)).encode()
    model = dict(SPEC_REQUEST)
    model["id"] = draw(st.one_of(edge_text, json_values))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            model.pop(field, None)
        else:
            model[field] = draw(json_values)
    if draw(st.booleans()):
        depth = draw(st.integers(1, 300))
        model["params"] = json.loads('{"a":' * depth + "1" + "}" * depth)
    model_id = model.get("id") if isinstance(model.get("id"), str) else None
    return model_id, json.dumps(model).encode()


grpc_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300)


@st.composite
def grpc_models(draw) -> dict:
    model = {
        "id": draw(st.one_of(grpc_text, st.sampled_from(["é" * 256, "é" * 257, "", " a"]))),
        "name": draw(grpc_text),
    }
    for field in ("params", "meta"):
        if draw(st.integers(0, 4)):
            value = draw(st.dictionaries(grpc_text, json_values.filter(_no_surrogates), max_size=5))
            model[field] = value
    if draw(st.booleans()):
        model["base_model_id"] = draw(grpc_text)
    if draw(st.booleans()):
        model["is_active"] = draw(st.booleans())
    model["access_grants"] = draw(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "access_type": st.one_of(grpc_text, st.sampled_from(["user", "group"])),
                    "access_id": grpc_text,
                    "permission": st.one_of(grpc_text, st.sampled_from(["read", "write"])),
                },
            ),
            max_size=4,
        )
    )
    return model


def _encodable(text: str) -> bool:
    try:
        text.encode()
        return True
    except UnicodeEncodeError:  # a lone surrogate
        return False


def _no_surrogates(value) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
        return True
    except UnicodeEncodeError:
        return False


# -- the property ------------------------------------------------------------------


@pytest.fixture(scope="module")
def target(database_url_factory: Callable[[], str]) -> Iterator[Registry]:
    registry = start_registry(database_url_factory(), http=True)
    _engines[registry.database_url] = sa.create_engine(registry.database_url)
    yield registry
    _engines.pop(registry.database_url).dispose()
    assert registry.stop() == 0
    backend = registry.database_url.split(":", 1)[0]
    for surface, counts in SEEN.items():
        if counts:
            print(f"\nfuzz {surface} on {backend}: {sum(counts.values())} cases: {dict(counts)}")
        counts.clear()
    log = "".join(registry.output)
    assert "Traceback" not in log and ADMIN_KEY not in log


def row_exists(registry: Registry, model_id: str) -> bool:
    if "\x00" in model_id or not _encodable(model_id):
        return False  # no database can be asked this; the service rejects such ids
    with _engines[registry.database_url].connect() as connection:
        query = sa.text("SELECT 1 FROM models WHERE id = :id")
        return connection.execute(query, {"id": model_id}).first() is not None


@FUZZ
@given(body=http_bodies(), authorization=auth_values)
def test_http_answers_are_success_or_client_errors(target: Registry, body, authorization):
    model_id, payload = body
    existed = model_id is not None and row_exists(target, model_id)
    response = http_request(
        target.http_port,
        "POST",
        "/api/models/create",
        payload,
        headers={"Authorization": authorization},
    )
    SEEN["http"][response.status] += 1
    assert response.status in CLIENT_STATUSES, (response.status, response.body)
    assert response.headers["content-type"] == "application/json"
    answer = json.loads(response.body)
    if response.status == 200:
        assert answer["id"] == model_id and row_exists(target, model_id)
    else:
        assert list(answer) == ["detail"] and answer["detail"]
        if model_id is not None and not existed:
            assert not row_exists(target, model_id)


@FUZZ
@given(model=grpc_models(), authorization=auth_values)
def test_grpc_answers_are_success_or_client_errors(target: Registry, model, authorization):
    model_id = model["id"]
    existed = row_exists(target, model_id)
    with grpc.insecure_channel(target.grpc_target) as channel:
        from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

        stub = pb_grpc.ModelServiceStub(channel)
        try:
            stub.CreateModel(
                model_request(model), metadata=[("authorization", authorization)], timeout=10
            )
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
            assert error.details()
    SEEN["grpc"][code.name] += 1
    assert code in CLIENT_CODES
    if code is grpc.StatusCode.OK:
        assert row_exists(target, model_id)
    elif not existed:
        assert not row_exists(target, model_id)


@FUZZ
@given(payload=st.binary(max_size=500))
def test_grpc_garbage_bytes_are_client_errors(target: Registry, payload: bytes):
    with grpc.insecure_channel(target.grpc_target) as channel:
        call = channel.unary_unary(
            "/modelregistry.v1.ModelService/CreateModel",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            call(payload, metadata=[("authorization", f"Bearer {ADMIN_KEY}")], timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
    SEEN["grpc-bytes"][code.name] += 1
    assert code in CLIENT_CODES
