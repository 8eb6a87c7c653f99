"""ListModels: keyset paging over 1,000 models in every order (also while
other models come and go), page tokens bound to their query, the request's
rules, and Open WebUI's list over HTTP (page=N of 30, view_option, text
search, filters), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from modelregistry.v1 import model_service_pb2 as pb

from registry_support import (
    FACES,
    PREFIXES,
    Caller,
    Registered,
    api_json,
    assert_rpc_error,
    callers_for,
    ok,
    refused,
    rpc_error,
    seen_by_reader,
    seen_by_writer,
)
from support import ADMIN_KEY, query, start_registry

MODELS = 1000
PAGE = 37
ORDERS = [
    (key, direction)
    for key in ("name", "created_at", "updated_at")
    for direction in ("asc", "desc")
]
# Names sort apart from ids, repeat (ties are broken by id), and mix cases
# and scripts: both databases compare them as bytes, as Python compares str.
NAME_STEMS = ["alpha", "Beta", "éclair", "Zulu", "beta", "中文", "ALPHA", "😀 smile", "delta"]


def paged_name(index: int) -> str:
    return f"{NAME_STEMS[index * 7 % len(NAME_STEMS)]} {(index * 389) % 97:02d}"


@pytest.fixture(scope="module")
def paged(database_url_factory: Callable[[], str]) -> Iterator[Caller]:
    """A gRPC registry holding MODELS models, and its admin."""
    registry = start_registry(database_url_factory())
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            admin = Caller(registry, channel, ADMIN_KEY)
            models = [
                {
                    "id": f"p-{i:04d}",
                    "name": paged_name(i),
                    "params": {},
                    "meta": {},
                    "is_active": i % 5 != 0,
                }
                for i in range(MODELS)
            ]
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(admin.create, models))
            yield admin
    finally:
        assert registry.stop() == 0


def stored_order(database_url: str, key: str, direction: str) -> list[str]:
    """Every stored model's id, in (key, id) order: the order a list must have."""
    rows = query(database_url, f"SELECT id, {key} AS k FROM models")
    ordered = sorted(rows, key=lambda row: (row.k, row.id))
    ids = [row.id for row in ordered]
    return ids[::-1] if direction == "desc" else ids


def sort_key(item: pb.Model, key: str) -> tuple[Any, str]:
    return getattr(item, key), item.id


