"""Export and import: which models a caller exports and how they are paged;
what an import does with each record against the model stored (created,
updated, unchanged, skipped or failed, with the reason), one transaction per
batch. Records are read by records.py."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .access import access_to, as_seen_by, grant_principals
from .errors import (
    ExportTooLarge,
    FieldViolation,
    InvalidArgument,
    ModelIdTaken,
    ModelNotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from .listing import Visibility
from .models import ROLE_ADMIN, JsonObject, Model, Principal
from .records import FORMAT_VERSION, RecordRefused, read_record, record_id
from .stores import ImportPlan, StorageUnavailable, TransferStore
from .tokens import fingerprint, make_token, read_token
from .validation import build_model
from .versions import new_version_id, snapshot_of

MAX_IMPORT_RECORDS = 1000  # per request, and per transaction of the command line
MAX_EXPORT_IDS = 1000
MAX_PAGE_SIZE = 1000
# A whole export in one reply is at most this: the default receive limit of
# gRPC clients, and the reply buffer of Envoy's transcoder.
MAX_REPLY_BYTES = 4 * 1024 * 1024
_READ_CHUNK = MAX_PAGE_SIZE + 1  # a whole page and whether another follows

CREATED, UPDATED, UNCHANGED, SKIPPED, FAILED = OUTCOMES = (
    "created",
    "updated",
    "unchanged",
    "skipped",
    "failed",
)
UPDATE, SKIP, FAIL = CONFLICT_MODES = ("update", "skip", "fail")
DIFFERENT = "the model exists with other content"


@dataclass(frozen=True, slots=True)
class ExportQuery:
    ids: tuple[str, ...]  # unique, in the order asked; empty: every readable model
    page_size: int  # 0: the whole export in one reply
    after: str | None  # id of the previous page's last model


@dataclass(frozen=True, slots=True)
class ExportPage:
    models: list[Model]  # as the caller may see them, in create's shape
    last: str | None  # where the next page starts; None on the last page


@dataclass(frozen=True, slots=True)
class ImportResult:
    index: int  # the record's position in the request
    id: str  # its model id, "" if it names none
    outcome: str  # one of OUTCOMES
    reason: str = ""  # why it failed or was skipped


@dataclass(frozen=True, slots=True)
class ImportReport:
    results: list[ImportResult]

    def count(self, outcome: str) -> int:
        return Counter(result.outcome for result in self.results)[outcome]


def export_query(*, ids: Sequence[str], page_size: int, page_token: str) -> ExportQuery:
    """The checked query; InvalidArgument naming every bad field."""
    unique = tuple(dict.fromkeys(ids))
    violations: list[FieldViolation] = []
    if len(unique) > MAX_EXPORT_IDS:
        violations.append(FieldViolation("ids", f"ids may name at most {MAX_EXPORT_IDS} models"))
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        violations.append(
            FieldViolation("page_size", f"page_size must be between 0 and {MAX_PAGE_SIZE}")
        )
    if page_token and not page_size:
        violations.append(FieldViolation("page_token", "page_token needs page_size"))
    if violations:
        raise InvalidArgument(violations)
    after = _read_token(page_token, unique) if page_token else None
    return ExportQuery(unique, page_size, after)


def next_page_token(query: ExportQuery, last: str) -> str:
    return make_token(_fingerprint(query.ids), last)


def export_record(model: Model) -> JsonObject:
    """A model as an export file holds it: CreateModel's reply over HTTP."""
    return {
        "id": model.id,
        "user_id": model.user_id,
        "base_model_id": model.base_model_id,
        "name": model.name,
        "params": model.params,
        "meta": model.meta,
        "access_grants": [
            {"access_type": g.access_type, "access_id": g.access_id, "permission": g.permission}
            for g in model.access_grants
        ],
        "is_active": model.is_active,
        "created_at": model.created_at,
        "updated_at": model.updated_at,
        "version_id": model.version_id,
    }


