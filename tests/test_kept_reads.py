"""A reader's list queries asked again while the database does not change are
answered from what was kept (storage/kept_reads.py), on SQLite: the pages
equal the database's, every page of a query, and any write (on this
server, another one, or the CLI) shows in the next page."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from metrics_support import metrics_ports, scrape, value

from registry_support import Caller, add_users, cli, replicas
from support import ADMIN_KEY, Registry

READER = "kept-reader"
OTHER = "kept-other"
GROUP = "kept-group"
KEPT = "modelregistry_list_pages_kept_total"
TOTALS_KEPT = "modelregistry_list_totals_kept_total"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Registry]]:
    """Two servers on one SQLite file; the first serves metrics."""
    url = f"sqlite:///{tmp_path_factory.mktemp('kept') / 'registry.db'}"
    with replicas(url, "--metrics-port", "0") as both:
        yield both


@pytest.fixture(scope="module")
def callers(servers: tuple[Registry, Registry]) -> Iterator[dict[str, Caller]]:
    """`reader` and `admin` on the first server, `admin2` on the second; the
    reader reads 40 of the 52 models: 10 their own, 10 by a grant to them,
    10 through their group, 10 through "*"."""
    first, second = servers
    keys = add_users(first, {READER: {"can_create": True}, OTHER: {}})
    cli(first, "groups", "create", GROUP)
    cli(first, "groups", "add", GROUP, READER)
    with (
        grpc.insecure_channel(first.grpc_target) as one,
        grpc.insecure_channel(second.grpc_target) as two,
    ):
        callers = {
            "reader": Caller(first, one, keys[READER]),
            "admin": Caller(first, one, ADMIN_KEY),
            "admin2": Caller(second, two, ADMIN_KEY),
        }
        seed(callers)
        yield callers


def seed(callers: dict[str, Caller]) -> None:
    admin, reader = callers["admin"], callers["reader"]
    names = itertools.cycle(["Alpha sommelier", "beta", "Gamma sommelier", "delta", "Épsilon"])
    grants = {
        "granted": {"access_type": "user", "access_id": READER, "permission": "read"},
        "grouped": {"access_type": "group", "access_id": GROUP, "permission": "write"},
        "everyone": {"access_type": "user", "access_id": "*", "permission": "read"},
        "other": {"access_type": "user", "access_id": OTHER, "permission": "read"},
    }
    for number in range(10):
        model = {"name": f"{next(names)} {number}", "meta": {"tags": [{"name": f"t{number % 3}"}]}}
        reader.create({**model, "id": f"kept-own-{number}", "params": {"top_k": number}})
        for how, grant in grants.items():
            model_id = f"kept-{how}-{number}"
            admin.create({**model, "id": model_id, "params": {"seed": number}})
            admin.update_access(model_id, [grant])
    for number in range(2):
        admin.create({"id": f"kept-hidden-{number}", "name": "hidden", "params": {}, "meta": {}})


def kept_pages(registry: Registry, metric: str = KEPT) -> float:
    [port] = metrics_ports(registry)
    return value(scrape(port), metric) or 0.0


def walk(caller: Caller, between: Any = None, **query: Any) -> list[tuple[Any, ...]]:
    """Every page of one query by token: (ids, total, token) each; `between`
    runs before every page."""
    pages: list[tuple[Any, ...]] = []
    token = ""
    while True:
        if between is not None:
            between()
        page = caller.list(**query, page_token=token)
        pages.append(([item.id for item in page.items], page.total, page.next_page_token))
        token = page.next_page_token
        if not token:
            return pages


QUERIES = [
    {"page_size": 7},
    {"page_size": 7, "order_by": "name", "direction": "asc"},
    {"page_size": 7, "order_by": "name", "direction": "desc"},
    {"page_size": 6, "order_by": "updated_at", "direction": "asc"},
    {"page_size": 3, "query": "sommelier"},
    {"page_size": 4, "tag": "T1", "order_by": "name"},
    {"page_size": 5, "view_option": "shared"},
    {"page_size": 5, "view_option": "created", "order_by": "name"},
    {"page_size": 50},
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: ",".join(f"{k}={v}" for k, v in q.items()))
def test_kept_pages_equal_the_pages_the_database_answers(
    callers: dict[str, Caller], query: dict[str, Any]
) -> None:
    reader, admin2 = callers["reader"], callers["admin2"]
    registry = reader.registry
    # A write on the other server before every page: each page is read from
    # the database, never kept.
    uncached_before = kept_pages(registry)
    from_database = walk(reader, between=lambda: admin2.create(unrelated()), **query)
    assert kept_pages(registry) == uncached_before
    # The same changes before the walks below, so the data is the same again:
    # none happen between their pages.
    admin2.create(unrelated())
    before = kept_pages(registry)
    first_walk = walk(reader, **query)
    between = kept_pages(registry)
    second_walk = walk(reader, **query)
    expected = [ids for ids, _, _ in from_database]
    # The noise models are the admin's and readable by no one: the reader's
    # pages are the same models; totals and tokens too.
    assert [ids for ids, _, _ in first_walk] == expected
    assert first_walk == second_walk
    assert [total for _, total, _ in first_walk] == [total for _, total, _ in from_database]
    # The first page missed (a write came just before it). It kept the
    # matches if the query was kept at an older version (an earlier case of
    # the same query, with another page size); else the second page did. The
    # rest came from them, and the second walk all of it.
    assert between - before in (len(first_walk) - 1, len(first_walk) - 2)
    assert kept_pages(registry) - between == len(second_walk)
    ids = [model_id for page, _, _ in first_walk for model_id in page]
    assert len(ids) == len(set(ids)) == first_walk[0][1]


_NOISE = itertools.count()


def unrelated() -> dict[str, Any]:
    """A model the reader may not read."""
    return {"id": f"kept-noise-{next(_NOISE)}", "name": "noise", "params": {}, "meta": {}}


@pytest.mark.parametrize(
    "query",
    [{"page_size": 7}, {"page_size": 4, "query": "sommelier"}, {"page_size": 9, "tag": "t1"}],
    ids=["all", "search", "tag"],
)
def test_an_admins_kept_totals_equal_the_totals_the_database_counts(
    callers: dict[str, Caller], query: dict[str, Any]
) -> None:
    """An admin's page walks an index in order and counts its total apart;
    the total is kept at the database's version and follows every write."""
    admin, admin2 = callers["admin"], callers["admin2"]
    registry = admin.registry
    before = kept_pages(registry, TOTALS_KEPT)
    from_database = walk(admin, between=lambda: admin2.create(unrelated()), **query)
    assert kept_pages(registry, TOTALS_KEPT) == before
    admin2.create(unrelated())
    first_walk = walk(admin, **query)
    second_walk = walk(admin, **query)
    assert first_walk == second_walk
    # Each page of the walk with writes between counted the noise made so
    # far (the admin sees it, but it holds no word and no tag).
    step = 0 if "query" in query or "tag" in query else 1
    totals = [total for _, total, _ in from_database]
    assert totals == [totals[0] + step * n for n in range(len(totals))]
    assert {total for _, total, _ in first_walk} == {totals[-1] + step}
    assert len(first_walk) >= 2
    # The first page counted, the second kept its total, the rest were kept.
    kept = len(first_walk) + len(second_walk) - 2
    assert kept_pages(registry, TOTALS_KEPT) - before == kept
    # A write on the other server shows in the next page's total.
    total = first_walk[0][1]
    admin2.create({**unrelated(), "name": "sommelier t1", "meta": {"tags": [{"name": "t1"}]}})
    assert admin.list(**query).total == total + 1


