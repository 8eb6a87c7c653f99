"""The caches of ListModels: storage's models by version
(storage/model_cache.py) and transport's encoded entries by version and view
(transport/list_replies.py). Their budgets, their order of eviction, what
they never keep, and the replies written from them."""

from __future__ import annotations

from modelregistry.v1 import model_service_pb2 as pb
from modelregistry_server.domain.access import FULL_ACCESS, Access, as_seen_by
from modelregistry_server.domain.listing import (
    Listed,
    ListedPage,
    ListQuery,
    list_query,
    next_page_token,
)
from modelregistry_server.domain.models import Model
from modelregistry_server.storage.model_cache import ModelCache
from modelregistry_server.transport.convert import model_to_proto
from modelregistry_server.transport.list_replies import (
    ModelEntries,
    encoded_page,
    item_entry,
    model_message,
)

OVERHEAD = 1024  # model_cache's fixed cost per model


def cost(stored_bytes: int) -> int:
    """What model_cache counts a model at: its JSON decoded, about 4 bytes a byte."""
    return 4 * stored_bytes + OVERHEAD


def model(version: str, **fields: object) -> Model:
    values: dict[str, object] = {
        "id": f"m-{version}",
        "user_id": "owner",
        "base_model_id": None,
        "name": f"Model {version}",
        "params": {"temperature": 0.5},
        "meta": {},
        "access_grants": [],
        "is_active": True,
        "created_at": 1,
        "updated_at": 2,
        "version_id": version,
    }
    values.update(fields)
    return Model(**values)  # type: ignore[arg-type]


def test_a_kept_model_is_found_by_its_version_only() -> None:
    cache = ModelCache()
    kept = model("v1")
    cache.put(kept, 100)
    assert cache.get("v1") is kept
    assert cache.get("m-v1") is None  # not by the model's id
    assert cache.get("v2") is None


def test_the_least_recently_used_go_first_within_the_budget() -> None:
    cache = ModelCache(budget_bytes=3 * cost(100))
    for version in ("a", "b", "c"):
        cache.put(model(version), 100)
    assert cache.get("a") is not None  # now the most recently used
    cache.put(model("d"), 100)
    assert [v for v in "abcd" if cache.get(v) is not None] == ["a", "c", "d"]
    assert cache.used_bytes == 3 * cost(100)


def test_get_many_finds_each_in_order_and_counts_as_use() -> None:
    cache = ModelCache(budget_bytes=3 * cost(100))
    kept = {version: model(version) for version in "abc"}
    for version in "abc":
        cache.put(kept[version], 100)
    found = cache.get_many(["c", "missing", "", None, "a"])
    assert found == [kept["c"], None, None, None, kept["a"]]
    assert found[0] is kept["c"] and found[4] is kept["a"]
    cache.put(model("d"), 100)  # "b" was used least recently
    assert [v for v in "abcd" if cache.get(v) is not None] == ["a", "c", "d"]


