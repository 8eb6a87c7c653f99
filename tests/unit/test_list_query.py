"""domain/listing.py: ListModels' request rules and page tokens."""

from __future__ import annotations

from typing import Any

import pytest

from modelregistry_server.domain.errors import InvalidArgument
from modelregistry_server.domain.listing import (
    ListQuery,
    list_query,
    next_page_token,
    search_words,
    tag_key,
    tags_of,
    words_of,
)


def query(**fields: Any) -> ListQuery:
    values: dict[str, Any] = {
        "page_size": 0,
        "page_token": "",
        "query": "",
        "view_option": "",
        "order_by": "",
        "direction": "",
        "is_active": None,
        "owner_id": "",
        "page": 0,
        **fields,
    }
    return list_query(**values)


def violations(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as caught:
        query(**fields)
    return [(v.field, v.description) for v in caught.value.violations]


def test_defaults_are_open_webuis():
    checked = query()
    assert (checked.order_by, checked.descending, checked.page_size) == ("created_at", True, 30)
    assert (checked.after, checked.offset, checked.words, checked.view) == (None, 0, (), "")


@pytest.mark.parametrize(
    ("order_by", "direction", "descending"),
    [
        ("name", "", False),
        ("created_at", "", True),
        ("updated_at", "", True),
        ("name", "desc", True),
        ("created_at", "asc", False),
    ],
)
def test_direction_defaults_by_order(order_by: str, direction: str, descending: bool):
    assert query(order_by=order_by, direction=direction).descending is descending


def test_page_is_an_offset_of_page_sizes():
    assert query(page=3).offset == 60
    assert query(page=3, page_size=10).offset == 20
    assert query(page=1).offset == 0


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"page_size": -1}, ("page_size", "page_size must be between 0 and 1000")),
        ({"page_size": 1001}, ("page_size", "page_size must be between 0 and 1000")),
        ({"order_by": "id"}, ("order_by", "order_by must be 'name', 'created_at' or 'updated_at'")),
        ({"direction": "up"}, ("direction", "direction must be 'asc' or 'desc'")),
        (
            {"view_option": "mine"},
            ("view_option", "view_option must be 'created', 'shared' or empty"),
        ),
        ({"page": -1}, ("page", "page must be between 1 and 100000")),
        ({"page": 100_001}, ("page", "page must be between 1 and 100000")),
        ({"page": 2, "page_token": "x"}, ("page", "send page or page_token, not both")),
        ({"query": "x" * 257}, ("query", "query is too long (max 256 characters)")),
        ({"query": "a\x00"}, ("query", "query must not contain NUL characters")),
        ({"page_token": "not a token"}, ("page_token", "page_token is not a token of this query")),
    ],
)
def test_bad_fields_are_named(fields: dict[str, Any], expected: tuple[str, str]):
    assert violations(**fields) == [expected]


def test_every_bad_field_is_reported():
    fields = [f for f, _ in violations(page_size=-1, order_by="x", direction="y", view_option="z")]
    assert fields == ["page_size", "view_option", "order_by", "direction"]


def test_a_token_continues_its_own_query():
    first = query(order_by="name", query="gpt")
    token = next_page_token(first, ("Alpha", "m-1"))
    assert query(order_by="name", query="GPT", page_token=token).after == ("Alpha", "m-1")


@pytest.mark.parametrize(
    "other",
    [
        {"order_by": "created_at"},
        {"direction": "desc"},
        {"query": "gpt4"},
        {"view_option": "shared"},
        {"is_active": True},
        {"owner_id": "bob"},
    ],
)
def test_a_token_of_another_query_is_refused(other: dict[str, Any]):
    token = next_page_token(query(order_by="name", query="gpt"), ("Alpha", "m-1"))
    fields = {"order_by": "name", "query": "gpt", **other, "page_token": token}
    assert violations(**fields) == [("page_token", "page_token is not a token of this query")]


def test_page_size_is_not_part_of_the_query():
    token = next_page_token(query(page_size=10), (5, "m"))
    assert query(page_size=20, page_token=token).after == (5, "m")


@pytest.mark.parametrize(
    ("texts", "words"),
    [
        (("my-custom-gpt4", "My Custom GPT-4", "gpt-4"), ["my", "custom", "gpt4", "gpt", "4"]),
        (("Ünïcode_ÉTÉ",), ["ünïcode", "été"]),
        (("  ", None, "..."), []),
        (("a" * 300,), ["a" * 256]),
    ],
)
def test_words_are_runs_of_letters_and_digits(texts: tuple[Any, ...], words: list[str]):
    assert words_of(*texts) == words


def test_a_query_keeps_at_most_16_distinct_words():
    assert search_words(" ".join(f"w{i}" for i in range(20)) + " w0") == tuple(
        f"w{i}" for i in range(16)
    )


def test_tags_are_read_as_open_webui_writes_them() -> None:
    meta = {"tags": [{"name": " Vision "}, "audio", {"name": "VISION"}, {"x": 1}, 7, "", " "]}
    assert tags_of(meta) == ["Vision", "audio"]  # each once by key, first spelling kept
    assert tags_of({"tags": "vision"}) == [] and tags_of({}) == [] and tags_of(None) == []
    assert tags_of({"tags": [{"name": "x" * 300}]}) == ["x" * 256]


def test_a_tag_is_matched_whatever_its_case() -> None:
    assert tag_key(" Straße ") == tag_key("STRASSE") == "strasse"
    assert query(tag="Vision").tag == "vision"
    assert query(tag="").tag is None and query(tag="  ").tag is None


def test_a_bad_tag_is_named() -> None:
    assert violations(tag="x" * 257) == [("tag", "tag is too long (max 256 characters)")]
    assert violations(tag="a\x00b") == [("tag", "tag must not contain NUL characters")]


def test_a_page_token_is_bound_to_its_tag() -> None:
    first = query(tag="vision", page_size=1)
    token = next_page_token(first, ("x", "model-1"))
    assert query(tag="VISION", page_size=1, page_token=token).after == ("x", "model-1")
    assert violations(tag="audio", page_size=1, page_token=token)[0][0] == "page_token"
