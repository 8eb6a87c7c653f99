"""An admin's search for one word, newest first, reads its pages from that
word's rows in creation order (model_words.created_at, migration 0008); a
query whose range holds several words merges them. Either way the pages are
every match once, in (created_at, id) order, by token and by page number,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from registry_support import Caller
from support import ADMIN_KEY, start_registry


@pytest.fixture(scope="module")
def admin(database_url_factory: Callable[[], str]) -> Iterator[Caller]:
    registry = start_registry(database_url_factory())
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            caller = Caller(registry, channel, ADMIN_KEY)
            # Many within one second: ties on created_at are ordered by id.
            for number in range(23):
                word = "narwhal" if number % 4 else "narwhals"
                caller.create(
                    {"id": f"sea-{number:02d}", "name": f"Arctic {word}", "params": {}, "meta": {}}
                )
            caller.create({"id": "sea-other", "name": "Walrus", "params": {}, "meta": {}})
            yield caller
    finally:
        assert registry.stop() == 0


def newest_first(admin: Caller, ids: list[str]) -> list[str]:
    models = [admin.get(model_id) for model_id in ids]
    return [m.id for m in sorted(models, key=lambda m: (m.created_at, m.id), reverse=True)]


NARWHAL = [f"sea-{n:02d}" for n in range(23) if n % 4]
NARWHALS = [f"sea-{n:02d}" for n in range(23) if not n % 4]


@pytest.mark.parametrize(
    ("text", "matched"),
    [("arctic", NARWHAL + NARWHALS), ("NARWHALS", NARWHALS), ("narwhal", NARWHAL + NARWHALS)],
    ids=["one word", "another word", "a prefix of two words"],
)
def test_pages_of_a_search_hold_every_match_once_in_order(
    admin: Caller, text: str, matched: list[str]
) -> None:
    expected = newest_first(admin, matched)
    pages = admin.list_pages(query=text, page_size=4)
    assert [item.id for page in pages for item in page.items] == expected
    assert {page.total for page in pages} == {len(expected)}
    oldest_first = admin.list_all(query=text, page_size=5, direction="asc")
    assert [item.id for item in oldest_first] == expected[::-1]
    by_number = [
        item.id
        for number in range(1, 5)
        for item in admin.list(query=text, page_size=6, page=number).items
    ]
    assert by_number == expected
