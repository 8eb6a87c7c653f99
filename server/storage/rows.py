"""Rows of `models` (and their grants) as the domain's Model, and the
statement shape they are read with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, Text, cast, func, select

from ..domain.models import AccessGrant, Model
from .tables import model_grants, models

# What a model's params and meta take as stored: what the model cache
# (model_cache.py) costs a decoded model by.
STORED_BYTES = (
    func.length(cast(models.c.params, Text)) + func.length(cast(models.c.meta, Text))
).label("stored_bytes")


def models_with_grants(*extra: ColumnElement[Any]) -> Select[Any]:
    """Models joined with their grants: a row per grant, or one without any
    (model_from_rows makes a Model of them); `extra` columns beside."""
    return select(
        models,
        model_grants.c.access_type.label("grant_type"),
        model_grants.c.access_id.label("grant_id"),
        model_grants.c.permission.label("grant_permission"),
        *extra,
    ).select_from(models.outerjoin(model_grants, model_grants.c.model_id == models.c.id))


def model_of(row: Row[Any], grants: list[AccessGrant]) -> Model:
    return Model(
        id=row.id,
        user_id=row.user_id,
        base_model_id=row.base_model_id,
        name=row.name,
        params=row.params,
        meta=row.meta,
        access_grants=grants,
        is_active=bool(row.is_active),
        created_at=row.created_at,
        updated_at=row.updated_at,
        version_id=row.version_id or "",
    )


def model_from_rows(rows: Sequence[Row[Any]]) -> Model:
    """A model from its rows joined with its grants (one per grant, or one
    without any)."""
    grants = [
        AccessGrant(row.grant_type, row.grant_id, row.grant_permission)
        for row in rows
        if row.grant_type is not None
    ]
    return model_of(rows[0], grants)