# -- paging -------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "direction"), ORDERS)
def test_pages_of_37_give_every_model_once_in_order(paged: Caller, key: str, direction: str):
    pages = paged.list_pages(page_size=PAGE, order_by=key, direction=direction)
    assert [len(page.items) for page in pages] == [PAGE] * (MODELS // PAGE) + [MODELS % PAGE]
    assert {page.total for page in pages} == {MODELS}
    assert pages[-1].next_page_token == "" and all(page.next_page_token for page in pages[:-1])
    ids = [item.id for page in pages for item in page.items]
    assert ids == stored_order(paged.registry.database_url, key, direction)
    keys = [sort_key(item, key) for page in pages for item in page.items]
    assert keys == sorted(keys, reverse=direction == "desc")


def test_the_default_order_is_newest_first_and_names_go_up(paged: Caller):
    url = paged.registry.database_url
    assert [m.id for m in paged.list_all(page_size=300)] == stored_order(url, "created_at", "desc")
    assert [m.id for m in paged.list_all(page_size=300, order_by="name")] == stored_order(
        url, "name", "asc"
    )
    assert [m.id for m in paged.list_all(page_size=300, order_by="updated_at")] == stored_order(
        url, "updated_at", "desc"
    )


def test_a_last_full_page_has_no_next_page(paged: Caller):
    pages = paged.list_pages(page_size=40, order_by="name")
    assert [len(page.items) for page in pages] == [40] * (MODELS // 40)
    assert pages[-1].next_page_token == ""
    whole = paged.list(page_size=1000, order_by="name")
    assert len(whole.items) == MODELS and whole.next_page_token == ""


def test_the_page_size_may_change_between_pages(paged: Caller):
    first = paged.list(page_size=10, order_by="name")
    second = paged.list(page_size=25, order_by="name", page_token=first.next_page_token)
    third = paged.list(page_size=0, order_by="name", page_token=second.next_page_token)
    ids = [m.id for page in (first, second, third) for m in page.items]
    assert ids == stored_order(paged.registry.database_url, "name", "asc")[: 10 + 25 + 30]


def test_filters_page_too(paged: Caller):
    pages = paged.list_pages(page_size=PAGE, order_by="name", is_active=False)
    ids = [item.id for page in pages for item in page.items]
    inactive = [f"p-{i:04d}" for i in range(0, MODELS, 5)]
    assert sorted(ids) == inactive and len(ids) == len(set(ids))
    assert {page.total for page in pages} == {len(inactive)}
    names = [(m.name, m.id) for page in pages for m in page.items]
    assert names == sorted(names)


@pytest.mark.parametrize(("key", "direction"), ORDERS)
def test_paging_while_other_models_come_and_go(paged: Caller, key: str, direction: str):
    """Keyset paging while 4 threads create and delete other models: every
    model that existed throughout appears exactly once, and the whole list
    is in order."""
    stop = threading.Event()
    busy = threading.Barrier(5)
    churned = Counter()
    failures: list[BaseException] = []
    names = itertools.count()

    def churn(worker: int) -> None:
        try:
            busy.wait(timeout=60)
            while not stop.is_set():
                n = next(names)
                model_id = f"churn-{key}-{direction}-{worker}-{n}"
                paged.create({"id": model_id, "name": paged_name(n), "params": {}, "meta": {}})
                churned["created"] += 1
                if n % 3:
                    paged.delete(model_id)
                    churned["deleted"] += 1
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)
            stop.set()

    threads = [threading.Thread(target=churn, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        busy.wait(timeout=60)
        pages = paged.list_pages(page_size=PAGE, order_by=key, direction=direction)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    assert churned["created"] > 0
    items = [item for page in pages for item in page.items]
    seen = Counter(item.id for item in items)
    assert [model_id for model_id, times in seen.items() if times > 1] == []
    assert sum(1 for model_id in seen if model_id.startswith("p-")) == MODELS
    keys = [sort_key(item, key) for item in items]
    assert keys == sorted(keys, reverse=direction == "desc")
    # Back to the MODELS models for the tests after this one.
    for model in paged.list_all(page_size=1000, query="churn"):
        paged.delete(model.id)
    assert paged.list().total == MODELS


# -- page tokens --------------------------------------------------------------------

TOKEN_QUERY = {"page_size": 5, "order_by": "name", "direction": "asc", "query": "alpha"}
OTHER_QUERIES = {
    "order_by": {"order_by": "created_at"},
    "direction": {"direction": "desc"},
    "query": {"query": "beta"},
    "view_option": {"view_option": "created"},
    "is_active": {"is_active": True},
    "owner_id": {"owner_id": "admin"},
}
NOT_A_TOKEN = "page_token is not a token of this query"


@pytest.mark.parametrize("changed", OTHER_QUERIES)
def test_a_page_token_of_another_query_is_invalid(paged: Caller, changed: str):
    token = paged.list(**TOKEN_QUERY).next_page_token
    assert token
    assert len(paged.list(**TOKEN_QUERY, page_token=token).items) == 5  # its own query: fine
    other = {**TOKEN_QUERY, **OTHER_QUERIES[changed], "page_token": token}
    error = rpc_error(paged.list, **other)
    assert_rpc_error(error, grpc.StatusCode.INVALID_ARGUMENT, NOT_A_TOKEN, field="page_token")


def _b64(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    ["x", "not base64 !", _b64({"a": 1}), _b64(["0" * 16, "alpha", "p-0001"]), _b64([1, 2, 3])],
)
def test_a_made_up_page_token_is_invalid(paged: Caller, token: str):
    error = rpc_error(paged.list, page_token=token)
    assert_rpc_error(error, grpc.StatusCode.INVALID_ARGUMENT, NOT_A_TOKEN, field="page_token")


@pytest.mark.parametrize(
    ("request_fields", "field", "message"),
    [
        ({"page_size": -1}, "page_size", "page_size must be between 0 and 1000"),
        ({"page_size": 1001}, "page_size", "page_size must be between 0 and 1000"),
        ({"order_by": "size"}, "order_by", "order_by must be 'name', 'created_at' or 'updated_at'"),
        ({"order_by": "NAME"}, "order_by", "order_by must be 'name', 'created_at' or 'updated_at'"),
        ({"direction": "up"}, "direction", "direction must be 'asc' or 'desc'"),
        ({"view_option": "all"}, "view_option", "view_option must be 'created', 'shared' or empty"),
        ({"page": -1}, "page", "page must be between 1 and 100000"),
        ({"page": 100001}, "page", "page must be between 1 and 100000"),
        ({"page": 2, "page_token": "x"}, "page", "send page or page_token, not both"),
        ({"query": "q" * 257}, "query", "query is too long (max 256 characters)"),
    ],
)
def test_a_bad_list_request_is_invalid_naming_the_field(
    paged: Caller, request_fields: dict[str, Any], field: str, message: str
):
    error = rpc_error(paged.list, **request_fields)
    assert_rpc_error(error, grpc.StatusCode.INVALID_ARGUMENT, message, field=field)


def test_page_and_page_size_over_grpc(paged: Caller):
    everything = [m.id for m in paged.list_all(page_size=1000, order_by="name")]
    page = paged.list(page=3, page_size=50, order_by="name")
    assert [m.id for m in page.items] == everything[100:150] and page.total == MODELS
    page = paged.list(page=2, order_by="name")
    assert [m.id for m in page.items] == everything[30:60]


# -- Open WebUI's list over HTTP ----------------------------------------------------

USERS = {"maker": {"can_create": True}, "other": {"can_create": True}, "member": {}}
_ids = itertools.count()


@dataclass
class Web(Registered):
    def create(self, owner: str, model_id: str, **fields: Any) -> dict[str, Any]:
        model = {
            "id": model_id,
            "name": f"Model {model_id}",
            "params": {"p": 1},
            "meta": {},
            **fields,
        }
        self.callers[owner].create(model)
        return api_json(self.admin.get(model_id))


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Web]:
    registry = start_registry(database_url_factory(), http=True)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            web = Web(registry, callers_for(registry, channel, USERS))
            web.admin.create_group("crew")
            web.admin.add_member("crew", "maker")
            web.admin.add_member("crew", "member")
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: web.create("admin", f"bulk-{i:03d}", name=f"Bulk {i:03d}"),
                        range(75),
                    )
                )
            yield web
    finally:
        assert registry.stop() == 0


