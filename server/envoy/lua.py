"""The Lua script of Envoy's error-shaping filter: http_face.lua with a
`CONFIG` table before it, made here from the proto contract and the
user-facing texts, so that the script has no contract or text of its own."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

from modelregistry.v1 import model_service_pb2

from ..domain.validation import MAX_JSON_DEPTH, nesting_message
from ..transport.status import INTERNAL_MESSAGE

SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"]

# Deeper JSON than this is refused before the transcoder (whose own limit
# speaks protobuf). It is above what the server's own nesting rule lets
# through (the body, params, then MAX_JSON_DEPTH levels), so the server
# decides the limit and this only keeps the transcoder from seeing worse.
MAX_REQUEST_DEPTH = MAX_JSON_DEPTH + 8

TEXTS: dict[str, Any] = {
    "invalid_json": "Invalid JSON: {reason} at line {line}, column {column}",
    "json_errors": {
        "unexpected_end": "the body ends too early",
        "unexpected_character": "unexpected character",
        "expected_key": "expected a key in double quotes",
        "expected_colon": "expected ':' after a key",
        "expected_comma_or_brace": "expected ',' or '}'",
        "expected_comma_or_bracket": "expected ',' or ']'",
        "unterminated_string": "a string is not closed",
        "invalid_escape": "invalid escape sequence in a string",
        "control_character": "unescaped control character in a string",
        "invalid_number": "invalid number",
        "invalid_utf8": "the body is not valid UTF-8",
        "trailing_characters": "unexpected text after the JSON value",
    },
    "body": "The request body",
    "body_not_object": "The request body must be a JSON object",
    "empty_key": "{field} has a key that is an empty string",
    "body_too_deep": "The request body nests too deeply",
    "too_deep": nesting_message("{field}"),
    "wrong_type": "{field} must be {expected}",
    "number_out_of_range": "{field} holds a number too large to store",
    "kinds": {
        "string": "a string",
        "bytes": "a string",
        "bool": "true or false",
        "int": "an integer",
        "int32": "an integer",
        "number": "a number",
        "enum": "a string",
        "message": "an object",
        "struct": "an object",
        "list": "an array",
        "array": "an array",
        "value": "a JSON value",
    },
    "grpc_only": "{field} pages the export over gRPC only: over HTTP the export is one whole"
    " JSON array (ask for fewer ids, or run `model-registry export`)",
    "internal": INTERNAL_MESSAGE,
}

_STRUCTS = {
    "google.protobuf.Struct": "struct",
    "google.protobuf.ListValue": "list",
    "google.protobuf.Value": "value",
}
_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_DOUBLE: "number",
    FieldDescriptor.TYPE_FLOAT: "number",
    FieldDescriptor.TYPE_ENUM: "enum",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_SINT32: "int32",
    FieldDescriptor.TYPE_SFIXED32: "int32",
}
_HTTP_METHODS = ("get", "put", "post", "delete", "patch")
HTTP_BODY = "google.api.HttpBody"
# Replies that the HTTP API writes as a bare JSON array: the one repeated
# field of the reply message (the transcoder cannot: its response_body takes
# only HttpBody fields). Open WebUI's history and export are arrays.
BARE_ARRAY_REPLIES = {
    "modelregistry.v1.ListModelVersionsResponse": "versions",
    "modelregistry.v1.ExportModelsResponse": "models",
    "modelregistry.v1.ListModelTagsResponse": "tags",
}

# Request fields HTTP may not set: over HTTP a reply is unwrapped to one
# array, which would drop the next page's token and cut the export short.
GRPC_ONLY_FIELDS = {"modelregistry.v1.ExportModelsRequest": ("page_size", "page_token")}


@cache
def lua_source() -> str:
    """The whole script Envoy runs: CONFIG, then http_face.lua."""
    script = resources.files(__package__).joinpath("http_face.lua").read_text()
    return f"local CONFIG = {to_lua(lua_config(SERVICE))}\n{script}"


def lua_config(service: ServiceDescriptor) -> dict[str, Any]:
    routes: dict[str, Any] = {}
    patterns: list[dict[str, Any]] = []
    messages: dict[str, Any] = {}
    for method in service.methods:
        reply = method.output_type
        # The server writes an HttpBody reply's JSON itself: nothing to finish.
        written_by_server = reply.full_name == HTTP_BODY
        if not written_by_server:
            _add_message(reply, messages)
        _add_message(method.input_type, messages)
        for rule in _http_rules(method.GetOptions().Extensions[annotations_pb2.http]):
            verb = rule.WhichOneof("pattern")
            path = getattr(rule, verb)
            body = _body_message(method.input_type, rule.body)
            route: dict[str, Any] = {
                "method": verb.upper(),
                "request": method.input_type.full_name,
            }
            if not written_by_server:
                route["reply"] = reply.full_name
            if reply.full_name in BARE_ARRAY_REPLIES:
                route["unwrap"] = BARE_ARRAY_REPLIES[reply.full_name]
            if body is not None:
                _add_message(body, messages)
                route["body"] = body.full_name
            if "{" in path:
                patterns.append({**route, "pattern": _path_pattern(path)})
            else:
                routes[f"{verb.upper()} {path}"] = route
    return {
        "routes": routes,
        "route_patterns": patterns,
        "messages": messages,
        "grpc_only": {
            message: {name: True for name in _both_names(message, fields, messages)}
            for message, fields in GRPC_ONLY_FIELDS.items()
        },
        "max_depth": MAX_REQUEST_DEPTH,
        "text": TEXTS,
    }


def _both_names(message: str, fields: tuple[str, ...], messages: dict[str, Any]) -> list[str]:
    """The fields' proto names and JSON names, as the transcoder reads both."""
    known = messages[message]["fields"]
    return [key for key, field in known.items() if field["name"] in fields]


