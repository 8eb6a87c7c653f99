"""The rules of CreateModel (domain/validation.py), each at its edges."""

from __future__ import annotations

import math
from typing import Any

import pytest

from modelregistry_server.domain.errors import InvalidArgument
from modelregistry_server.domain.models import AccessGrant, GrantDraft, Model, ModelDraft
from modelregistry_server.domain.validation import build_model, check_grants

NOW = 1704067200
WHITESPACE_OR_CONTROL = "must not contain whitespace or control characters"
BAD_IMAGE_URL = (
    "meta.profile_image_url must be an http(s) URL, a path starting with '/' or a data:image/ URI"
)


def grant(access_type: str = "group", access_id: str = "developers", permission: str = "read"):
    """A grant as sent, in the spec's spelling."""
    return GrantDraft(access_type, access_id, permission)


def stored(draft: GrantDraft) -> AccessGrant:
    return AccessGrant(draft.access_type, draft.access_id, draft.permission)


def draft(**fields: Any) -> ModelDraft:
    values: dict[str, Any] = {
        "id": "m",
        "name": "A model",
        "base_model_id": None,
        "params": {},
        "meta": {},
        "access_grants": [],
        "is_active": None,
    }
    values.update(fields)
    return ModelDraft(**values)


def build(**fields: Any) -> Model:
    return build_model(draft(**fields), user_id="user123", now=NOW)


def violations(**fields: Any) -> list[tuple[str, str]]:
    """(field, description) of every broken rule, in the order reported."""
    with pytest.raises(InvalidArgument) as caught:
        build(**fields)
    return [(v.field, v.description) for v in caught.value.violations]


