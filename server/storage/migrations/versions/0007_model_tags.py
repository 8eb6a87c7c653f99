"""model_tags: each model's tags (meta.tags), for ListModels' tag filter and
ListModelTags, filled from every model's meta.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

BATCH = 5000
MAX_TAG_LENGTH = 256


def _bytewise(length: int) -> Any:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _tags(meta: Any) -> dict[str, str]:
    # As domain/listing.py's tags_of and tag_key read tags at this revision:
    # key -> the first spelling. (A copy: a migration never changes.)
    tags = meta.get("tags") if isinstance(meta, dict) else None
    found: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else ():
        name = tag.get("name") if isinstance(tag, dict) else tag
        if isinstance(name, str) and name.strip():
            name = name.strip()[:MAX_TAG_LENGTH]
            found.setdefault(name.strip().casefold()[:MAX_TAG_LENGTH], name)
    return found


def upgrade() -> None:
    model_tags = op.create_table(
        "model_tags",
        sa.Column("tag", _bytewise(256), nullable=False),
        sa.Column("model_id", _bytewise(256), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_tags_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tag", "model_id", name=op.f("pk_model_tags")),
    )
    models = sa.table("models", sa.column("id", sa.String), sa.column("meta", sa.JSON))
    for rows in _batches(op.get_bind(), sa.select(models).order_by(models.c.id)):
        tags = []
        for row in rows:
            meta = json.loads(row.meta) if isinstance(row.meta, str) else row.meta
            tags += [
                {"tag": key, "model_id": row.id, "name": name} for key, name in _tags(meta).items()
            ]
        if tags:
            op.bulk_insert(model_tags, tags)
    op.create_index("ix_model_tags_model_id_tag", "model_tags", ["model_id", "tag"])


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
    op.drop_index("ix_model_tags_model_id_tag", table_name="model_tags")
    op.drop_table("model_tags")