def _http_rules(rule: http_pb2.HttpRule) -> Iterator[http_pb2.HttpRule]:
    if rule.WhichOneof("pattern") in _HTTP_METHODS:
        yield rule
    for extra in rule.additional_bindings:
        yield from _http_rules(extra)


def _body_message(request: Descriptor, body: str) -> Descriptor | None:
    if not body or body == "*":
        # Without a body binding the transcoder still reads a body, as the
        # whole request: it is checked as one.
        return request
    return request.fields_by_name[body].message_type


def _path_pattern(path: str) -> str:
    """A Lua pattern for a path template: each {variable} is one segment."""
    pattern = ""
    for part in path.replace("}", "{").split("{")[::2]:
        pattern += "".join(f"%{c}" if not c.isalnum() and c != "/" else c for c in part)
        pattern += "[^/]+"
    return "^" + pattern.removesuffix("[^/]+") + "$"


def _add_message(message: Descriptor, messages: dict[str, Any]) -> None:
    if message.full_name in messages or message.full_name in _STRUCTS:
        return
    order: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    messages[message.full_name] = {"order": order, "fields": fields}
    for position, field in enumerate(message.fields, start=1):
        described = _field(field)
        # Where it comes in a reply: the transcoder writes fields in this order.
        described["position"] = position
        order.append(described)
        # The transcoder reads a field under its proto name and its JSON name.
        fields[field.name] = described
        fields[field.json_name] = described
        if field.message_type is not None and described["kind"] == "message":
            _add_message(field.message_type, messages)


def _field(field: FieldDescriptor) -> dict[str, Any]:
    described: dict[str, Any] = {"name": field.name, "repeated": field.is_repeated}
    if field.message_type is not None:
        kind = _STRUCTS.get(field.message_type.full_name, "message")
        described["kind"] = kind
        if kind == "message":
            described["message"] = field.message_type.full_name
    else:
        described["kind"] = _SCALARS.get(field.type, "int")
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    # A field a client may leave out (field_behavior OPTIONAL, with presence)
    # reads as null in replies when it did, as the API has base_model_id.
    described["null_when_unset"] = (
        field.has_presence
        and not field.is_repeated
        and field.type != FieldDescriptor.TYPE_MESSAGE
        and field_behavior_pb2.OPTIONAL in behaviors
    )
    return described


def to_lua(value: Any) -> str:
    """`value` (dicts, lists, strings, numbers, booleans) as a Lua literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid Lua string once non-ASCII is \u-free:
        # Lua 5.1 has no \u escape, so non-ASCII is written as decimal bytes.
        return '"' + "".join(_lua_char(b) for b in value.encode()) + '"'
    if isinstance(value, list | tuple):
        return "{" + ", ".join(to_lua(item) for item in value) + "}"
    if isinstance(value, dict):
        items = (f"[{to_lua(str(key))}] = {to_lua(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def _lua_char(b: int) -> str:
    if 32 <= b < 127 and b not in (34, 92):
        return chr(b)
    return f"\\{b:03d}"
