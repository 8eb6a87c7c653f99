"""The server's JSON writer (server/transport/http_json.py) in-process: the
forms it must share with protobuf's JSON writer, as Envoy's transcoder wrote
them (tests/test_http_json_parity.py compares the two through Envoy)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from modelregistry_server.domain.models import AccessGrant, Model
from modelregistry_server.transport.http_json import json_value, model_json, number, quote


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (0, "0"),
        (-7, "-7"),
        (2000, "2000"),
        (999_999_999_999_999, "999999999999999"),
        (10**15, "1e+15"),
        (1234567890123456, "1234567890123456"),
        (2**53, "9007199254740992"),
        (0.1, "0.1"),
        (0.1 + 0.7, "0.79999999999999993"),  # 15 digits give 0.8, another double
        (1e-5, "1e-05"),
        (1e-7, "1e-07"),
        (1e21, "1e+21"),
        (5e-324, "4.94065645841247e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (123456789.123, "123456789.123"),
    ],
)
def test_numbers_are_written_as_protobuf_writes_a_double(value, written):
    assert number(value) == written
    assert float(written) == float(value)  # the same double either way


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("plain é 😀", '"plain é 😀"'),
        ('"\\/', '"\\"\\\\/"'),
        ("\b\f\n\r\t\x01\x1f", '"\\b\\f\\n\\r\\t\\u0001\\u001f"'),
        ("<a & b>", '"\\u003ca & b\\u003e"'),
        ("\x7f\x9f\xa0\xad", '"\\u007f\\u009f\xa0\\u00ad"'),
        ("\u2027\u2028\u202e\u202f", '"\u2027\\u2028\\u202e\u202f"'),
        ("\ufeff\U000e0001\U000e0080", '"\\ufeff\\udb40\\udc01\U000e0080"'),
    ],
)
def test_strings_are_escaped_as_protobuf_escapes_them(text, written):
    assert quote(text) == written
    assert json.loads(written) == text


def test_values_keep_their_order_and_kinds():
    value = {"b": [1, 2.5, None, True, False, "x"], "a": {}, "c": []}
    assert json_value(value) == '{"b":[1,2.5,null,true,false,"x"],"a":{},"c":[]}'
    with pytest.raises(TypeError):
        json_value({"a": object()})


def test_a_model_has_the_fields_of_the_message_in_order():
    model = Model(
        id="m",
        user_id="u",
        base_model_id=None,
        name="M",
        params={},
        meta={"k": 1},
        access_grants=[AccessGrant("user", "*", "read")],
        is_active=False,
        created_at=1,
        updated_at=2,
        commit_message="never written",
        version_id="v",
    )
    written = model_json(model)
    assert written == (
        '{"id":"m","user_id":"u","base_model_id":null,"name":"M","params":{},"meta":{"k":1},'
        '"access_grants":[{"access_type":"user","access_id":"*","permission":"read"}],'
        '"is_active":false,"created_at":1,"updated_at":2,"version_id":"v"}'
    )
    with_access = model_json(dataclasses.replace(model, base_model_id="b", write_access=True))
    assert '"base_model_id":"b"' in with_access
    assert with_access.endswith('"updated_at":2,"write_access":true,"version_id":"v"}')
