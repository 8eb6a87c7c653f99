"""Models in the HTTP face's JSON, for the replies the server writes itself
(ListModelsJson, passed through Envoy as a google.api.HttpBody): the same
text that Envoy's transcoder and http_face.lua make of a Model message, so a
client cannot tell which wrote it. tests/test_http_json_parity.py holds the
two to each other through a real Envoy, byte for byte.

What the transcoder does, and this module does too:
- fields in their proto order, under their proto names, zero values
  printed; an unset optional field the API reads as null (base_model_id)
  is null, and an unset input-only one is left out;
- int64 fields as JSON numbers (http_face.lua unquotes them);
- a Struct's numbers as protobuf writes a double: the shortest of 15
  significant digits that reads back as the same double, else 17;
- strings escaped as protobuf escapes them: JSON's own escapes, and also
  `<`, `>` and invisible formatting characters, as \\u escapes."""

from __future__ import annotations

import re
from json.encoder import encode_basestring  # in C: escapes ", \\ and controls
from typing import Any

from ..domain.models import AccessGrant, Model

# Beyond what encode_basestring escapes. Found by sending every code point
# through the transcoder (the parity test sends them all again).
_ALSO_ESCAPED = re.compile(
    "[<>\x7f-\x9f\xad\u0600-\u0603\u06dd\u070f\u17b4\u17b5\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)
# An integer of fewer digits than this prints the same as a double.
_PLAIN_INTEGER_LIMIT = 10**15


def _u_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def quote(text: str) -> str:
    """`text` as a JSON string."""
    quoted: str = encode_basestring(text)
    if _ALSO_ESCAPED.search(quoted) is None:
        return quoted
    return _ALSO_ESCAPED.sub(_u_escape, quoted)


def number(value: int | float) -> str:
    """A Struct number (a double) as protobuf writes it: 2000, 0.1, 1e+15."""
    if isinstance(value, int) and -_PLAIN_INTEGER_LIMIT < value < _PLAIN_INTEGER_LIMIT:
        return str(value)
    double = float(value)
    text = f"{double:.15g}"
    if float(text) != double:
        text = f"{double:.17g}"
    return text


def json_value(value: Any) -> str:
    """A JSON value held in params or meta."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{quote(key)}:{json_value(item)}" for key, item in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(json_value(item) for item in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _grant(grant: AccessGrant) -> str:
    return (
        f'{{"access_type":{quote(grant.access_type)},"access_id":{quote(grant.access_id)},'
        f'"permission":{quote(grant.permission)}}}'
    )


def model_json(model: Model) -> str:
    """A model as GetModel's HTTP reply writes it."""
    base_model_id = "null" if model.base_model_id is None else quote(model.base_model_id)
    write_access = (
        "" if model.write_access is None else f',"write_access":{_boolean(model.write_access)}'
    )
    return "".join(
        [
            f'{{"id":{quote(model.id)},"user_id":{quote(model.user_id)},',
            f'"base_model_id":{base_model_id},"name":{quote(model.name)},',
            f'"params":{json_value(model.params)},"meta":{json_value(model.meta)},',
            f'"access_grants":[{",".join(_grant(grant) for grant in model.access_grants)}],',
            f'"is_active":{_boolean(model.is_active)},',
            f'"created_at":{model.created_at},"updated_at":{model.updated_at}',
            write_access,
            f',"version_id":{quote(model.version_id)}}}',
        ]
    )
