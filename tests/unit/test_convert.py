"""Protobuf <-> domain values (transport/convert.py): JSON numbers, field
presence, and what goes back out."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from modelregistry.v1 import model_service_pb2 as pb
from modelregistry_server.domain.models import AccessGrant, GrantDraft, Model, ModelDraft
from modelregistry_server.transport.convert import draft_from_proto, model_to_proto, struct_to_dict


def message(fields: dict[str, Any]) -> pb.Model:
    return json_format.ParseDict(fields, pb.Model())


def number(value: float) -> Any:
    """A JSON number as it arrives in a Struct (always a double), converted."""
    struct = struct_pb2.Struct()
    struct.fields["n"].number_value = value
    return struct_to_dict(struct)["n"]


def test_the_spec_request_becomes_a_draft():
    draft = draft_from_proto(
        message(
            {
                "id": "my-custom-gpt4",
                "name": "My Custom GPT-4",
                "base_model_id": "gpt-4",
                "params": {"temperature": 0.7, "max_tokens": 2000, "top_p": 1.0},
                "meta": {"capabilities": {"vision": True}},
                "access_grants": [
                    {"access_type": "group", "access_id": "developers", "permission": "read"}
                ],
                "is_active": True,
            }
        )
    )
    assert draft == ModelDraft(
        id="my-custom-gpt4",
        name="My Custom GPT-4",
        base_model_id="gpt-4",
        params={"temperature": 0.7, "max_tokens": 2000, "top_p": 1},
        meta={"capabilities": {"vision": True}},
        access_grants=[GrantDraft("group", "developers", "read")],
        is_active=True,
    )
    assert type(draft.params["max_tokens"]) is int


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        (2000.0, 2000),
        (0.0, 0),
        (-0.0, 0),
        (-5.0, -5),
        (2.0**53, 2**53),
        (-(2.0**53), -(2**53)),
    ],
)
def test_integral_doubles_up_to_2_to_the_53_are_integers(sent: float, received: int):
    converted = number(sent)
    assert converted == received and type(converted) is int


@pytest.mark.parametrize("sent", [0.7, 1e-300, 2.0**53 + 2, -(2.0**53) - 2, 1e300])
def test_other_doubles_stay_floats(sent: float):
    converted = number(sent)
    assert converted == sent and type(converted) is float


@pytest.mark.parametrize("sent", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_reach_validation_as_floats(sent: float):
    converted = number(sent)
    assert type(converted) is float
    assert math.isnan(converted) if math.isnan(sent) else converted == sent


def test_other_json_values_keep_their_type():
    struct = struct_pb2.Struct()
    struct.update({"s": "text", "t": True, "f": False, "n": None, "o": {"a": [1, "b", None]}})
    converted = struct_to_dict(struct)
    assert converted == {"s": "text", "t": True, "f": False, "n": None, "o": {"a": [1, "b", None]}}
    assert converted["t"] is True and converted["f"] is False
    assert type(converted["o"]["a"][0]) is int


def test_a_value_with_nothing_set_is_none():
    struct = struct_pb2.Struct()
    struct.fields["empty"].CopyFrom(struct_pb2.Value())
    assert struct_to_dict(struct) == {"empty": None}


def test_fields_not_sent_are_none():
    draft = draft_from_proto(message({"id": "m", "name": "n"}))
    assert (draft.base_model_id, draft.params, draft.meta, draft.is_active) == (
        None,
        None,
        None,
        None,
    )
    assert draft.access_grants == []


def test_fields_sent_empty_or_false_are_present():
    draft = draft_from_proto(
        message(
            {
                "id": "m",
                "name": "n",
                "base_model_id": "",
                "params": {},
                "meta": {},
                "is_active": False,
            }
        )
    )
    assert (draft.base_model_id, draft.params, draft.meta, draft.is_active) == ("", {}, {}, False)


def test_output_only_fields_sent_by_a_client_are_not_read():
    sent = message({"id": "m", "name": "n", "user_id": "mallory", "created_at": 1, "updated_at": 2})
    assert draft_from_proto(sent) == draft_from_proto(message({"id": "m", "name": "n"}))


def model(**fields: Any) -> Model:
    values: dict[str, Any] = {
        "id": "m",
        "user_id": "user123",
        "base_model_id": None,
        "name": "A model",
        "params": {},
        "meta": {},
        "access_grants": [],
        "is_active": True,
        "created_at": 1704067200,
        "updated_at": 1704067201,
    }
    values.update(fields)
    return Model(**values)


def test_a_model_goes_out_with_every_field():
    out = model_to_proto(
        model(
            base_model_id="gpt-4",
            params={"max_tokens": 2000, "temperature": 0.7},
            meta={"profile_image_url": "/static/favicon.png", "capabilities": {"vision": True}},
            access_grants=[AccessGrant("user", "u1", "write"), AccessGrant("group", "g", "read")],
        )
    )
    assert json_format.MessageToDict(out, preserving_proto_field_name=True) == {
        "id": "m",
        "user_id": "user123",
        "base_model_id": "gpt-4",
        "name": "A model",
        "params": {"max_tokens": 2000.0, "temperature": 0.7},
        "meta": {"profile_image_url": "/static/favicon.png", "capabilities": {"vision": True}},
        "access_grants": [
            {"access_type": "user", "access_id": "u1", "permission": "write"},
            {"access_type": "group", "access_id": "g", "permission": "read"},
        ],
        "is_active": True,
        "created_at": "1704067200",
        "updated_at": "1704067201",
    }
    assert struct_to_dict(out.params) == {"max_tokens": 2000, "temperature": 0.7}


def test_no_base_model_is_absent_and_empty_objects_are_present():
    out = model_to_proto(model(base_model_id=None, params={}, meta={}, is_active=False))
    assert not out.HasField("base_model_id")
    assert out.HasField("params") and out.HasField("meta")
    assert struct_to_dict(out.params) == {} and struct_to_dict(out.meta) == {}
    assert out.HasField("is_active") and out.is_active is False


def test_a_model_survives_the_way_out_and_back_in():
    original = model(
        base_model_id="b",
        params={"max_tokens": 2**53, "top_p": 0.5, "stop": ["a"], "n": None},
        meta={"deep": {"list": [[1, 2.5], {"x": False}]}},
        access_grants=[AccessGrant("group", "g", "read")],
        is_active=False,
    )
    back = draft_from_proto(model_to_proto(original))
    assert back == ModelDraft(
        id=original.id,
        name=original.name,
        base_model_id=original.base_model_id,
        params=original.params,
        meta=original.meta,
        access_grants=[
            GrantDraft(g.access_type, g.access_id, g.permission) for g in original.access_grants
        ],
        is_active=original.is_active,
    )
