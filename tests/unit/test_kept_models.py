"""The caches of ListModels: storage's models by version
(storage/model_cache.py) and transport's messages by version and view
(transport/messages.py). Their budgets, their order of eviction, and what
they never keep."""

from __future__ import annotations

from modelregistry_server.domain.access import FULL_ACCESS, Access, as_seen_by
from modelregistry_server.domain.models import Model
from modelregistry_server.storage.model_cache import ModelCache
from modelregistry_server.transport.convert import model_to_proto
from modelregistry_server.transport.messages import ModelMessages

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


def test_a_message_is_kept_per_version_and_view() -> None:
    messages = ModelMessages()
    stored = model("v1", params={"system": "secret"})
    writer = as_seen_by(stored, FULL_ACCESS)
    reader = as_seen_by(stored, Access(read=True, write=False))
    assert messages.of(writer) == model_to_proto(writer)
    assert messages.of(reader) == model_to_proto(reader)
    assert messages.of(writer) is messages.of(writer)  # built once
    assert len(messages.of(reader).params.fields) == 0
    assert messages.of(writer).params.fields["system"].string_value == "secret"
    assert len(messages) == 2


def test_a_message_without_a_version_is_built_each_time() -> None:
    messages = ModelMessages()
    legacy = as_seen_by(model(""), FULL_ACCESS)
    assert messages.of(legacy) == model_to_proto(legacy)
    assert messages.of(legacy) is not messages.of(legacy)
    assert len(messages) == 0


def test_messages_stay_within_their_budget() -> None:
    one = model_to_proto(as_seen_by(model("a"), FULL_ACCESS)).ByteSize() + 512
    messages = ModelMessages(budget_bytes=2 * one)
    for version in ("a", "b", "c"):
        messages.of(as_seen_by(model(version), FULL_ACCESS))
    assert len(messages) == 2


def test_what_a_caller_sees_varies_with_write_access_alone() -> None:
    """The rule transport/messages.py keys its messages by."""
    stored = model("v1", params={"system": "secret"})
    for write in (True, False):
        views = [as_seen_by(stored, Access(read=read, write=write)) for read in (True, False)]
        assert views[0] == views[1]
    assert as_seen_by(stored, FULL_ACCESS) != as_seen_by(stored, Access(read=True, write=False))