def nested_objects(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


def nested_arrays(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# -- the whole model ------------------------------------------------------------


def test_the_spec_example_becomes_the_spec_model():
    model = build(
        id="my-custom-gpt4",
        name="My Custom GPT-4",
        base_model_id="gpt-4",
        params={"temperature": 0.7, "max_tokens": 2000, "top_p": 1.0},
        meta={
            "description": "Custom GPT-4 model for code generation",
            "capabilities": {"vision": True, "function_calling": True},
        },
        access_grants=[grant("group", "developers", "read")],
        is_active=True,
    )
    assert model == Model(
        id="my-custom-gpt4",
        user_id="user123",
        base_model_id="gpt-4",
        name="My Custom GPT-4",
        params={"temperature": 0.7, "max_tokens": 2000, "top_p": 1.0},
        meta={
            "description": "Custom GPT-4 model for code generation",
            "capabilities": {"vision": True, "function_calling": True},
            "profile_image_url": "/static/favicon.png",
        },
        access_grants=[AccessGrant("group", "developers", "read")],
        is_active=True,
        created_at=NOW,
        updated_at=NOW,
    )


def test_defaults_are_active_no_base_model_and_the_favicon():
    model = build()
    assert model.is_active is True
    assert model.base_model_id is None
    assert model.meta == {"profile_image_url": "/static/favicon.png"}
    assert model.access_grants == []
    assert (model.created_at, model.updated_at) == (NOW, NOW)


def test_is_active_false_is_kept():
    assert build(is_active=False).is_active is False


def test_the_default_image_does_not_change_the_sent_meta():
    meta = {"description": "d"}
    assert build(meta=meta).meta == {"description": "d", "profile_image_url": "/static/favicon.png"}
    assert meta == {"description": "d"}


def test_every_broken_rule_is_reported_in_field_order_and_the_first_is_the_message():
    with pytest.raises(InvalidArgument) as caught:
        build(
            id="x" * 257,
            name="",
            base_model_id="a b",
            params=None,
            meta=None,
            access_grants=[grant(permission="own")],
        )
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("id", "Model ID is too long (max 256 characters)"),
        ("name", "name is required and must not be empty"),
        ("base_model_id", f"base_model_id {WHITESPACE_OR_CONTROL}"),
        ("params", "params is required (send {} for none)"),
        ("meta", "meta is required (send {} for none)"),
        ("access_grants[0].permission", "access_grants[0].permission must be 'read' or 'write'"),
    ]
    assert caught.value.message == "Model ID is too long (max 256 characters)"
    assert caught.value.reason == "INVALID_ARGUMENT"


# -- id and base_model_id --------------------------------------------------------


@pytest.mark.parametrize("character", ["a", "é", "模", "😀"])
def test_an_id_of_256_code_points_is_accepted(character: str):
    assert build(id=character * 256).id == character * 256


@pytest.mark.parametrize("character", ["a", "é", "😀"])
def test_an_id_of_257_code_points_is_too_long(character: str):
    assert violations(id=character * 257) == [("id", "Model ID is too long (max 256 characters)")]


def test_an_empty_id_is_required():
    assert violations(id="") == [("id", "id is required and must not be empty")]


def test_length_is_reported_before_whitespace():
    assert violations(id=" " * 257) == [("id", "Model ID is too long (max 256 characters)")]


@pytest.mark.parametrize(
    "value",
    [
        "a b",  # space
        "a\tb",
        "a\nb",
        "a\u00a0b",  # no-break space
        "a\u3000b",  # ideographic space
        "a\u2028b",  # line separator
        "a\x00b",
        "a\x7fb",  # DEL
        "a\u200bb",  # zero-width space
        "a\ufeffb",  # zero-width no-break space (BOM)
        "a\u202eb",  # right-to-left override
        "a\ud800b",  # lone surrogate
        " leading",
        "trailing ",
    ],
)
def test_an_id_with_whitespace_control_or_invisible_characters_is_refused(value: str):
    assert violations(id=value) == [("id", f"id {WHITESPACE_OR_CONTROL}")]


@pytest.mark.parametrize("value", ["my-custom-gpt4", "org/model:v1.2@latest", "模型-ü", "😀"])
def test_visible_ids_are_accepted(value: str):
    assert build(id=value).id == value


def test_base_model_id_of_256_code_points_is_accepted():
    assert build(base_model_id="é" * 256).base_model_id == "é" * 256


def test_base_model_id_of_257_code_points_is_too_long():
    assert violations(base_model_id="é" * 257) == [
        ("base_model_id", "base_model_id is too long (max 256 characters)")
    ]


@pytest.mark.parametrize("value", ["a b", "a\u200bb", "a\x00b", "a\nb"])
def test_base_model_id_refuses_what_id_refuses(value: str):
    assert violations(base_model_id=value) == [
        ("base_model_id", f"base_model_id {WHITESPACE_OR_CONTROL}")
    ]


def test_an_empty_base_model_id_is_refused_like_an_empty_id():
    assert violations(base_model_id="") == [
        ("base_model_id", "base_model_id is required and must not be empty")
    ]


# -- name -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_a_blank_name_is_required(value: str):
    assert violations(name=value) == [("name", "name is required and must not be empty")]


def test_a_name_with_nul_is_refused():
    assert violations(name="a\x00b") == [("name", "name must not contain NUL characters")]


def test_a_name_may_hold_spaces_and_any_script():
    assert build(name=" My model ✨ 模型 ").name == " My model ✨ 模型 "


# -- params -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["temperature", "top_p", "frequency_penalty", "presence_penalty"])
@pytest.mark.parametrize("value", [0, 1, -2, 0.7, 1e-9])
def test_number_params_accept_integers_and_floats(key: str, value: float):
    assert build(params={key: value}).params == {key: value}


@pytest.mark.parametrize("key", ["temperature", "top_p", "frequency_penalty", "presence_penalty"])
@pytest.mark.parametrize("value", ["0.7", True, [0.7], {"v": 1}])
def test_number_params_refuse_other_values(key: str, value: Any):
    assert violations(params={key: value}) == [(f"params.{key}", f"params.{key} must be a number")]


@pytest.mark.parametrize("value", [1, 2000, 2**53])
def test_max_tokens_accepts_positive_integers(value: int):
    assert build(params={"max_tokens": value}).params["max_tokens"] == value


@pytest.mark.parametrize("value", [0, -1, 1.5, 2000.0, True, "2000"])
def test_max_tokens_refuses_anything_but_a_positive_integer(value: Any):
    assert violations(params={"max_tokens": value}) == [
        ("params.max_tokens", "params.max_tokens must be a positive integer")
    ]


def test_other_params_are_kept_as_sent():
    params = {"stop": ["\n\n", "###"], "seed": 7, "custom": {"a": [1, "b", None, False]}}
    assert build(params=params).params == params


# -- what no stored JSON may hold -------------------------------------------------


@pytest.mark.parametrize("field", ["params", "meta"])
def test_objects_nested_exactly_24_levels_deep_are_accepted(field: str):
    value = {"x": nested_objects(24)}
    assert getattr(build(**{field: value}), field)["x"] == nested_objects(24)


@pytest.mark.parametrize("field", ["params", "meta"])
def test_objects_nested_25_levels_deep_are_refused(field: str):
    assert violations(**{field: {"x": nested_objects(25)}}) == [
        (field, f"{field} nests deeper than 24 levels")
    ]


def test_arrays_count_as_levels_too():
    assert build(params={"x": nested_arrays(24)}).params == {"x": nested_arrays(24)}
    assert violations(params={"x": nested_arrays(25)}) == [
        ("params", "params nests deeper than 24 levels")
    ]


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused_at_any_depth(number: float):
    assert violations(params={"temperature": number}) == [
        ("params", "params must not contain NaN or infinite numbers")
    ]
    assert violations(meta={"a": [{"b": number}]}) == [
        ("meta", "meta must not contain NaN or infinite numbers")
    ]


@pytest.mark.parametrize(
    "value", [{"stop": "a\x00"}, {"a\x00": 1}, {"a": [{"b": ["\x00"]}]}, {"a": {"k\x00": "v"}}]
)
def test_nul_in_a_key_or_a_string_is_refused(value: dict[str, Any]):
    assert violations(params=value) == [("params", "params must not contain NUL characters")]
    assert violations(meta=value) == [("meta", "meta must not contain NUL characters")]


# -- meta -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/static/favicon.png",
        "/",
        "https://example.com/a.png",
        "http://example.com",
        "HTTPS://EXAMPLE.COM/A.PNG",
        "https://user@example.com:8443/a?b=c#d",
        "data:image/png;base64,iVBORw0KGgo=",
        "DATA:IMAGE/svg+xml,<svg/>",
    ],
)
def test_image_urls_a_front_end_may_show_are_kept(url: str):
    assert build(meta={"profile_image_url": url}).meta == {"profile_image_url": url}


