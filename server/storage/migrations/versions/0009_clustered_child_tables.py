"""A model's rows in model_words, model_tags and model_grants are stored in
the order of their primary key, and model_words' key is (word, created_at,
model_id): the index 0008 added is the table itself now.

On SQLite the three tables become WITHOUT ROWID tables, so each row is
written once, in its key's B-tree, instead of into a rowid table and again
into the key's index: a create writes two B-trees per child table where it
wrote three (four for model_words). On PostgreSQL (whose tables are heaps
either way) model_words' primary key takes the place of
ix_model_words_word_created_at.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def _bytewise(length: int) -> Any:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _model_id(table: str) -> sa.Column[Any]:
    return sa.Column(
        "model_id",
        _bytewise(256),
        sa.ForeignKey("models.id", name=f"fk_{table}_model_id_models", ondelete="CASCADE"),
        nullable=False,
    )


# The tables as this revision leaves them: columns, key, and the indexes
# besides the key. (Copies: a migration never changes.)
def _words(with_rowid: bool) -> tuple[list[Any], list[tuple[str, list[str]]]]:
    """As 0008 left it (with_rowid), or as this revision leaves it."""
    key = ("word", "model_id") if with_rowid else ("word", "created_at", "model_id")
    columns = [
        sa.Column("word", _bytewise(256), nullable=False),
        _model_id("model_words"),
        sa.Column("created_at", sa.BigInteger(), nullable=with_rowid),
        sa.PrimaryKeyConstraint(*key, name="pk_model_words"),
    ]
    indexes = [("ix_model_words_model_id_word", ["model_id", "word"])]
    if with_rowid:
        indexes.append(("ix_model_words_word_created_at", ["word", "created_at", "model_id"]))
    return columns, indexes


def _tags() -> tuple[list[Any], list[tuple[str, list[str]]]]:
    columns = [
        sa.Column("tag", _bytewise(256), nullable=False),
        _model_id("model_tags"),
        sa.Column("name", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("tag", "model_id", name="pk_model_tags"),
    ]
    return columns, [("ix_model_tags_model_id_tag", ["model_id", "tag"])]


def _grants() -> tuple[list[Any], list[tuple[str, list[str]]]]:
    columns = [
        _model_id("model_grants"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("access_type", sa.String(16), nullable=False),
        sa.Column("access_id", sa.String(256), nullable=False),
        sa.Column("permission", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "position", name="pk_model_grants"),
    ]
    return columns, [("ix_model_grants_grantee", ["access_type", "access_id", "model_id"])]


def _rebuild_on_sqlite(
    name: str, definition: tuple[list[Any], list[tuple[str, list[str]]]], with_rowid: bool
) -> None:
    """SQLite cannot change a table's key or its kind in place: a new table
    of the rows, renamed to the old one's name."""
    columns, indexes = definition
    names = [c.name for c in columns if isinstance(c, sa.Column)]
    building = f"{name}_rebuilt"
    op.create_table(building, *columns, sqlite_with_rowid=with_rowid)
    listed = ", ".join(names)
    op.execute(f"INSERT INTO {building} ({listed}) SELECT {listed} FROM {name}")
    op.drop_table(name)  # its indexes go with it
    op.rename_table(building, name)
    for index, on in indexes:
        op.create_index(index, name, on)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite("model_words", _words(False), with_rowid=False)
        _rebuild_on_sqlite("model_tags", _tags(), with_rowid=False)
        _rebuild_on_sqlite("model_grants", _grants(), with_rowid=False)
        return
    op.alter_column("model_words", "created_at", existing_type=sa.BigInteger(), nullable=False)
    op.drop_constraint("pk_model_words", "model_words", type_="primary")
    op.create_primary_key("pk_model_words", "model_words", ["word", "created_at", "model_id"])
    op.drop_index("ix_model_words_word_created_at", table_name="model_words")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite("model_words", _words(True), with_rowid=True)
        _rebuild_on_sqlite("model_tags", _tags(), with_rowid=True)
        _rebuild_on_sqlite("model_grants", _grants(), with_rowid=True)
        return
    op.create_index(
        "ix_model_words_word_created_at", "model_words", ["word", "created_at", "model_id"]
    )
    op.drop_constraint("pk_model_words", "model_words", type_="primary")
    op.create_primary_key("pk_model_words", "model_words", ["word", "model_id"])
    op.alter_column("model_words", "created_at", existing_type=sa.BigInteger(), nullable=True)
