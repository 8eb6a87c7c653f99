"""Rows of `models` (and their grants) as the domain's Model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from ..domain.models import AccessGrant, Model


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