@pytest.mark.parametrize(
    "url",
    [
        "",
        "//evil.example/a.png",  # another host, scheme-relative
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/a.png",
        "https://",
        "https:///a.png",
        "static/favicon.png",
        "/a\nb",
        "/a\u200bb",
        42,
        ["/a.png"],
    ],
)
def test_other_image_urls_are_refused(url: Any):
    assert violations(meta={"profile_image_url": url}) == [
        ("meta.profile_image_url", BAD_IMAGE_URL)
    ]


@pytest.mark.parametrize("value", [1, ["a"], {"text": "a"}, True])
def test_description_must_be_a_string(value: Any):
    assert violations(meta={"description": value}) == [
        ("meta.description", "meta.description must be a string")
    ]


@pytest.mark.parametrize("value", [[], "vision", 1, True])
def test_capabilities_must_be_an_object(value: Any):
    assert violations(meta={"capabilities": value}) == [
        ("meta.capabilities", "meta.capabilities must be an object")
    ]


def test_other_meta_keys_are_kept_in_order():
    meta = {"tags": ["a"], "description": "", "capabilities": {}, "profile_image_url": "/x.png"}
    model = build(meta=meta)
    assert list(model.meta.items()) == list(meta.items())


# -- access grants ----------------------------------------------------------------


@pytest.mark.parametrize("access_type", ["user", "group"])
@pytest.mark.parametrize("permission", ["read", "write"])
def test_grants_of_each_kind_are_kept(access_type: str, permission: str):
    assert build(access_grants=[grant(access_type, "id-1", permission)]).access_grants == [
        AccessGrant(access_type, "id-1", permission)
    ]


@pytest.mark.parametrize("access_type", ["", "team", "User", "GROUP", " user"])
def test_an_unknown_access_type_is_refused(access_type: str):
    assert violations(access_grants=[grant(), grant(access_type=access_type)]) == [
        ("access_grants[1].access_type", "access_grants[1].access_type must be 'user' or 'group'")
    ]


@pytest.mark.parametrize("permission", ["", "admin", "Read", "read "])
def test_an_unknown_permission_is_refused(permission: str):
    assert violations(access_grants=[grant(permission=permission)]) == [
        ("access_grants[0].permission", "access_grants[0].permission must be 'read' or 'write'")
    ]


