"""domain/transfer.py with an in-memory store and a fixed clock: what an
import does with each record against the model stored, and how an export
is chosen and paged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from modelregistry_server.domain.access import reaches
from modelregistry_server.domain.errors import (
    ExportTooLarge,
    InvalidArgument,
    ModelNotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from modelregistry_server.domain.listing import Visibility
from modelregistry_server.domain.models import AccessGrant, Model, Principal
from modelregistry_server.domain.stores import ImportDecision, ImportPlan, StorageUnavailable
from modelregistry_server.domain.transfer import (
    ExportPage,
    ExportQuery,
    ImportReport,
    ImportResult,
    ModelTransfer,
    export_query,
    export_record,
    next_page_token,
)

NOW = 1_800_000_000
ADMIN = Principal("root", "admin", False)
AUTHOR = Principal("author", "user", True)
READER = Principal("reader", "user", True)
CANNOT_CREATE = Principal("viewer", "user", False)


class Store:
    """Models in memory; an import batch applies its plan as storage does."""

    def __init__(self) -> None:
        self.models: dict[str, Model] = {}
        self.groups: dict[str, frozenset[str]] = {}
        self.writes: list[ImportPlan] = []
        self.taken_meanwhile: set[str] = set()  # ids another writer creates first

    def groups_of(self, user_id: str) -> frozenset[str]:
        return self.groups.get(user_id, frozenset())

    def _visible(self, model: Model, visibility: Visibility) -> bool:
        if visibility.everything or model.user_id == visibility.user_id:
            return True
        groups = [access_id for kind, access_id in visibility.grantees if kind == "group"]
        return any(reaches(g, visibility.user_id, groups) for g in model.access_grants)

    def visible_ids(self, ids: Sequence[str], visibility: Visibility) -> frozenset[str]:
        return frozenset(
            i for i in ids if i in self.models and self._visible(self.models[i], visibility)
        )

    def export(
        self, visibility: Visibility, ids: Sequence[str], after: str | None, limit: int
    ) -> list[Model]:
        chosen = [
            m
            for _, m in sorted(self.models.items())
            if self._visible(m, visibility)
            and (not ids or m.id in ids)
            and (after is None or m.id > after)
        ]
        return chosen[:limit]

    def import_batch(
        self, ids: Sequence[str], user_id: str, decide: ImportDecision, *, write: bool
    ) -> frozenset[str]:
        stored: Mapping[str, Model] = {i: self.models[i] for i in ids if i in self.models}
        plan = decide(stored, self.groups_of(user_id))
        if not write:
            return frozenset()
        self.writes.append(plan)
        taken = frozenset(m.id for m in plan.new if m.id in self.taken_meanwhile)
        for model in plan.new:
            if model.id not in taken:
                self.models[model.id] = model
        for _, after in plan.changes:
            if after.id not in taken:
                self.models[after.id] = after
        return taken


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def transfer(store: Store) -> ModelTransfer:
    return ModelTransfer(store, clock=lambda: NOW)


def record(model_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": model_id, "name": model_id.upper(), "params": {}, "meta": {}, **fields}


def outcomes(report: ImportReport) -> list[tuple[int, str, str, str]]:
    return [(r.index, r.id, r.outcome, r.reason) for r in report.results]


# -- import ---------------------------------------------------------------------------


def test_new_models_are_the_importers_with_the_files_timestamps(transfer, store):
    report = transfer.import_models(
        AUTHOR,
        [
            record("a", user_id="someone", created_at=100, updated_at=200),
            record("b", created_at=300),
            record("c", created_at=500, updated_at=400),
            record("d"),
        ],
    )
    assert outcomes(report) == [(i, m, "created", "") for i, m in enumerate("abcd")]
    assert {m.id: (m.user_id, m.created_at, m.updated_at) for m in store.models.values()} == {
        "a": ("author", 100, 200),
        "b": ("author", 300, 300),
        "c": ("author", 500, 500),
        "d": ("author", NOW, NOW),
    }
    assert {m.commit_message for m in store.models.values()} == {"Imported"}
    assert all(
        m.meta == {"profile_image_url": "/static/favicon.png"} for m in store.models.values()
    )
    assert len({m.version_id for m in store.models.values()}) == 4
    assert [len(plan.new) for plan in store.writes] == [4]


def test_the_same_records_again_change_nothing(transfer, store):
    records = [
        record("a", params={"x": 1, "y": [1.5, True]}, access_grants=[]),
        record(
            "b",
            access_grants=[{"principal_type": "group", "principal_id": "g", "permission": "read"}],
        ),
    ]
    transfer.import_models(AUTHOR, records)
    before = dict(store.models)
    again = transfer.import_models(AUTHOR, records)
    assert outcomes(again) == [(0, "a", "unchanged", ""), (1, "b", "unchanged", "")]
    assert store.models == before
    assert store.writes[-1] == ImportPlan()
    # Our export of what was imported is unchanged too.
    exported = [export_record(m) for m in store.models.values()]
    assert outcomes(transfer.import_models(AUTHOR, exported))[0][2] == "unchanged"


def test_content_is_compared_as_json_values(transfer, store):
    transfer.import_models(AUTHOR, [record("a", params={"flag": True, "n": 2})])
    same = record("a", params={"n": 2, "flag": True})  # key order is no content
    changed = record("a", params={"flag": 1, "n": 2})  # true is not 1
    assert outcomes(transfer.import_models(AUTHOR, [same]))[0][2] == "unchanged"
    assert outcomes(transfer.import_models(AUTHOR, [changed]))[0][2] == "updated"


@pytest.mark.parametrize(
    ("mode", "outcome", "reason", "name"),
    [
        ("update", "updated", "", "Changed"),
        ("", "updated", "", "Changed"),
        ("skip", "skipped", "the model exists with other content", "A"),
        ("fail", "failed", "the model exists with other content (on_conflict is fail)", "A"),
    ],
)
def test_a_model_with_other_content_follows_on_conflict(
    transfer, store, mode, outcome, reason, name
):
    transfer.import_models(AUTHOR, [record("a", created_at=10, updated_at=20)])
    first = store.models["a"]
    report = transfer.import_models(AUTHOR, [record("a", name="Changed")], on_conflict=mode)
    assert outcomes(report) == [(0, "a", outcome, reason)]
    assert store.models["a"].name == name
    if outcome == "updated":
        updated = store.models["a"]
        assert (updated.created_at, updated.updated_at) == (10, NOW)
        assert updated.version_id != first.version_id
        assert store.writes[-1].changes == [(first, updated)]
    else:
        assert store.models["a"] is first


def test_an_update_keeps_the_owner_and_never_goes_back_in_time(transfer, store):
    transfer.import_models(AUTHOR, [record("a", created_at=10, updated_at=NOW + 50)])
    store.models["a"] = replace(
        store.models["a"], access_grants=[AccessGrant("user", "editor", "write")]
    )
    editor = Principal("editor", "user", True)
    report = transfer.import_models(editor, [record("a", user_id="editor", name="By editor")])
    assert outcomes(report) == [(0, "a", "updated", "")]
    assert store.models["a"].user_id == "author"
    assert store.models["a"].updated_at == NOW + 50
    assert store.models["a"].access_grants == []  # the record's grants: none


def test_a_model_the_importer_may_not_change_is_refused(transfer, store):
    transfer.import_models(
        AUTHOR,
        [
            record(
                "shared",
                access_grants=[
                    {"access_type": "user", "access_id": "reader", "permission": "read"}
                ],
            ),
            record("private"),
        ],
    )
    stored = dict(store.models)
    report = transfer.import_models(
        READER, [record("shared", name="x"), record("private", name="x"), record("private")]
    )
    assert outcomes(report) == [
        (0, "shared", "failed", "Unauthorized"),
        (1, "private", "failed", "Model ID is already taken"),
        (2, "private", "failed", "Model ID is already taken"),
    ]
    assert store.models == stored


def test_an_admin_may_change_any_model(transfer, store):
    transfer.import_models(AUTHOR, [record("a")])
    report = transfer.import_models(ADMIN, [record("a", name="Admin's")])
    assert outcomes(report) == [(0, "a", "updated", "")]
    assert store.models["a"].user_id == "author"


def test_a_caller_who_may_not_create_models_imports_nothing(transfer, store):
    with pytest.raises(PermissionDenied):
        transfer.import_models(CANNOT_CREATE, [record("a")])
    assert store.writes == []


def test_bad_records_fail_with_every_reason_and_the_others_go_in(transfer, store):
    report = transfer.import_models(
        AUTHOR,
        [
            record("good"),
            "not a model",
            {"name": "No id", "params": {}, "meta": {}},
            record("bad id", name=" ", params={"max_tokens": -1}),
            record(
                "bad-grant",
                access_grants=[{"access_type": "team", "access_id": "x", "permission": "own"}],
            ),
            record("typed", name=5, meta={"profile_image_url": "javascript:x"}),
            record("good-too"),
        ],
    )
    assert outcomes(report) == [
        (0, "good", "created", ""),
        (1, "", "failed", "the record is not a JSON object"),
        (2, "", "failed", "id is required and must not be empty"),
        (
            3,
            "bad id",
            "failed",
            "id must not contain whitespace or control characters;"
            " name is required and must not be empty;"
            " params.max_tokens must be a positive integer",
        ),
        (
            4,
            "bad-grant",
            "failed",
            "access_grants[0].access_type must be 'user' or 'group';"
            " access_grants[0].permission must be 'read' or 'write'",
        ),
        (
            5,
            "typed",
            "failed",
            "name must be a string; meta.profile_image_url must be an http(s) URL,"
            " a path starting with '/' or a data:image/ URI",
        ),
        (6, "good-too", "created", ""),
    ]
    assert sorted(store.models) == ["good", "good-too"]
    assert report.count("created") == 2 and report.count("failed") == 5


def test_a_dry_run_judges_every_record_and_writes_nothing(transfer, store):
    transfer.import_models(AUTHOR, [record("a"), record("b")])
    stored = dict(store.models)
    report = transfer.import_models(
        AUTHOR,
        [record("a"), record("b", name="Other"), record("c"), record("c", name="Again"), 1],
        on_conflict="skip",
        dry_run=True,
    )
    assert outcomes(report) == [
        (0, "a", "unchanged", ""),
        (1, "b", "skipped", "the model exists with other content"),
        (2, "c", "created", ""),
        (3, "c", "skipped", "the model exists with other content"),
        (4, "", "failed", "the record is not a JSON object"),
    ]
    assert store.models == stored and len(store.writes) == 1


def test_an_id_twice_in_one_batch_is_judged_against_the_first(transfer, store):
    report = transfer.import_models(
        AUTHOR, [record("a"), record("a"), record("a", name="Second"), record("a", name="Second")]
    )
    assert [r.outcome for r in report.results] == ["created", "unchanged", "updated", "unchanged"]
    (plan,) = store.writes
    assert [m.id for m in plan.new] == ["a"]
    assert plan.changes == [(plan.new[0], store.models["a"])]
    assert store.models["a"].name == "Second"


def test_a_new_id_another_writer_took_first_fails_as_taken(transfer, store):
    store.taken_meanwhile = {"raced"}
    report = transfer.import_models(
        AUTHOR, [record("raced"), record("raced", name="Twice"), record("fine")]
    )
    assert outcomes(report) == [
        (0, "raced", "failed", "Model ID is already taken"),
        (1, "raced", "failed", "Model ID is already taken"),
        (2, "fine", "created", ""),
    ]
    assert sorted(store.models) == ["fine"]


@pytest.mark.parametrize(
    ("fields", "violations"),
    [
        (
            {"on_conflict": "replace"},
            [("on_conflict", "on_conflict must be 'update', 'skip' or 'fail'")],
        ),
        (
            {"format_version": 2},
            [
                (
                    "format_version",
                    "format_version 2 is newer than this registry reads (1 to 1)",
                )
            ],
        ),
        (
            {"format_version": -1},
            [
                (
                    "format_version",
                    "format_version must not be negative",
                )
            ],
        ),
        ({"records": 1001}, [("models", "models may hold at most 1000 records")]),
    ],
)
def test_a_bad_import_request_is_refused_whole(transfer, store, fields, violations):
    records = [record(f"m{i}") for i in range(fields.pop("records", 1))]
    with pytest.raises(InvalidArgument) as refused:
        transfer.import_models(AUTHOR, records, **fields)
    assert [(v.field, v.description) for v in refused.value.violations] == violations
    assert store.models == {}


def test_format_version_one_reads_as_the_default(transfer, store):
    report = transfer.import_models(AUTHOR, [record("a")], format_version=1)
    assert outcomes(report) == [(0, "a", "created", "")]


# -- export ---------------------------------------------------------------------------


@pytest.fixture
def shared(transfer: ModelTransfer, store: Store) -> Store:
    """author's models: "open" readable by reader, "team" writable by the
    group "crew" (reader is in it), "own" private; and reader's "mine"."""
    store.groups["reader"] = frozenset({"crew"})
    grant = {"access_type": "user", "access_id": "reader", "permission": "read"}
    crew = {"access_type": "group", "access_id": "crew", "permission": "write"}
    params = {"system": "secret"}
    transfer.import_models(
        AUTHOR,
        [
            record("open", params=params, access_grants=[grant]),
            record("team", params=params, access_grants=[crew]),
            record("own", params=params),
        ],
    )
    transfer.import_models(READER, [record("mine", params=params)])
    return store


