"""Versions: every write of a model records its new state as an immutable
version (ids, snapshots, the history's paging). Who may read or restore
them is registry.py's business; storage keeps the chain."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from .errors import FieldViolation, InvalidArgument
from .models import Model, ModelVersion, Snapshot
from .tokens import fingerprint, make_token, read_token

DEFAULT_PAGE_SIZE = 20  # also Open WebUI's history page
MAX_PAGE_SIZE = 1000
MAX_PAGE = 100_000


def new_version_id() -> str:
    return str(uuid.uuid4())


def snapshot_of(model: Model) -> Snapshot:
    return Snapshot(
        name=model.name,
        base_model_id=model.base_model_id,
        params=model.params,
        meta=model.meta,
        is_active=model.is_active,
        access_grants=list(model.access_grants),
    )


def first_version(model: Model) -> ModelVersion:
    """The version a new model starts as, written by its owner."""
    return version_of(model, parent_id=None, number=1, user_id=model.user_id)


def version_of(model: Model, *, parent_id: str | None, number: int, user_id: str) -> ModelVersion:
    """The version `model` (with its new version_id) is."""
    return ModelVersion(
        id=model.version_id,
        model_id=model.id,
        parent_id=parent_id,
        number=number,
        user_id=user_id,
        commit_message=model.commit_message,
        created_at=model.updated_at,
        snapshot=snapshot_of(model),
    )


def restored(
    current: Model, version: ModelVersion, *, now: int, commit_message: str | None
) -> Model:
    """`current` made what `version` was, as a new version."""
    assert version.snapshot is not None
    snapshot = version.snapshot
    return replace(
        current,
        name=snapshot.name,
        base_model_id=snapshot.base_model_id,
        params=snapshot.params,
        meta=snapshot.meta,
        is_active=snapshot.is_active,
        access_grants=list(snapshot.access_grants),
        updated_at=max(now, current.updated_at),
        commit_message=(
            commit_message if commit_message is not None else f"Restored version {version.number}"
        ),
        version_id=new_version_id(),
    )


@dataclass(frozen=True, slots=True)
class VersionQuery:
    """One page of a model's history, newest first."""

    model_id: str
    page_size: int
    before: int | None  # number of the previous page's last version
    offset: int  # versions skipped (Open WebUI's page=N); 0 with page tokens


@dataclass(frozen=True, slots=True)
class VersionPage:
    versions: list[ModelVersion]
    last: int | None  # where the next page starts; None on the last page


def version_query(*, model_id: str, page_size: int, page_token: str, page: int) -> VersionQuery:
    """The checked query; InvalidArgument naming every bad field."""
    violations: list[FieldViolation] = []
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        violations.append(
            FieldViolation("page_size", f"page_size must be between 0 and {MAX_PAGE_SIZE}")
        )
    if not 0 <= page <= MAX_PAGE:
        violations.append(FieldViolation("page", f"page must be between 1 and {MAX_PAGE}"))
    if page and page_token:
        violations.append(FieldViolation("page", "send page or page_token, not both"))
    if violations:
        raise InvalidArgument(violations)
    size = page_size or DEFAULT_PAGE_SIZE
    before = _read_token(page_token, model_id) if page_token else None
    return VersionQuery(model_id, size, before, max(page - 1, 0) * size)


def next_page_token(query: VersionQuery, last: int) -> str:
    return make_token(_fingerprint(query.model_id), last)


def _fingerprint(model_id: str) -> str:
    """What a token is bound to: the model whose history it pages."""
    return fingerprint("v", model_id)


def _read_token(token: str, model_id: str) -> int:
    [number] = read_token(token, _fingerprint(model_id), (int,), of="this model's history")
    if number <= 0:
        raise InvalidArgument(
            [FieldViolation("page_token", "page_token is not a token of this model's history")]
        )
    return int(number)
