"""http_face.lua, Envoy's error-shaping script, run in-process on LuaJIT (the
Lua Envoy embeds) with fake Envoy handles: milliseconds per rule."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from lupa import luajit21

from modelregistry_server.envoy.lua import lua_config, lua_source, to_lua
from modelregistry_server.transport.status import INTERNAL_MESSAGE

MODEL = "modelregistry.v1.Model"


class Lua:
    def __init__(self) -> None:
        self.runtime = luajit21.LuaRuntime(unpack_returned_tuples=True)
        # The script ends with `return M`; CONFIG is local to it, so hand it out too.
        self.M, self.CONFIG = self.runtime.execute(
            lua_source().replace("\nreturn M\n", "\nreturn M, CONFIG\n")
        )

    def check(self, body: bytes | str, message: str = MODEL) -> str | None:
        return self.M.check_request(self.CONFIG, message, body)

    def finish(self, body: str, message: str = MODEL) -> str:
        return self.M.finish_reply(self.CONFIG, message, body)

    def error(self, body: str) -> tuple[int, Any] | None:
        result = self.M.error_reply(self.CONFIG, body)
        return None if result is None else (result[0], json.loads(result[1]))


@pytest.fixture(scope="module")
def lua() -> Lua:
    return Lua()


def test_the_script_ends_by_returning_its_module():
    # The test above swaps this line; if it moved, the swap would silently fail.
    assert lua_source().endswith("\nreturn M\n")


# -- parsing ------------------------------------------------------------------


def test_parse_reads_every_json_value(lua: Lua):
    node = lua.M.parse(
        '{"a": [1, -2.5e1, "x\\u00e9\\ud83d\\ude00\\n"], "b": {"c": null}, "d": true}'
    )
    keys = node["keys"]  # (lupa tables have a keys() method of their own)
    assert node.t == "object" and [keys[i] for i in (1, 2, 3)] == ["a", "b", "d"]
    assert keys[4] is None
    items = node.map["a"]["items"]
    assert [items[1].v, items[2].v, items[3].v] == [1, -25.0, "xé😀\n"]
    assert node.map["b"].map["c"].t == "null" and node.map["d"].t == "true"


def test_parse_keeps_positions_for_splicing(lua: Lua):
    text = '{"id": "m", "n": "12"}'
    node = lua.M.parse(text)
    value = node.map["n"]
    assert text[value.s - 1 : value.e] == '"12"'
    assert (node.s, node.e) == (1, len(text))


@pytest.mark.parametrize(
    ("text", "reason", "line", "column"),
    [
        ('{"a": ', "unexpected_end", 1, 7),
        ('{\n  "a": 1,\n  "b" 2}', "expected_colon", 3, 7),
        ("[1, 2", "unexpected_end", 1, 6),
        ('"é\\x"', "invalid_escape", 1, 3),
        (b'"\xe9"', "invalid_utf8", 1, 2),
        ("[01]", "invalid_number", 1, 2),
        ("[1] 2", "trailing_characters", 1, 5),
        ("tru", "unexpected_character", 1, 1),
    ],
)
def test_parse_errors_say_why_and_where(lua: Lua, text, reason: str, line: int, column: int):
    node, problem = lua.M.parse(text)
    assert node is None
    assert (problem.reason, problem.line, problem.column) == (reason, line, column)


def test_parse_stops_at_the_depth_limit_naming_the_top_level_key(lua: Lua):
    node, problem = lua.M.parse('{"params": ' + "[" * 10 + "]" * 10 + "}", 5)
    assert node is None and problem.reason == "too_deep" and problem.key == "params"
    assert lua.M.parse("[" * 5 + "]" * 5, 5) is not None


def test_parse_survives_very_deep_input(lua: Lua):
    node, problem = lua.M.parse("[" * 1_000_000, 32)
    assert node is None and problem.reason == "too_deep"


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain", '"plain"'),
        ('q"b\\', '"q\\"b\\\\"'),
        ("\x01\n\x7f", '"\\u0001\\u000a\\u007f"'),
        ("é😀", '"é😀"'),
    ],
)
def test_quote_writes_json_string_literals(lua: Lua, text: str, literal: str):
    assert lua.M.quote(text) == literal
    assert json.loads(lua.M.quote(text)) == text


# -- requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ('{"id": "m", "name": "n", "params": {}, "meta": {}}', None),
        ("", None),  # no body: the server says what is missing
        ('{"meta": []}', "meta must be an object"),
        (
            '{"accessGrants": [{"principalId": 1}]}',
            "access_grants[0].principal_id must be a string",
        ),
        ('{"is_active": null, "base_model_id": null, "access_grants": null}', None),
        ('{"created_at": "17", "updated_at": -3}', None),
        ('{"created_at": "9223372036854775808"}', "created_at must be an integer"),
        ('{"created_at": "-9223372036854775808"}', None),
        ('{"unknown": [1e999]}', None),  # the transcoder skips unknown keys
        ('{"params": {"a": {"b": -1e999}}}', "params holds a number too large to store"),
        ("[]", "The request body must be a JSON object"),
        ("{", "Invalid JSON: the body ends too early at line 1, column 2"),
    ],
)
def test_check_request(lua: Lua, body: str, detail: str | None):
    assert lua.check(body) == detail


def test_nesting_detail_uses_the_domain_message(lua: Lua):
    body = '{"meta": {"x": ' + "[" * 40 + "]" * 40 + "}}"
    assert lua.check(body) == "meta nests deeper than 24 levels"


# -- replies ------------------------------------------------------------------


def test_reply_timestamps_become_numbers_and_base_model_id_null(lua: Lua):
    sent = (
        '{"id":"m","user_id":"u","name":"n","params":{"created_at":"5"},"meta":{},'
        '"access_grants":[],"is_active":true,"created_at":"17","updated_at":"18"}'
    )
    finished = lua.finish(sent)
    assert finished == (
        '{"id":"m","user_id":"u","base_model_id":null,"name":"n","params":{"created_at":"5"},'
        '"meta":{},"access_grants":[],"is_active":true,"created_at":17,"updated_at":18}'
    )


def test_reply_with_base_model_id_keeps_it(lua: Lua):
    sent = (
        '{"id":"m","user_id":"u","base_model_id":"b","name":"n","created_at":"1","updated_at":"2"}'
    )
    assert lua.finish(sent) == (
        '{"id":"m","user_id":"u","base_model_id":"b","name":"n","is_active":null,'
        '"created_at":1,"updated_at":2}'
    )


def test_reply_null_goes_first_when_nothing_precedes_it(lua: Lua):
    assert lua.finish('{"name":"n","is_active":true}') == (
        '{"base_model_id":null,"name":"n","is_active":true}'
    )
    assert lua.finish("{}") == '{"base_model_id":null,"is_active":null}'


HISTORY = "modelregistry.v1.ListModelVersionsResponse"


def test_unwrapped_reply_is_the_array_with_its_edits(lua: Lua):
    body = (
        '{"versions":[{"id":"v2","parent_id":"v1","created_at":"7"},{"id":"v1","created_at":"5"}],'
        '"next_page_token":"abc"}'
    )
    finished = lua.M.finish_reply(lua.CONFIG, HISTORY, body, "versions")
    assert json.loads(finished) == [
        {"id": "v2", "parent_id": "v1", "created_at": 7, "commit_message": None},
        {"id": "v1", "created_at": 5, "parent_id": None, "commit_message": None},
    ]


def test_unwrapped_reply_without_the_field_is_an_empty_array(lua: Lua):
    assert lua.M.finish_reply(lua.CONFIG, HISTORY, '{"next_page_token":""}', "versions") == "[]"


def test_reply_that_is_not_json_is_left_alone(lua: Lua):
    assert lua.finish("not json") == "not json"


LIST = "modelregistry.v1.ListModelsResponse"
# What a reply scan must step over without reading it as the reply's own
# fields: quotes, backslashes, braces and brackets inside strings, nesting,
# every kind of JSON value, and keys named like the message's fields.
TRICKY_PARAMS = {
    "system": 'Say "}{][" and \\ then \\"quoted\\"',
    "created_at": "1",
    "nested": [{"updated_at": "2", "list": [[], {}, [1, -2.5e-3, True, False, None]]}],
    "unicode": "é😀\u2028",
}


def listed(model_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "user_id": "u",
        "name": "n",
        "params": TRICKY_PARAMS,
        "meta": {"tags": [{"name": "}"}]},
        "access_grants": [{"access_type": "user", "access_id": "*", "permission": "read"}],
        "is_active": True,
        "created_at": "17",
        "updated_at": "18",
        **fields,
    }


@pytest.mark.parametrize("indent", [None, 2])
def test_a_list_reply_is_scanned_past_whatever_its_structs_hold(lua: Lua, indent: int | None):
    sent = {
        "items": [listed("a"), listed("b", base_model_id="base")],
        "total": "2",
        "next_page_token": 'tok"en',
    }
    finished = json.loads(lua.M.finish_reply(lua.CONFIG, LIST, json.dumps(sent, indent=indent)))
    assert finished == {
        "items": [
            {**listed("a"), "base_model_id": None, "created_at": 17, "updated_at": 18},
            {**listed("b", base_model_id="base"), "created_at": 17, "updated_at": 18},
        ],
        "total": 2,
        "next_page_token": 'tok"en',
    }


@pytest.mark.parametrize(
    "text",
    ['{"items":[{"id":"a"', '{"items":[{"id":"a}', '{"total":"1"} trailing', "[]", ""],
)
def test_a_reply_the_scan_cannot_read_is_left_alone(lua: Lua, text: str):
    assert lua.M.finish_reply(lua.CONFIG, LIST, text) == text


@pytest.mark.parametrize(
    ("code", "message", "status", "detail"),
    [
        (6, "Model ID is already taken", 400, "Model ID is already taken"),
        (3, 'meta.x "q" é', 400, 'meta.x "q" é'),
        (16, "Unauthorized", 401, "Unauthorized"),
        (7, "Unauthorized", 401, "Unauthorized"),
        (5, "Model not found", 404, "Model not found"),
        (14, "Service Unavailable", 503, "Service Unavailable"),
        (4, "", 504, "Gateway Timeout"),
        (8, "Received message larger than max", 429, "Received message larger than max"),
        (2, "Exception calling application: boom", 500, INTERNAL_MESSAGE),
        (13, "stack trace", 500, INTERNAL_MESSAGE),
        (15, "", 500, INTERNAL_MESSAGE),
    ],
)
def test_grpc_errors_become_status_and_detail(lua: Lua, code, message, status, detail):
    body = json.dumps({"code": code, "message": message, "details": []})
    assert lua.error(body) == (status, {"detail": detail})


def test_a_body_that_is_no_status_is_not_an_error_reply(lua: Lua):
    assert lua.error('{"detail":"Not Found"}') is None


# -- the Envoy entry points, with fake handles -------------------------------------


class Headers:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def replace(self, name: str, value: str) -> None:
        self.values[name] = value

    def remove(self, name: str) -> None:
        self.values.pop(name, None)

    def __iter__(self):
        return iter(list(self.values.items()))


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def length(self) -> int:
        return len(self.data)

    def getBytes(self, start: int, length: int) -> bytes:  # noqa: N802 (Envoy's name)
        return self.data[start : start + length]

    def setBytes(self, data: bytes) -> None:  # noqa: N802
        self.data = data


class Metadata:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}

    def set(self, namespace: str, key: str, value: Any) -> None:
        self.values.setdefault(namespace, {})[key] = value

    def get(self, namespace: str) -> Any:
        return self.values.get(namespace)


class Handle:
    def __init__(self, headers: dict[str, str], body: bytes | None, metadata: Metadata) -> None:
        self._headers = Headers(headers)
        self._body = None if body is None else Body(body)
        self._metadata = metadata
        self.responded: tuple[dict[str, str], str] | None = None
        self._trailers: Headers | None = None

    def headers(self) -> Headers:
        return self._headers

    def body(self) -> Body | None:
        return self._body

    def trailers(self) -> Headers | None:
        return self._trailers

    def streamInfo(self) -> Handle:  # noqa: N802
        return self

    def dynamicMetadata(self) -> Metadata:  # noqa: N802
        return self._metadata

    def respond(self, headers, body) -> None:
        self.responded = (dict(headers), body)


def test_on_request_answers_a_bad_body_and_remembers_the_reply_type(lua: Lua):
    metadata = Metadata()
    handle = Handle(
        {":method": "POST", ":path": "/api/v1/models/create?x=1"}, b'{"meta": []}', metadata
    )
    lua.M.on_request(lua.CONFIG, handle)
    assert handle.responded is not None
    headers, detail = handle.responded
    assert headers[":status"] == "400" and detail == "meta must be an object"
    assert metadata.values == {"modelregistry.http_face": {"reply": MODEL}}


def test_on_request_lets_a_good_body_through(lua: Lua):
    handle = Handle({":method": "POST", ":path": "/api/models/create"}, b"{}", Metadata())
    lua.M.on_request(lua.CONFIG, handle)
    assert handle.responded is None


def test_on_request_ignores_paths_it_does_not_serve(lua: Lua):
    metadata = Metadata()
    handle = Handle({":method": "GET", ":path": "/api/models/create"}, b"[", metadata)
    lua.M.on_request(lua.CONFIG, handle)
    assert handle.responded is None and metadata.values == {}


class BodyUnread(Handle):
    """A handle whose body must stream through: reading it fails the test."""

    def body(self) -> Body | None:
        raise AssertionError("the script read a body it has nothing to change in")


def lua_headers(lua: Lua, values: dict[str, str]) -> Any:
    """A header map as Envoy's Lua sees one: `pairs` walks it (the script
    strips grpc-* headers so), and it has get, replace and remove."""
    make = lua.runtime.eval(
        """function(values)
          local map = {}
          for key, value in pairs(values) do map[key] = value end
          return setmetatable(map, {__index = {
            get = function(self, key) return rawget(self, key) end,
            replace = function(self, key, value) rawset(self, key, value) end,
            remove = function(self, key) rawset(self, key, nil) end,
          }})
        end"""
    )
    return make(lua.runtime.table_from(values))


def header_values(lua: Lua, headers: Any) -> dict[str, str]:
    plain = lua.runtime.eval(
        "function(map) local t = {} for k, v in pairs(map) do t[k] = v end return t end"
    )
    return dict(plain(headers).items())


def test_the_list_the_server_writes_streams_through_untouched(lua: Lua):
    metadata = Metadata()
    request = Handle({":method": "GET", ":path": "/api/v1/models/list?page=2"}, None, metadata)
    lua.M.on_request(lua.CONFIG, request)
    assert request.responded is None and metadata.values == {}  # no reply to finish
    reply = BodyUnread({}, b'{"items":[],"total":0,"next_page_token":""}', metadata)
    reply._headers = lua_headers(
        lua, {":status": "200", "content-type": "application/json", "grpc-status": "0"}
    )
    reply._trailers = lua_headers(lua, {"grpc-message": "", "x-kept": "1"})
    lua.M.on_response(lua.CONFIG, reply)
    assert header_values(lua, reply._headers) == {
        ":status": "200",
        "content-type": "application/json",
    }
    assert header_values(lua, reply._trailers) == {"x-kept": "1"}


def test_the_list_the_server_writes_still_maps_its_errors(lua: Lua):
    metadata = Metadata()
    lua.M.on_request(
        lua.CONFIG, Handle({":method": "GET", ":path": "/api/models/list"}, None, metadata)
    )
    reply = Handle(
        {}, b'{"code":3,"message":"page_token is not a token of this query","details":[]}', metadata
    )
    reply._headers = lua_headers(lua, {":status": "400", "content-type": "application/json"})
    lua.M.on_response(lua.CONFIG, reply)
    assert header_values(lua, reply._headers)[":status"] == "400"
    assert reply.body().data == '{"detail":"page_token is not a token of this query"}'


GRPC_ONLY_DETAIL = (
    "{field} pages the export over gRPC only: over HTTP the export is one whole JSON array"
    " (ask for fewer ids, or run `model-registry export`)"
)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/models/export?ids=a&page_size=5", None, "page_size"),
        ("/api/models/export?pageToken=x", None, "page_token"),
        ("/api/models/export?page_size=5", None, "page_size"),
        ("/api/models/export", b'{"pageSize": 5}', "page_size"),
        ("/api/models/export", b'{"page_token": "t"}', "page_token"),
    ],
)
def test_the_http_export_refuses_paging_it_would_cut_short(
    lua: Lua, path: str, body: bytes | None, field: str
):
    handle = Handle({":method": "GET", ":path": path}, body, Metadata())
    lua.M.on_request(lua.CONFIG, handle)
    assert handle.responded == ({":status": "400"}, GRPC_ONLY_DETAIL.format(field=field))


def test_the_http_export_takes_ids(lua: Lua):
    handle = Handle({":method": "GET", ":path": "/api/models/export?ids=a&ids=b"}, None, Metadata())
    lua.M.on_request(lua.CONFIG, handle)
    assert handle.responded is None


# -- the CONFIG made from the contract ---------------------------------------------


def test_config_routes_come_from_the_http_bindings():
    from modelregistry_server.envoy.lua import SERVICE

    config = lua_config(SERVICE)
    assert config["routes"]["POST /api/models/create"] == {
        "method": "POST",
        "request": "modelregistry.v1.CreateModelRequest",
        "reply": MODEL,
        "body": MODEL,
    }
    assert "POST /api/v1/models/create" in config["routes"]
    assert config["routes"]["GET /api/v1/models/model/history"]["unwrap"] == "versions"
    assert config["routes"]["GET /api/v1/models/export"]["unwrap"] == "models"
    # The server writes the list's JSON (an HttpBody): nothing for the script to finish.
    assert config["routes"]["GET /api/v1/models/list"] == {
        "method": "GET",
        "request": "modelregistry.v1.ListModelsRequest",
        "body": "modelregistry.v1.ListModelsRequest",  # a GET's body is read as the request
    }
    assert "google.api.HttpBody" not in config["messages"]
    fields = config["messages"][MODEL]["fields"]
    assert fields["base_model_id"]["null_when_unset"] is True
    assert fields["commit_message"]["null_when_unset"] is False  # input only
    assert fields["is_active"]["kind"] == "bool" and fields["isActive"] is fields["is_active"]
    assert fields["created_at"]["kind"] == "int" and fields["params"]["kind"] == "struct"
    assert fields["access_grants"] == {
        "name": "access_grants",
        "repeated": True,
        "kind": "message",
        "message": "modelregistry.v1.AccessGrant",
        "null_when_unset": False,
        "position": 7,  # the order the transcoder writes fields in: the proto's
    }
    assert [f["name"] for f in config["messages"][MODEL]["order"]][:3] == [
        "id",
        "user_id",
        "base_model_id",
    ]


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ({"a": [1, 2.5, True]}, '{["a"] = {1, 2.5, true}}'),
        ('q"\\\n', '"q\\034\\092\\010"'),
        ("é", '"\\195\\169"'),
    ],
)
def test_to_lua_writes_literals_lua_reads_back(value, literal: str):
    assert to_lua(value) == literal
    runtime = luajit21.LuaRuntime()
    if isinstance(value, str):
        assert runtime.eval(literal) == value


# A reply is written in one pass (M.written_reply) when its keys come in
# their fields' order, as the transcoder writes them; else by collecting
# edits on a scan (M.edited_reply). Both must give the same text.
def transcoded(rng: random.Random, n: int) -> dict[str, Any]:
    """A model as the transcoder writes it, with some optional fields unset."""
    model: dict[str, Any] = {"id": f"m-{n}", "user_id": "u"}
    if rng.random() < 0.5:
        model["base_model_id"] = rng.choice(["gpt-4", 'quo"te', ""])
    model["name"] = rng.choice(["Orca", "}{][", "é😀"])
    if rng.random() < 0.8:
        model["params"] = rng.choice([TRICKY_PARAMS, {}, {"temperature": 0.7}])
    if rng.random() < 0.8:
        model["meta"] = {"tags": [{"name": "}"}], "created_at": "9"}
    model["access_grants"] = rng.choice(
        [[], [{"access_type": "user", "access_id": "*", "permission": "read"}]]
    )
    if rng.random() < 0.5:
        model["is_active"] = rng.random() < 0.5
    model["created_at"] = str(rng.randrange(10**12))
    model["updated_at"] = str(rng.randrange(10**12))
    if rng.random() < 0.3:
        model["write_access"] = True
    model["version_id"] = f"v-{n}"
    return model


def test_a_reply_written_in_one_pass_is_the_reply_made_by_edits(lua: Lua):
    rng = random.Random(7)
    for _ in range(300):
        sent = {"items": [transcoded(rng, n) for n in range(rng.randrange(4))]}
        if rng.random() < 0.8:
            sent["total"] = str(rng.randrange(100))
        if rng.random() < 0.5:
            sent["next_page_token"] = "tok"
        text = json.dumps(sent, separators=(",", ":"), ensure_ascii=False)
        written = lua.M.written_reply(lua.CONFIG, LIST, text)
        assert written is not None, text
        assert written == lua.M.edited_reply(lua.CONFIG, LIST, text), text
        model = sent["items"][0] if sent["items"] else transcoded(rng, 9)
        text = json.dumps(model, separators=(",", ":"), ensure_ascii=False)
        assert lua.M.written_reply(lua.CONFIG, MODEL, text) == lua.finish(text), text


@pytest.mark.parametrize(
    "text",
    [
        # keys out of their fields' order, a key twice, a key the message lacks
        '{"name":"n","id":"a","created_at":"5"}',
        '{"id":"a","id":"b","created_at":"5"}',
        '{"id":"a","extra":"1","created_at":"5"}',
    ],
)
def test_a_reply_out_of_order_is_finished_by_edits(lua: Lua, text: str):
    assert lua.M.written_reply(lua.CONFIG, MODEL, text) is None
    assert lua.finish(text) == lua.M.edited_reply(lua.CONFIG, MODEL, text)
    assert json.loads(lua.finish(text))["created_at"] == 5
