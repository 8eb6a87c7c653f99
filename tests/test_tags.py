"""Tags: ListModelTags (Open WebUI's `GET /models/tags`, a bare array) and
ListModels' `tag` filter, as Open WebUI's model workspace uses them: the
tags of the models a caller may read, each once whatever its case; a filter
matching a tag exactly but for case; both following every write. On gRPC
and both HTTP prefixes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from registry_support import FACES, Registered, callers_for, ok, refused
from support import start_registry

USERS = {"tagger": {"can_create": True}, "reader": {}, "stranger": {}}


def tagged(*names: Any) -> dict[str, Any]:
    """meta with Open WebUI's tags: {"name": ...} each (or as given)."""
    return {"tags": [name if not isinstance(name, str) else {"name": name} for name in names]}


def model(model_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"id": model_id, "name": model_id.title(), "params": {}, "meta": meta}


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Registered]:
    registry = start_registry(database_url_factory(), http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            web = Registered(registry, callers_for(registry, channel, USERS))
            admin, tagger = web.callers["admin"], web.callers["tagger"]
            share = [{"access_type": "user", "access_id": "reader", "permission": "read"}]
            tagger.create(model("t-coder", tagged("Code", "GPT")))
            tagger.create(model("t-writer", tagged("writing", "gpt", " ")))
            tagger.update_access("t-writer", share)
            admin.create(model("t-hidden", tagged("Secret")))
            # Not tags: a tag without a name, a number, a meta without a list.
            admin.create(model("t-odd", tagged({"x": 1}, 7, "")))
            admin.create(model("t-plain", {"tags": "Code"}))
            yield web
    finally:
        assert registry.stop() == 0


def ids(reply_body: dict[str, Any]) -> list[str]:
    return sorted(item["id"] for item in reply_body["items"])


@pytest.mark.parametrize("face", FACES)
def test_the_tags_of_what_each_caller_may_read(web: Registered, face: str) -> None:
    on = {who: web.callers[who].on(face) for who in web.callers}
    # Each tag once, whatever its case (the spelling of its first model), sorted.
    assert on["admin"].tags() == ok(face, ["Code", "GPT", "Secret", "writing"])
    assert on["tagger"].tags() == ok(face, ["Code", "GPT", "writing"])
    assert on["reader"].tags() == ok(face, ["gpt", "writing"])
    assert on["stranger"].tags() == ok(face, [])
    assert on["no_key"].tags() == refused(face, "unauthenticated")


@pytest.mark.parametrize("face", FACES)
def test_a_tag_filters_the_list_whatever_its_case(web: Registered, face: str) -> None:
    admin = web.callers["admin"].on(face)
    reply = admin.list(tag="gpt")
    assert reply.status == ok(face, None).status
    assert ids(reply.body) == ["t-coder", "t-writer"] and reply.body["total"] == 2
    assert ids(admin.list(tag="CODE").body) == ["t-coder"]  # not t-plain: no tags list
    assert ids(admin.list(tag="gpt", query="writer").body) == ["t-writer"]
    assert admin.list(tag="nothing").body["items"] == []
    reader = web.callers["reader"].on(face).list(tag="GPT")
    assert ids(reader.body) == ["t-writer"] and reader.body["total"] == 1
    assert web.callers["stranger"].on(face).list(tag="secret").body["total"] == 0


@pytest.mark.parametrize("face", FACES)
def test_a_bad_tag_is_invalid(web: Registered, face: str) -> None:
    reply = web.callers["admin"].on(face).list(tag="x" * 257)
    expected = {"detail": "tag is too long (max 256 characters)"}
    if face == "grpc":
        assert (reply.status, reply.body) == ("INVALID_ARGUMENT", expected)
    else:
        assert (reply.status, reply.body) == (400, expected)


def test_tags_follow_every_write(web: Registered) -> None:
    admin, tagger = web.callers["admin"], web.callers["tagger"]
    tagger.create(model("t-moving", tagged("Before")))
    assert "Before" in tagger.tags()
    assert [m.id for m in tagger.list(tag="before").items] == ["t-moving"]

    tagger.update({"id": "t-moving", "name": "Moving", "params": {}, "meta": tagged("After")})
    assert "Before" not in tagger.tags() and "After" in tagger.tags()
    assert [m.id for m in tagger.list(tag="after").items] == ["t-moving"]
    assert list(tagger.list(tag="before").items) == []

    first = tagger.history("t-moving").versions[-1].id
    tagger.restore("t-moving", first)  # back to "Before"
    assert [m.id for m in tagger.list(tag="before").items] == ["t-moving"]

    tagger.delete("t-moving")
    assert "Before" not in admin.tags()
    assert list(admin.list(tag="before").items) == []


def test_an_import_writes_its_tags(web: Registered) -> None:
    admin = web.callers["admin"]
    record = model("t-imported", tagged("Carried"))
    assert admin.import_models([record]).created == 1
    assert "Carried" in admin.tags()
    assert [m.id for m in admin.list(tag="carried").items] == ["t-imported"]


def test_a_page_token_is_bound_to_its_tag(web: Registered) -> None:
    admin = web.callers["admin"]
    first = admin.list(tag="gpt", page_size=1)
    assert first.next_page_token
    error = None
    try:
        admin.list(tag="code", page_size=1, page_token=first.next_page_token)
    except grpc.RpcError as raised:
        error = raised
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    rest = admin.list(tag="gpt", page_size=1, page_token=first.next_page_token)
    assert [m.id for m in [*first.items, *rest.items]] == ["t-writer", "t-coder"]