def get_list(web: Web, who: str, prefix: str, query_string: str = "") -> Any:
    response = web.callers[who].http("GET", f"{prefix}/models/list{query_string}")
    assert response.status == 200, (response.status, response.body)
    return response.json()


@pytest.mark.parametrize("prefix", PREFIXES)
def test_page_n_is_the_nth_30_of_the_default_order(web: Web, prefix: str):
    everything = [api_json(m) for m in web.admin.list_all(page_size=1000)]
    assert len(everything) >= 75 and all(m["write_access"] for m in everything)
    for page in (1, 2, 3):
        body = get_list(web, "admin", prefix, f"?page={page}")
        assert body["items"] == everything[(page - 1) * 30 : page * 30]
        assert body["total"] == len(everything)
    assert get_list(web, "admin", prefix)["items"] == everything[:30]  # no page: the first
    beyond = get_list(web, "admin", prefix, f"?page={len(everything) // 30 + 2}")
    assert beyond == {"items": [], "total": len(everything), "next_page_token": ""}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_page_with_order_and_direction(web: Web, prefix: str):
    bulk = get_list(web, "admin", prefix, "?query=bulk&order_by=name&direction=desc&page=2")
    assert [m["id"] for m in bulk["items"]] == [f"bulk-{i:03d}" for i in range(44, 14, -1)]
    assert bulk["total"] == 75


VIEW_MODELS = {
    # id: (owner, grants)
    "view-own-1": ("maker", []),
    "view-own-2": ("maker", [{"access_type": "user", "access_id": "other", "permission": "read"}]),
    "view-to-maker": (
        "other",
        [{"access_type": "user", "access_id": "maker", "permission": "read"}],
    ),
    "view-to-crew": (
        "other",
        [{"access_type": "group", "access_id": "crew", "permission": "write"}],
    ),
    "view-to-all": ("other", [{"access_type": "user", "access_id": "*", "permission": "read"}]),
    "view-hidden": (
        "other",
        [{"access_type": "user", "access_id": "member", "permission": "read"}],
    ),
}


@pytest.fixture(scope="module")
def views(web: Web) -> dict[str, dict[str, Any]]:
    return {
        model_id: web.create(owner, model_id, name=f"Viewed {model_id}", access_grants=grants)
        for model_id, (owner, grants) in VIEW_MODELS.items()
    }


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ("created", ["view-own-1", "view-own-2"]),
        ("shared", ["view-to-all", "view-to-crew", "view-to-maker"]),
        ("", ["view-own-1", "view-own-2", "view-to-all", "view-to-crew", "view-to-maker"]),
    ],
)
def test_view_option(web: Web, views, view: str, expected: list[str], face: str):
    reply = web.callers["maker"].on(face).list(query="viewed", order_by="name", view_option=view)
    write = {"view-own-1", "view-own-2", "view-to-crew"}
    items = [seen_by_writer(views[m]) if m in write else seen_by_reader(views[m]) for m in expected]
    assert reply == ok(face, {"items": items, "total": len(items), "next_page_token": ""})


