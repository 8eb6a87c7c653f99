"""Bodies that are not a model's JSON get a 400 whose detail speaks the
user's JSON: field paths as sent, line and column, never protobuf's words or
bytes of the body."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spec_examples import minimal
from support import ADMIN_KEY, HttpResponse, Registry, http_request, query, start_registry

PATHS = ["/api/models/create", "/api/v1/models/create"]


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Registry]:
    running = start_registry(database_url_factory(), http=True)
    yield running
    assert running.stop() == 0


def post(web: Registry, body: bytes | str, path: str = PATHS[0]) -> HttpResponse:
    return http_request(web.http_port, "POST", path, body, key=ADMIN_KEY)


def detail_of(response: HttpResponse) -> str:
    assert response.status == 400, (response.status, response.body)
    body = response.json()
    assert list(body) == ["detail"]
    return body["detail"]


def with_key(key: str, raw_value: str) -> str:
    """A valid model's JSON with `key` set to the literal `raw_value`."""
    fields = {"id": '"m"', "name": '"n"', "params": "{}", "meta": "{}", key: raw_value}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


WRONG_TYPES = [
    ("id", "5", "id must be a string"),
    ("id", "{}", "id must be a string"),
    ("name", "true", "name must be a string"),
    ("name", '["n"]', "name must be a string"),
    ("base_model_id", "7", "base_model_id must be a string"),
    ("params", '"x"', "params must be an object"),
    ("params", "[]", "params must be an object"),
    ("params", "1", "params must be an object"),
    ("meta", "[]", "meta must be an object"),
    ("meta", "[1]", "meta must be an object"),
    ("meta", "false", "meta must be an object"),
    ("access_grants", "{}", "access_grants must be an array"),
    ("access_grants", '"g"', "access_grants must be an array"),
    ("access_grants", "[1]", "access_grants[0] must be an object"),
    ("access_grants", "[null]", "access_grants[0] must be an object"),
    ("access_grants", '[{"permission": "read"}, []]', "access_grants[1] must be an object"),
    ("access_grants", '[{"access_type": 1}]', "access_grants[0].access_type must be a string"),
    ("access_grants", '[{"access_id": []}]', "access_grants[0].access_id must be a string"),
    ("access_grants", '[{"permission": true}]', "access_grants[0].permission must be a string"),
    (
        "access_grants",
        '[{"principal_type": 2}]',
        "access_grants[0].principal_type must be a string",
    ),
    ("access_grants", '[{"principal_id": {}}]', "access_grants[0].principal_id must be a string"),
    ("is_active", '"true"', "is_active must be true or false"),
    ("is_active", "1", "is_active must be true or false"),
    ("is_active", "[]", "is_active must be true or false"),
    ("isActive", '"no"', "is_active must be true or false"),  # the JSON name reads the same
    ("commit_message", "5", "commit_message must be a string"),
    ("commit_message", "{}", "commit_message must be a string"),
    ("created_at", '"abc"', "created_at must be an integer"),
    ("created_at", "1.5", "created_at must be an integer"),
    ("updated_at", "[]", "updated_at must be an integer"),
    ("updated_at", "9223372036854775808", "updated_at must be an integer"),
    ("updated_at", '"-9223372036854775809"', "updated_at must be an integer"),
    ("updated_at", "1e3", "updated_at must be an integer"),
    ("user_id", "5", "user_id must be a string"),
    ("", "1", "The request body has a key that is an empty string"),
    ("access_grants", '[{"": "x"}]', "access_grants[0] has a key that is an empty string"),
    ("meta", '{"x": 1e999}', "meta holds a number too large to store"),
    ("params", '{"a": [-1e400]}', "params holds a number too large to store"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("key", "value", "detail"), WRONG_TYPES)
def test_a_wrong_json_type_names_the_field(
    web: Registry, path: str, key: str, value: str, detail: str
):
    assert detail_of(post(web, with_key(key, value), path)) == detail


def test_unknown_keys_of_any_type_are_ignored(web: Registry, unique_id: str):
    body = json.dumps({**minimal(unique_id), "extra": [1, {"a": None}], "tags": "x"})
    response = post(web, body)
    assert response.status == 200 and "extra" not in response.json()


MALFORMED = [
    (b'{"id": "m", "name": ', "the body ends too early at line 1, column 21"),
    (b'{"id": "m"', "the body ends too early at line 1, column 11"),
    (b'{"id": "m', "a string is not closed at line 1, column 10"),
    (
        b'{"id": "m",\n  "name": "n",\n  "params": {,}}',
        "expected a key in double quotes at line 3, column 14",
    ),
    (b'{"id" "m"}', "expected ':' after a key at line 1, column 7"),
    (b'{"id": "m" "name": "n"}', "expected ',' or '}' at line 1, column 12"),
    (b'{"access_grants": [1 2]}', "expected ',' or ']' at line 1, column 22"),
    (b'{"id": "m",}', "expected a key in double quotes at line 1, column 12"),
    (b"{'id': 'm'}", "expected a key in double quotes at line 1, column 2"),
    (b'{"id": "a\\qb"}', "invalid escape sequence in a string at line 1, column 10"),
    (b'{"id": "a\\ud800"}', "invalid escape sequence in a string at line 1, column 10"),
    (b'{"id": "a\tb"}', "unescaped control character in a string at line 1, column 10"),
    (b'{"params": {"t": 01}}', "invalid number at line 1, column 18"),
    (b'{"params": {"t": 1.}}', "invalid number at line 1, column 19"),
    (b'{"params": {"t": NaN}}', "unexpected character at line 1, column 18"),
    (b'{"params": {"t": Infinity}}', "unexpected character at line 1, column 18"),
    (b"{} {}", "unexpected text after the JSON value at line 1, column 4"),
    (b"not json", "unexpected character at line 1, column 1"),
    (b"\xef\xbb\xbf{}", "unexpected character at line 1, column 1"),  # a byte order mark
    (b'{"id": "\xff"}', "the body is not valid UTF-8 at line 1, column 9"),
    (b'{"id": "\xc3"}', "the body is not valid UTF-8 at line 1, column 9"),
    (b'{"id": "\xc0\xaf"}', "the body is not valid UTF-8 at line 1, column 9"),  # overlong
    (b'{"id": "\xed\xa0\x80"}', "the body is not valid UTF-8 at line 1, column 9"),  # surrogate
    (
        b'{"name": "\xc3\xa9\xc3\xa9", "id": "\x80"}',
        "the body is not valid UTF-8 at line 1, column 23",
    ),
    (b'\xff\xfe{"id": "m"}', "the body is not valid UTF-8 at line 1, column 1"),
]


@pytest.mark.parametrize(("body", "reason"), MALFORMED, ids=[repr(b) for b, _ in MALFORMED])
def test_malformed_json_says_what_and_where(web: Registry, body: bytes, reason: str):
    assert detail_of(post(web, body)) == f"Invalid JSON: {reason}"


def containers(count: int, kind: str) -> str:
    """`count` arrays or objects, each inside the one before."""
    if kind == "array":
        return "[" * count + "]" * count
    return '{"a": ' * (count - 1) + "{}" + "}" * (count - 1)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("levels", [25, 30, 31, 200, 100_000])
@pytest.mark.parametrize("field", ["params", "meta"])
def test_nesting_past_the_limit_names_the_field(web: Registry, field: str, levels: int, kind: str):
    body = with_key(field, '{"x": ' + containers(levels, kind) + "}")
    assert detail_of(post(web, body)) == f"{field} nests deeper than 24 levels"


def test_nesting_at_the_limit_is_stored(web: Registry, unique_id: str):
    for kind in ("array", "object"):
        model_id = f"{unique_id}-{kind}"
        inner = containers(24, kind)
        body = json.dumps(minimal(model_id))[:-1] + ', "params": {"x": ' + inner + "}}"
        response = post(web, body)
        assert response.status == 200, response.body
        assert json.dumps(response.json()["params"]["x"], separators=(",", ": ")).replace(
            " ", ""
        ) == inner.replace(" ", "")
        assert query(web.database_url, "SELECT id FROM models WHERE id = :id", id=model_id)


def test_deep_nesting_outside_the_model_is_400(web: Registry):
    assert detail_of(post(web, containers(100, "array"))) == "The request body nests too deeply"
    assert detail_of(post(web, with_key("other", containers(40, "array")))) == (
        "The request body nests too deeply"
    )


# -- no detail speaks protobuf or echoes bytes ------------------------------------

PROTOBUF_WORDS = re.compile(
    r"Proto field|repeating|Message too deep|TYPE_[A-Z]+|type\.googleapis\.com|google\.protobuf"
    r"|^model[.:]|invalid value|Struct|ListValue|recursion",
)
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
model_keys = st.sampled_from(
    [
        "id",
        "name",
        "base_model_id",
        "params",
        "meta",
        "access_grants",
        "is_active",
        "commit_message",
        "created_at",
        "isActive",
        "accessGrants",
    ]
)


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    document = draw(st.dictionaries(model_keys, json_value, max_size=6))
    text = json.dumps(document).encode()
    cut = draw(st.sampled_from(["whole", "truncate", "garble"]))
    if cut == "truncate" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif cut == "garble" and text:
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.binary(min_size=1, max_size=3)) + text[at + 1 :]
    return text


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=FUZZ_EXAMPLES <= 60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=hostile_bodies())
def test_no_detail_speaks_protobuf_or_echoes_bytes(web: Registry, body: bytes):
    response = post(web, body)
    assert response.status in (200, 400), (response.status, response.body)
    if response.status == 400:
        detail = response.json()["detail"]
        assert detail.isprintable() and detail.isascii(), detail
        assert not PROTOBUF_WORDS.search(detail), detail
