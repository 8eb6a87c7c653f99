"""Versions: model_versions, and models.version_id, the version a model is.

Every model gets its first version from what it is now: number 1, no parent,
written by its owner, with the commit message it was last written with.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

BATCH = 5000


def _bytewise(length: int) -> Any:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("models", sa.Column("version_id", sa.String(36), nullable=True))
    model_versions = op.create_table(
        "model_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("model_id", _bytewise(256), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("commit_message", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_versions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    op.create_index(
        "ix_model_versions_model_id_number", "model_versions", ["model_id", "number"], unique=True
    )

    models = sa.table(
        "models",
        sa.column("id", sa.String),
        sa.column("user_id", sa.String),
        sa.column("name", sa.Text),
        sa.column("base_model_id", sa.String),
        sa.column("params", sa.JSON),
        sa.column("meta", sa.JSON),
        sa.column("is_active", sa.Boolean),
        sa.column("updated_at", sa.BigInteger),
        sa.column("commit_message", sa.Text),
        sa.column("version_id", sa.String),
    )
    grants_table = sa.table(
        "model_grants",
        sa.column("model_id", sa.String),
        sa.column("position", sa.Integer),
        sa.column("access_type", sa.String),
        sa.column("access_id", sa.String),
        sa.column("permission", sa.String),
    )
    set_version = (
        models.update()
        .where(models.c.id == sa.bindparam("model_id"))
        .values(version_id=sa.bindparam("new_version_id"))
    )
    for rows in _batches(bind, sa.select(models).order_by(models.c.id)):
        grants: dict[str, list[dict[str, str]]] = {}
        for grant in bind.execute(
            sa.select(grants_table)
            .where(grants_table.c.model_id.in_([row.id for row in rows]))
            .order_by(grants_table.c.model_id, grants_table.c.position)
        ):
            grants.setdefault(grant.model_id, []).append(
                {
                    "access_type": grant.access_type,
                    "access_id": grant.access_id,
                    "permission": grant.permission,
                }
            )
        versions = []
        for row in rows:
            versions.append(
                {
                    "id": str(uuid.uuid4()),
                    "model_id": row.id,
                    "number": 1,
                    "parent_id": None,
                    "user_id": row.user_id,
                    "commit_message": row.commit_message,
                    "created_at": row.updated_at,
                    "snapshot": {
                        "name": row.name,
                        "base_model_id": row.base_model_id,
                        "params": row.params,
                        "meta": row.meta,
                        "is_active": bool(row.is_active),
                        "access_grants": grants.get(row.id, []),
                    },
                }
            )
        op.bulk_insert(model_versions, versions)
        bind.execute(
            set_version,
            [{"model_id": v["model_id"], "new_version_id": v["id"]} for v in versions],
        )


def _batches(bind: sa.Connection, query: sa.Select[Any]) -> Iterator[list[sa.Row[Any]]]:
    last = None
    while True:
        page = query.limit(BATCH)
        if last is not None:
            page = page.where(sa.column("id") > last)
        rows = list(bind.execute(page))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_model_versions_model_id_number", table_name="model_versions")
    op.drop_table("model_versions")
    # Not batch mode: on SQLite it would copy the table, which cannot carry
    # the expression index on names over. (SQLite 3.35+ drops columns.)
    op.execute("ALTER TABLE models DROP COLUMN version_id")