@pytest.mark.parametrize("access_id", ["", "   ", "a\nb", "a\x00b", "a\u200bb"])
def test_a_blank_or_control_access_id_is_refused(access_id: str):
    assert violations(access_grants=[grant(access_id=access_id)]) == [
        (
            "access_grants[0].access_id",
            "access_grants[0].access_id must be a non-empty id without control characters",
        )
    ]


def test_every_fault_of_one_grant_is_reported():
    assert [field for field, _ in violations(access_grants=[grant("team", "", "own")])] == [
        "access_grants[0].access_type",
        "access_grants[0].access_id",
        "access_grants[0].permission",
    ]


def test_duplicate_grants_are_collapsed_in_first_seen_order():
    a, b, c = grant("group", "a"), grant("user", "b", "write"), grant("group", "a", "write")
    assert build(access_grants=[a, b, a, c, b, a]).access_grants == [
        stored(a),
        stored(b),
        stored(c),
    ]


# -- null means "not set"; commit_message; both grant spellings ----------------------


@pytest.mark.parametrize(
    "key", ["temperature", "top_p", "frequency_penalty", "presence_penalty", "max_tokens"]
)
def test_a_null_common_param_is_not_set_and_kept(key: str):
    assert build(params={key: None}).params == {key: None}


def test_null_meta_keys_are_not_set():
    meta = build(meta={"description": None, "capabilities": None, "profile_image_url": None}).meta
    assert meta == {
        "description": None,
        "capabilities": None,
        "profile_image_url": "/static/favicon.png",
    }


def test_commit_message_is_kept_up_to_its_limit():
    assert build(commit_message="é" * 4096).commit_message == "é" * 4096
    assert build().commit_message is None
    assert violations(commit_message="x" * 4097) == [
        ("commit_message", "commit_message is too long (max 4096 characters)")
    ]
    assert violations(commit_message="a\x00") == [
        ("commit_message", "commit_message must not contain NUL characters")
    ]


@pytest.mark.parametrize(
    "sent",
    [
        GrantDraft("", "", "read", principal_type="group", principal_id="g1"),
        GrantDraft("group", "g1", "read", principal_type="group", principal_id="g1"),
        GrantDraft("group", "", "read", principal_id="g1"),
        GrantDraft("", "g1", "read", principal_type="group"),
    ],
)
def test_open_webui_spelling_is_the_same_grant(sent: GrantDraft):
    assert build(access_grants=[sent]).access_grants == [AccessGrant("group", "g1", "read")]


@pytest.mark.parametrize(
    ("sent", "names"),
    [
        (
            GrantDraft("user", "g1", "read", principal_type="group"),
            "access_type and principal_type",
        ),
        (GrantDraft("group", "g1", "read", principal_id="g2"), "access_id and principal_id"),
    ],
)
def test_spellings_that_disagree_are_refused(sent: GrantDraft, names: str):
    assert violations(access_grants=[grant(), sent]) == [
        (
            "access_grants[1]",
            f"access_grants[1] gives {names} with different values: send one of the two spellings",
        )
    ]


def same(text: str) -> str:
    """An equal string that is not the same object (as values off the wire)."""
    return "".join(list(text))


def test_spellings_that_agree_as_values_are_one_grant():
    sent = GrantDraft(same("group"), same("g1"), "read", same("group"), same("g1"))
    assert build(access_grants=[sent]).access_grants == [AccessGrant("group", "g1", "read")]


def test_a_grant_that_contradicts_itself_does_not_hide_the_next_ones():
    mixed = GrantDraft("user", "u1", "read", principal_type="group")
    assert [field for field, _ in violations(access_grants=[mixed, grant(permission="own")])] == [
        "access_grants[0]",
        "access_grants[1].permission",
    ]


def test_check_grants_returns_the_grants_or_names_every_bad_one():
    assert check_grants([grant(), grant(), grant("user", "*", "write")]) == [
        AccessGrant("group", "developers", "read"),
        AccessGrant("user", "*", "write"),
    ]
    assert check_grants([]) == []
    with pytest.raises(InvalidArgument) as caught:
        check_grants([grant(), grant(access_type="team"), grant(permission="x")])
    assert [v.field for v in caught.value.violations] == [
        "access_grants[1].access_type",
        "access_grants[2].permission",
    ]