def whole(transfer: ModelTransfer, caller: Principal, **fields: Any) -> ExportPage:
    query = export_query(ids=fields.pop("ids", ()), page_size=0, page_token="")
    return transfer.export_models(caller, query, **fields)


def test_an_export_is_what_the_caller_may_read_as_they_may_see_it(transfer, shared):
    page = whole(transfer, READER)
    assert [(m.id, m.params, m.write_access) for m in page.models] == [
        ("mine", {"system": "secret"}, None),
        ("open", {}, None),  # read, not write: no params
        ("team", {"system": "secret"}, None),
    ]
    assert page.last is None
    assert [m.id for m in whole(transfer, ADMIN).models] == ["mine", "open", "own", "team"]


def test_an_export_of_ids_names_the_first_it_may_not_read(transfer, shared):
    page = whole(transfer, READER, ids=["team", "open", "team"])
    assert [m.id for m in page.models] == ["open", "team"]
    with pytest.raises(ModelNotFound) as missing:
        whole(transfer, READER, ids=["open", "own", "nope"])
    assert missing.value.message == "Model not found: own"


def test_a_whole_export_over_the_budget_is_refused_never_cut(transfer, shared):
    sizes = {"mine": 10, "open": 10, "own": 10, "team": 10}
    assert len(whole(transfer, ADMIN, measure=lambda m: sizes[m.id], budget=40).models) == 4
    with pytest.raises(ExportTooLarge):
        whole(transfer, ADMIN, measure=lambda m: sizes[m.id], budget=39)