def check_import(*, records: int, on_conflict: str, format_version: int) -> tuple[str, int]:
    """The conflict mode and format version an import uses (the defaults for
    "" and 0); InvalidArgument naming every bad field."""
    violations: list[FieldViolation] = []
    if records > MAX_IMPORT_RECORDS:
        violations.append(
            FieldViolation("models", f"models may hold at most {MAX_IMPORT_RECORDS} records")
        )
    if on_conflict not in ("", *CONFLICT_MODES):
        violations.append(
            FieldViolation("on_conflict", "on_conflict must be 'update', 'skip' or 'fail'")
        )
    if format_version < 0:
        violations.append(FieldViolation("format_version", "format_version must not be negative"))
    elif format_version > FORMAT_VERSION:
        violations.append(
            FieldViolation(
                "format_version",
                f"format_version {format_version} is newer than this registry reads"
                f" (1 to {FORMAT_VERSION})",
            )
        )
    if violations:
        raise InvalidArgument(violations)
    return on_conflict or UPDATE, format_version or FORMAT_VERSION


class ModelTransfer:
    def __init__(self, store: TransferStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def export_models(
        self,
        caller: Principal,
        query: ExportQuery,
        *,
        measure: Callable[[Model], int] = lambda _model: 0,
        budget: int = MAX_REPLY_BYTES,
    ) -> ExportPage:
        """The models `query` asks for, as `caller` may see them, by id. A
        page holds at most page_size models and `budget` by `measure`, but
        at least one; a whole export (page_size 0) over `budget` is
        ExportTooLarge."""
        with _available():
            return self._export(caller, query, measure, budget)

    def _export(
        self, caller: Principal, query: ExportQuery, measure: Callable[[Model], int], budget: int
    ) -> ExportPage:
        everything = caller.role == ROLE_ADMIN
        groups = frozenset() if everything else self._store.groups_of(caller.user_id)
        visibility = Visibility(
            everything, caller.user_id, tuple(grant_principals(caller.user_id, groups))
        )
        if query.ids:
            visible = self._store.visible_ids(query.ids, visibility)
            missing = [model_id for model_id in query.ids if model_id not in visible]
            if missing:
                raise ModelNotFound(f"Model not found: {missing[0]}")
        wanted = query.page_size or None
        models: list[Model] = []
        used = 0
        after = query.after
        while True:
            limit = _READ_CHUNK if wanted is None else min(_READ_CHUNK, wanted - len(models) + 1)
            chunk = self._store.export(visibility, query.ids, after, limit)
            for model in chunk:
                if wanted is not None and len(models) == wanted:
                    return ExportPage(models, models[-1].id)
                seen = replace(
                    as_seen_by(model, access_to(caller, model, groups)), write_access=None
                )
                size = measure(seen)
                if used + size > budget:
                    if wanted is None:
                        raise ExportTooLarge()
                    if models:
                        return ExportPage(models, models[-1].id)
                models.append(seen)
                used += size
            if len(chunk) < limit:
                return ExportPage(models, None)
            after = chunk[-1].id

    def import_models(
        self,
        caller: Principal,
        records: Sequence[Any],
        *,
        on_conflict: str = "",
        format_version: int = 0,
        dry_run: bool = False,
    ) -> ImportReport:
        """Judge every record against the model stored and write the good
        ones in one transaction (none on a dry run)."""
        if not caller.may_create_models:
            raise PermissionDenied()
        mode, version = check_import(
            records=len(records), on_conflict=on_conflict, format_version=format_version
        )
        now = int(self._clock())
        results: list[ImportResult] = []

        def decide(stored: Mapping[str, Model], groups: frozenset[str]) -> ImportPlan:
            results.clear()
            state = dict(stored)  # as the records before this one left it
            plan = ImportPlan()
            for index, record in enumerate(records):
                result, model = _judge(index, record, caller, state, groups, mode, version, now)
                results.append(result)
                if model is None:
                    continue
                before = state.get(model.id)
                if before is None:
                    plan.new.append(model)
                else:
                    plan.changes.append((before, model))
                state[model.id] = model
            return plan

        ids = [model_id for model_id in map(record_id, records) if model_id]
        with _available():
            taken = self._store.import_batch(ids, caller.user_id, decide, write=not dry_run)
        return ImportReport(
            [_taken(result) if result.id in taken else result for result in results]
        )


@contextlib.contextmanager
def _available() -> Iterator[None]:
    try:
        yield
    except StorageUnavailable as error:
        raise ServiceUnavailable() from error


def _taken(result: ImportResult) -> ImportResult:
    """A record whose new model another writer created first."""
    if result.outcome not in (CREATED, UPDATED):
        return result
    return replace(result, outcome=FAILED, reason=ModelIdTaken.message)


def _judge(
    index: int,
    record: Any,
    caller: Principal,
    state: Mapping[str, Model],
    groups: frozenset[str],
    mode: str,
    format_version: int,
    now: int,
) -> tuple[ImportResult, Model | None]:
    """What one record does, and the model to write (None: nothing)."""
    model_id = record_id(record)
    try:
        read = read_record(record, format_version)
    except RecordRefused as refused:
        return ImportResult(index, model_id, FAILED, refused.reason), None
    violations = list(read.violations)
    try:
        model = build_model(read.draft, user_id=caller.user_id, now=now)
    except InvalidArgument as invalid:
        # A field of the wrong type was left out: create's word on it adds nothing.
        violations += [v for v in invalid.violations if not _reported(v.field, read.violations)]
    if violations:
        reason = "; ".join(violation.description for violation in violations)
        return ImportResult(index, model_id, FAILED, reason), None
    current = state.get(model_id)
    if current is None:
        created_at = now if read.created_at is None else read.created_at
        updated_at = created_at if read.updated_at is None else max(read.updated_at, created_at)
        new = replace(
            model, created_at=created_at, updated_at=updated_at, version_id=new_version_id()
        )
        return ImportResult(index, model_id, CREATED), new
    access = access_to(caller, current, groups)
    if not access.read:
        # What CreateModel says of the id: a model the caller may not see
        # is not shown, but its id is still taken.
        return ImportResult(index, model_id, FAILED, ModelIdTaken.message), None
    if not access.write:
        return ImportResult(index, model_id, FAILED, PermissionDenied.message), None
    if _content(model) == _content(current):
        return ImportResult(index, model_id, UNCHANGED), None
    if mode == SKIP:
        return ImportResult(index, model_id, SKIPPED, DIFFERENT), None
    if mode == FAIL:
        return ImportResult(index, model_id, FAILED, f"{DIFFERENT} (on_conflict is fail)"), None
    changed = replace(
        current,
        name=model.name,
        base_model_id=model.base_model_id,
        params=model.params,
        meta=model.meta,
        is_active=model.is_active,
        access_grants=model.access_grants,
        updated_at=max(now, current.updated_at),
        commit_message=model.commit_message,
        version_id=new_version_id(),
    )
    return ImportResult(index, model_id, UPDATED), changed


def _reported(field: str, violations: Sequence[FieldViolation]) -> bool:
    """Whether `field` is one of `violations`' fields or inside one."""
    return any(
        field == v.field or field.startswith((f"{v.field}.", f"{v.field}[")) for v in violations
    )


def _content(model: Model) -> str:
    """What a version holds of the model, as canonical JSON: equal content
    is equal text (true is not 1, key order is not content)."""
    snapshot = snapshot_of(model)
    grants = [(g.access_type, g.access_id, g.permission) for g in snapshot.access_grants]
    values = [snapshot.name, snapshot.base_model_id, snapshot.params, snapshot.meta]
    return json.dumps([*values, snapshot.is_active, grants], sort_keys=True)


def _fingerprint(ids: tuple[str, ...]) -> str:
    """What a token is bound to: the export's ids (none: every model)."""
    return fingerprint("x", sorted(ids))


def _read_token(token: str, ids: tuple[str, ...]) -> str:
    [last] = read_token(token, _fingerprint(ids), (str,), of="this export")
    return str(last)