def test_pages_by_number_from_kept_matches(callers: dict[str, Caller]) -> None:
    """Open WebUI's page=N: the same models as the walk by token."""
    reader = callers["reader"]
    by_token = [ids for ids, _, _ in walk(reader, page_size=9, order_by="name")]
    for _ in range(2):  # the second round is all kept
        by_number = [
            [item.id for item in reader.list(page_size=9, order_by="name", page=number).items]
            for number in range(1, len(by_token) + 2)
        ]
        assert by_number == [*by_token, []]
    assert reader.list(page_size=9, order_by="name", page=len(by_token) + 1).total == 40


def test_every_write_shows_in_the_next_page_of_a_kept_query(
    servers: tuple[Registry, Registry], callers: dict[str, Caller]
) -> None:
    reader, admin, admin2 = callers["reader"], callers["admin"], callers["admin2"]
    first, _ = servers

    def page() -> tuple[list[str], int]:
        listed = reader.list(page_size=100, order_by="name")
        return [item.id for item in listed.items], listed.total

    before = kept_pages(first)
    ids, total = page()
    assert page() == page() == (ids, total)
    assert kept_pages(first) - before >= 2  # the third and fourth were kept
    assert total == 40

    # A model shared with everyone, created on the other server.
    admin2.create({"id": "kept-new", "name": "Aardvark", "params": {}, "meta": {}})
    admin2.update_access(
        "kept-new", [{"access_type": "user", "access_id": "*", "permission": "read"}]
    )
    assert page() == (["kept-new", *ids], 41)
    page()  # kept again at this version

    # Leaving the group (the CLI, a third connection) hides its models.
    cli(first, "groups", "remove", GROUP, READER)
    grouped = {f"kept-grouped-{number}" for number in range(10)}
    assert page() == ([i for i in ["kept-new", *ids] if i not in grouped], 31)
    cli(first, "groups", "add", GROUP, READER)
    assert page() == (["kept-new", *ids], 41)
    page()

    # A toggle shows in the item; a delete removes it; on this server too.
    assert reader.list(page_size=1, order_by="name").items[0].is_active is True
    admin2.toggle("kept-new")
    assert reader.list(page_size=1, order_by="name").items[0].is_active is False
    admin.delete("kept-new")
    assert page() == (ids, 40)


def test_a_readers_tags_follow_every_write(callers: dict[str, Caller]) -> None:
    reader, admin2 = callers["reader"], callers["admin2"]
    assert reader.tags() == reader.tags() == ["t0", "t1", "t2"]
    admin2.update(
        {"id": "kept-everyone-0", "name": "Alpha", "params": {}, "meta": {"tags": ["Fresh"]}}
    )
    assert reader.tags() == reader.tags() == ["Fresh", "t0", "t1", "t2"]
    admin2.update(
        {"id": "kept-everyone-0", "name": "Alpha", "params": {}, "meta": {"tags": ["t0"]}}
    )
    assert reader.tags() == ["t0", "t1", "t2"]