def pages(
    transfer: ModelTransfer, caller: Principal, page_size: int, **fields: Any
) -> list[list[str]]:
    query = export_query(ids=(), page_size=page_size, page_token="")
    found = []
    while True:
        page = transfer.export_models(caller, query, **fields)
        found.append([m.id for m in page.models])
        if page.last is None:
            return found
        token = next_page_token(query, page.last)
        query = export_query(ids=(), page_size=page_size, page_token=token)


def test_pages_follow_ids_and_end_before_the_budget(transfer, shared):
    assert pages(transfer, ADMIN, 2) == [["mine", "open"], ["own", "team"]]
    assert pages(transfer, ADMIN, 3) == [["mine", "open", "own"], ["team"]]
    assert pages(transfer, ADMIN, 4) == [["mine", "open", "own", "team"]]
    sizes = {"mine": 30, "open": 5, "own": 6, "team": 50}
    # A page ends before the model that would pass the budget; one model
    # larger than the budget still makes a page of its own.
    assert pages(transfer, ADMIN, 10, measure=lambda m: sizes[m.id], budget=40) == [
        ["mine", "open"],
        ["own"],
        ["team"],
    ]


@pytest.mark.parametrize(
    ("fields", "field", "description"),
    [
        ({"ids": [f"m{i}" for i in range(1001)]}, "ids", "ids may name at most 1000 models"),
        ({"page_size": 1001}, "page_size", "page_size must be between 0 and 1000"),
        ({"page_size": -1}, "page_size", "page_size must be between 0 and 1000"),
        ({"page_token": "x"}, "page_token", "page_token needs page_size"),
        (
            {"page_size": 5, "page_token": "!!"},
            "page_token",
            "page_token is not a token of this export",
        ),
    ],
)
def test_a_bad_export_query_is_refused(fields: dict[str, Any], field: str, description: str):
    values: dict[str, Any] = {"ids": (), "page_size": 0, "page_token": "", **fields}
    with pytest.raises(InvalidArgument) as refused:
        export_query(**values)
    assert [(v.field, v.description) for v in refused.value.violations] == [(field, description)]