@pytest.mark.parametrize("face", FACES)
def test_a_non_admins_list_and_total_hold_only_what_they_may_read(web: Web, views, face: str):
    """`member` may read view-to-crew, view-to-all and view-hidden, and no
    other model of this registry; `maker` five models."""
    member = web.callers["member"].on(face).list(order_by="name")
    assert [m["id"] for m in member.body["items"]] == ["view-hidden", "view-to-all", "view-to-crew"]
    assert member.body["total"] == 3
    maker = web.callers["maker"].on(face).list(page_size=2, order_by="name")
    assert maker.body["total"] == 5 and len(maker.body["items"]) == 2
    page_2 = web.callers["maker"].on(face).list(page=2, page_size=2, order_by="name")
    assert [m["id"] for m in page_2.body["items"]] == ["view-to-all", "view-to-crew"]
    assert page_2.body["total"] == 5
    # Past the last page: no models, and still the whole total.
    beyond = web.callers["maker"].on(face).list(page=9, page_size=2, order_by="name")
    assert (beyond.body["items"], beyond.body["total"]) == ([], 5)
    # After a page token, the total is still of the whole query.
    token = maker.body["next_page_token"]
    after = web.callers["maker"].on(face).list(page_size=2, order_by="name", page_token=token)
    assert [m["id"] for m in after.body["items"]] == ["view-to-all", "view-to-crew"]
    assert after.body["total"] == 5
    token = after.body["next_page_token"]
    last = web.callers["maker"].on(face).list(page_size=2, order_by="name", page_token=token)
    assert [m["id"] for m in last.body["items"]] == ["view-to-maker"]
    assert last.body["total"] == 5 and last.body["next_page_token"] == ""


@pytest.mark.parametrize("face", FACES)
def test_owner_id(web: Web, views, face: str):
    by_admin = web.admin.on(face).list(owner_id="other", order_by="name")
    other = ["view-hidden", "view-to-all", "view-to-crew", "view-to-maker"]
    assert [m["id"] for m in by_admin.body["items"]] == other
    assert by_admin.body["total"] == 4
    by_maker = web.callers["maker"].on(face).list(owner_id="other", order_by="name")
    assert [m["id"] for m in by_maker.body["items"]] == other[1:]
    assert by_maker.body["total"] == 3
    assert web.callers["maker"].on(face).list(owner_id="nobody").body["total"] == 0


SEARCH_MODELS = {
    "search-helper": {"name": "My GPT-4 helper"},
    "search-base": {"name": "Coder", "base_model_id": "gpt-4"},
    "search-prefix": {"name": "Chat GPTX turbo"},
    "search-inside": {"name": "Agpt and chatgpt"},  # "gpt" starts no word here
    "gpt-by-id": {"name": "Plain"},
    "search-accents": {"name": "Café Crème", "base_model_id": "mistral-7b"},
    "search-twice": {"name": "Taster of tasting notes"},  # two words start with "tast"
}


@pytest.fixture(scope="module")
def searched(web: Web) -> dict[str, dict[str, Any]]:
    return {
        model_id: web.create("admin", model_id, **fields)
        for model_id, fields in SEARCH_MODELS.items()
    }


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpt", ["gpt-by-id", "search-base", "search-helper", "search-prefix"]),
        ("GPT", ["gpt-by-id", "search-base", "search-helper", "search-prefix"]),
        ("gpt helper", ["search-helper"]),
        ("HELP gPt", ["search-helper"]),
        ("gpt-4", ["search-base", "search-helper"]),
        ("gpt zebra", []),
        ("elper", []),
        ("search coder", ["search-base"]),
        ("café", ["search-accents"]),
        ("CRÈME mistral 7", ["search-accents"]),
        ("by", ["gpt-by-id"]),
        ("tast", ["search-twice"]),  # found, and counted, once
        ("tasting", ["search-twice"]),
    ],
)
def test_query_finds_words_by_prefix(web: Web, searched, text: str, expected: list[str], face: str):
    reply = web.admin.on(face).list(query=text, order_by="name", page_size=100)
    assert reply.status in ("OK", 200), reply
    assert sorted(m["id"] for m in reply.body["items"]) == expected
    assert reply.body["total"] == len(expected)


@pytest.mark.parametrize("face", FACES)
def test_query_sees_a_rename_and_forgets_the_old_name(web: Web, face: str):
    tag = f"tag{next(_ids)}x"
    model_id = f"renamed-{tag}"
    web.create("admin", model_id, name=f"Walrus keeper {tag}")
    admin = web.admin.on(face)
    assert [m["id"] for m in admin.list(query=f"walrus {tag}").body["items"]] == [model_id]
    web.admin.update({"id": model_id, "name": f"Penguin keeper {tag}", "params": {}, "meta": {}})
    assert admin.list(query=f"walrus {tag}").body["total"] == 0
    assert [m["id"] for m in admin.list(query=f"penguin kee {tag}").body["items"]] == [model_id]


