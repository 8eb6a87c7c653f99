"""The registry: grants as rows, groups, text search, totals, list orders.

- model_grants replaces the models.access_grants JSON column (copied over);
- groups and group_members;
- model_words, the text search's inverted index, filled from every model;
- model_counts, how many models are active and inactive;
- indexes for ListModels' orders; on PostgreSQL, ids and names compare as
  bytes (collation "C"), as on SQLite.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

BATCH = 5000


def _bytewise(length: int | None = None) -> Any:
    plain = sa.Text() if length is None else sa.String(length)
    collated = sa.Text(collation="C") if length is None else sa.String(length, collation="C")
    return plain.with_variant(collated, "postgresql")


def _words(*texts: str | None) -> list[str]:
    # As domain/listing.py's search_words splits text at this revision: runs
    # of letters and digits, lower-cased. (A copy: a migration never changes.)
    words: dict[str, None] = {}
    for text in texts:
        current: list[str] = []
        for char in (text or "").lower() + " ":
            if char.isalnum():
                current.append(char)
            elif current:
                words["".join(current)[:256]] = None
                current = []
    return list(words)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute('ALTER TABLE models ALTER COLUMN id TYPE VARCHAR(256) COLLATE "C"')
        op.execute('ALTER TABLE models ALTER COLUMN name TYPE TEXT COLLATE "C"')

    model_grants = op.create_table(
        "model_grants",
        sa.Column("model_id", _bytewise(256), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("access_type", sa.String(length=16), nullable=False),
        sa.Column("access_id", sa.String(length=256), nullable=False),
        sa.Column("permission", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_grants_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "position", name=op.f("pk_model_grants")),
    )
    op.create_index(
        "ix_model_grants_grantee", "model_grants", ["access_type", "access_id", "model_id"]
    )
    model_words = op.create_table(
        "model_words",
        sa.Column("word", _bytewise(256), nullable=False),
        sa.Column("model_id", _bytewise(256), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_words_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("word", "model_id", name=op.f("pk_model_words")),
    )
    op.create_index("ix_model_words_model_id", "model_words", ["model_id"])
    model_counts = op.create_table(
        "model_counts",
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("models", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("is_active", name=op.f("pk_model_counts")),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(length=256), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_index("ix_group_members_user_id", "group_members", ["user_id", "group_id"])

    models = sa.table(
        "models",
        sa.column("id", sa.String),
        sa.column("name", sa.Text),
        sa.column("base_model_id", sa.String),
        sa.column("access_grants", sa.JSON),
        sa.column("is_active", sa.Boolean),
    )
    counts = {True: 0, False: 0}
    for rows in _batches(bind, sa.select(models).order_by(models.c.id)):
        grants, words = [], []
        for row in rows:
            counts[bool(row.is_active)] += 1
            stored = row.access_grants
            for position, grant in enumerate(
                json.loads(stored) if isinstance(stored, str) else stored
            ):
                grants.append({"model_id": row.id, "position": position, **grant})
            words += [
                {"word": word, "model_id": row.id}
                for word in _words(row.id, row.name, row.base_model_id)
            ]
        if grants:
            op.bulk_insert(model_grants, grants)
        if words:
            op.bulk_insert(model_words, words)
    op.bulk_insert(
        model_counts,
        [
            {"is_active": True, "models": counts[True]},
            {"is_active": False, "models": counts[False]},
        ],
    )

    with op.batch_alter_table("models") as batch_op:
        batch_op.drop_column("access_grants")
    # Names sort by their first 256 characters: PostgreSQL's B-tree entries
    # hold at most about 2.7 kB, and a name has no length limit.
    op.create_index("ix_models_name_id", "models", [sa.text("substr(name, 1, 256)"), "id"])
    op.create_index("ix_models_created_at_id", "models", ["created_at", "id"])
    op.create_index("ix_models_updated_at_id", "models", ["updated_at", "id"])


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
    bind = op.get_bind()
    # First: SQLite's batch mode copies the table and cannot carry an index
    # on an expression over.
    for index in ("ix_models_name_id", "ix_models_created_at_id", "ix_models_updated_at_id"):
        op.drop_index(index, table_name="models")
    with op.batch_alter_table("models") as batch_op:
        batch_op.add_column(sa.Column("access_grants", sa.JSON(), nullable=True))
    grants: dict[str, list[dict[str, str]]] = {}
    for row in bind.execute(
        sa.text(
            "SELECT model_id, access_type, access_id, permission FROM model_grants"
            " ORDER BY model_id, position"
        )
    ):
        grants.setdefault(row.model_id, []).append(
            {
                "access_type": row.access_type,
                "access_id": row.access_id,
                "permission": row.permission,
            }
        )
    models = sa.table("models", sa.column("id", sa.String), sa.column("access_grants", sa.JSON))
    for rows in _batches(bind, sa.select(models.c.id).order_by(models.c.id)):
        for row in rows:
            bind.execute(
                models.update()
                .where(models.c.id == row.id)
                .values(access_grants=grants.get(row.id, []))
            )
    with op.batch_alter_table("models") as batch_op:
        batch_op.alter_column("access_grants", nullable=False)
    op.drop_index("ix_group_members_user_id", table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_table("model_counts")
    op.drop_index("ix_model_words_model_id", table_name="model_words")
    op.drop_table("model_words")
    op.drop_index("ix_model_grants_grantee", table_name="model_grants")
    op.drop_table("model_grants")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE models ALTER COLUMN name TYPE TEXT")
        op.execute("ALTER TABLE models ALTER COLUMN id TYPE VARCHAR(256)")