def test_a_page_token_continues_only_its_own_export():
    everything = ExportQuery((), 5, None)
    some = ExportQuery(("a", "b"), 5, None)
    token = next_page_token(some, "a")
    assert export_query(ids=["b", "a"], page_size=9, page_token=token).after == "a"
    with pytest.raises(InvalidArgument):
        export_query(ids=[], page_size=5, page_token=token)
    assert (
        export_query(ids=[], page_size=5, page_token=next_page_token(everything, "z")).after == "z"
    )


def test_an_export_record_is_creates_reply_over_http():
    model = Model(
        id="m",
        user_id="u",
        base_model_id=None,
        name="M",
        params={"n": 1},
        meta={},
        access_grants=[AccessGrant("group", "g", "read")],
        is_active=True,
        created_at=1,
        updated_at=2,
        commit_message="not exported",
        write_access=True,
        version_id="v",
    )
    assert export_record(model) == {
        "id": "m",
        "user_id": "u",
        "base_model_id": None,
        "name": "M",
        "params": {"n": 1},
        "meta": {},
        "access_grants": [{"access_type": "group", "access_id": "g", "permission": "read"}],
        "is_active": True,
        "created_at": 1,
        "updated_at": 2,
        "version_id": "v",
    }


def test_results_count_by_outcome():
    report = ImportReport(
        [
            ImportResult(0, "a", "created"),
            ImportResult(1, "b", "created"),
            ImportResult(2, "", "failed", "x"),
        ]
    )
    assert [report.count(o) for o in ("created", "updated", "failed")] == [2, 0, 1]


def test_a_database_that_does_not_answer_is_service_unavailable(transfer, store):
    def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise StorageUnavailable("OperationalError")

    store.import_batch = unavailable  # type: ignore[method-assign]
    store.export = unavailable  # type: ignore[method-assign]
    with pytest.raises(ServiceUnavailable):
        transfer.import_models(AUTHOR, [record("a")])
    with pytest.raises(ServiceUnavailable):
        whole(transfer, ADMIN)