@pytest.mark.parametrize("face", FACES)
def test_is_active_filter(web: Web, face: str):
    tag = f"activity{next(_ids)}"
    for i in range(5):
        web.create("admin", f"{tag}-{i}", is_active=i < 2)
    web.admin.toggle(f"{tag}-4")  # inactive -> active
    admin = web.admin.on(face)
    inactive = admin.list(query=tag, is_active=False, order_by="name").body
    assert [m["id"] for m in inactive["items"]] == [f"{tag}-2", f"{tag}-3"]
    assert inactive["total"] == 2 and all(m["is_active"] is False for m in inactive["items"])
    active = admin.list(query=tag, is_active=True, order_by="name").body
    assert [m["id"] for m in active["items"]] == [f"{tag}-0", f"{tag}-1", f"{tag}-4"]
    assert admin.list(query=tag).body["total"] == 5


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    ("query_string", "detail"),
    [
        ("page=x", "page must be an integer"),
        ("page=1.5", "page must be an integer"),
        ("page=99999999999", "page must be an integer"),
        ("page_size=ten", "page_size must be an integer"),
        ("is_active=yes", "is_active must be true or false"),
        ("page=-1", "page must be between 1 and 100000"),
        ("page_size=1001", "page_size must be between 0 and 1000"),
        ("order_by=popularity", "order_by must be 'name', 'created_at' or 'updated_at'"),
        ("direction=sideways", "direction must be 'asc' or 'desc'"),
        ("view_option=mine", "view_option must be 'created', 'shared' or empty"),
        ("page=2&page_token=abc", "send page or page_token, not both"),
        ("page_token=abc", "page_token is not a token of this query"),
    ],
)
def test_bad_query_parameters_are_400(web: Web, prefix: str, query_string: str, detail: str):
    response = web.admin.http("GET", f"{prefix}/models/list?{query_string}")
    assert (response.status, response.json()) == (400, {"detail": detail})
    assert response.body == json.dumps({"detail": detail}, separators=(",", ":")).encode()


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_page_token_over_http(web: Web, prefix: str):
    first = get_list(web, "admin", prefix, "?query=bulk&order_by=name&page_size=50")
    assert len(first["items"]) == 50 and first["next_page_token"]
    rest = get_list(
        web,
        "admin",
        prefix,
        f"?query=bulk&order_by=name&page_size=50&page_token={first['next_page_token']}",
    )
    ids = [m["id"] for m in first["items"] + rest["items"]]
    assert ids == [f"bulk-{i:03d}" for i in range(75)] and rest["next_page_token"] == ""


@pytest.mark.parametrize("face", FACES)
def test_listing_needs_a_key(web: Web, face: str):
    assert web.callers["no_key"].on(face).list() == refused(face, "unauthenticated")


@pytest.mark.parametrize("face", FACES)
def test_an_admins_shared_view_holds_what_others_shared_with_them(web: Web, face: str):
    """An admin reads everything, but "shared" is what others shared with
    them: by name, with every signed-in user, or with a group they are in."""
    tag = f"boss{next(_ids)}x"  # a word of its own: the query finds only these models
    web.admin.create_group(tag)
    web.admin.add_member(tag, "admin")
    grants = {
        "named": [{"access_type": "user", "access_id": "admin", "permission": "read"}],
        "grouped": [{"access_type": "group", "access_id": tag, "permission": "read"}],
        "everyone": [{"access_type": "user", "access_id": "*", "permission": "read"}],
        "unshared": [{"access_type": "user", "access_id": "maker", "permission": "read"}],
    }
    for name, granted in grants.items():
        web.create("other", f"{tag}-{name}", access_grants=granted)
    web.create("admin", f"{tag}-own")
    admin = web.admin.on(face)
    shared = admin.list(query=tag, view_option="shared", order_by="name").body
    assert [m["id"] for m in shared["items"]] == [
        f"{tag}-everyone",
        f"{tag}-grouped",
        f"{tag}-named",
    ]
    assert shared["total"] == 3 and all(m["write_access"] for m in shared["items"])
    created = admin.list(query=tag, view_option="created").body
    assert [m["id"] for m in created["items"]] == [f"{tag}-own"] and created["total"] == 1
    assert admin.list(query=tag).body["total"] == 5
    for model in admin.list(query=tag).body["items"]:
        web.admin.delete(model["id"])