def test_a_large_model_pushes_out_as_many_as_it_needs() -> None:
    cache = ModelCache(budget_bytes=4 * cost(100))
    for version in ("a", "b", "c", "d"):
        cache.put(model(version), 100)
    cache.put(model("big"), 2 * 100 + OVERHEAD // 4)
    assert [v for v in ("a", "b", "c", "d", "big") if cache.get(v)] == ["c", "d", "big"]


def test_never_kept_without_a_version_or_above_the_budget() -> None:
    cache = ModelCache(budget_bytes=10_000)
    cache.put(model(""), 10)
    cache.put(model("huge"), 2_500)  # 11,024 counted
    assert len(cache) == 0 and cache.used_bytes == 0


def test_keeping_a_version_again_counts_it_once() -> None:
    cache = ModelCache()
    cache.put(model("v1"), 100)
    cache.put(model("v1"), 300)
    assert len(cache) == 1 and cache.used_bytes == cost(300)


def decoded(entry: bytes) -> pb.Model:
    [message] = pb.ListModelsResponse.FromString(entry).items
    return message


def test_an_entry_is_kept_per_version_and_view() -> None:
    entries = ModelEntries()
    stored = model("v1", params={"system": "secret"})
    writer, reader = Listed(stored, write=True), Listed(stored, write=False)
    assert decoded(entries.of(writer)) == model_to_proto(as_seen_by(stored, FULL_ACCESS))
    assert decoded(entries.of(reader)) == model_to_proto(
        as_seen_by(stored, Access(read=True, write=False))
    )
    assert entries.of(writer) is entries.of(writer)  # encoded once
    assert len(decoded(entries.of(reader)).params.fields) == 0
    assert decoded(entries.of(writer)).params.fields["system"].string_value == "secret"
    assert decoded(entries.of(writer)).write_access is True
    assert decoded(entries.of(reader)).write_access is False
    assert len(entries) == 2


def test_a_got_model_shares_the_entry_of_the_same_version_and_view() -> None:
    entries = ModelEntries()
    stored = model("v1", params={"system": "secret"})
    listed = entries.of(Listed(stored, write=False))
    got = as_seen_by(stored, Access(read=True, write=False))  # what GetModel answers
    assert entries.of_seen(got) is listed
    assert entries.of_seen(as_seen_by(stored, FULL_ACCESS)) is not listed
    assert len(entries) == 2


def test_getmodels_reply_is_the_message_inside_the_entry() -> None:
    # Lengths whose varint takes one, two, three and four bytes.
    for size in (0, 100, 20_000, 3_000_000):
        seen = as_seen_by(model("v1", params={"system": "x" * size}), FULL_ACCESS)
        assert model_message(item_entry(seen)) == model_to_proto(seen).SerializeToString()


def test_an_entry_without_a_version_is_encoded_each_time() -> None:
    entries = ModelEntries()
    legacy = Listed(model(""), write=True)
    assert entries.of(legacy) == item_entry(legacy.seen())
    assert entries.of(legacy) is not entries.of(legacy)
    assert len(entries) == 0 and entries.used_bytes == 0


def test_entries_stay_within_their_budget() -> None:
    one = len(item_entry(Listed(model("a"), write=True).seen())) + 100
    entries = ModelEntries(budget_bytes=2 * one)
    for version in ("a", "b", "c"):
        entries.of(Listed(model(version), write=True))
    assert len(entries) == 2 and entries.used_bytes == 2 * one


def a_query(page_size: int = 0) -> ListQuery:
    return list_query(
        page_size=page_size,
        page_token="",
        query="",
        view_option="",
        order_by="created_at",
        direction="desc",
        is_active=None,
        owner_id="",
        page=0,
    )


def test_a_reply_written_from_entries_is_the_message_built_whole() -> None:
    query = a_query(page_size=2)
    stored = [model("v1", params={"system": "secret"}), model("v2"), model("v3")]
    page = ListedPage(
        items=[Listed(stored[0], write=False), Listed(stored[1], write=True)],
        total=3,
        last=(2, "m-v2"),
    )
    expected = pb.ListModelsResponse(
        items=[
            model_to_proto(as_seen_by(stored[0], Access(read=True, write=False))),
            model_to_proto(as_seen_by(stored[1], FULL_ACCESS)),
        ],
        total=3,
        next_page_token=next_page_token(query, (2, "m-v2")),
    )
    reply = encoded_page(query, page, ModelEntries().of)
    assert pb.ListModelsResponse.FromString(reply) == expected
    assert reply == expected.SerializeToString()


def test_the_last_page_and_an_empty_one_have_no_token() -> None:
    query = a_query()
    empty = encoded_page(query, ListedPage(items=[], total=0, last=None), ModelEntries().of)
    assert pb.ListModelsResponse.FromString(empty) == pb.ListModelsResponse()
    assert empty == b""


def test_what_a_caller_sees_varies_with_write_access_alone() -> None:
    """The rule transport/list_replies.py keys its entries by."""
    stored = model("v1", params={"system": "secret"})
    for write in (True, False):
        views = [as_seen_by(stored, Access(read=read, write=write)) for read in (True, False)]
        assert views[0] == views[1]
    assert as_seen_by(stored, FULL_ACCESS) != as_seen_by(stored, Access(read=True, write=False))
