"""model_words carries each model's created_at, indexed after the word: an
admin's search for one word in the default order (newest first) reads its
page from the word's range in that order, instead of every match.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("model_words", sa.Column("created_at", sa.BigInteger(), nullable=True))
    # A model's created_at never changes: the copy stays right.
    op.execute(
        "UPDATE model_words SET created_at ="
        " (SELECT models.created_at FROM models WHERE models.id = model_words.model_id)"
    )
    op.create_index(
        "ix_model_words_word_created_at", "model_words", ["word", "created_at", "model_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_model_words_word_created_at", table_name="model_words")
    with op.batch_alter_table("model_words") as batch:
        batch.drop_column("created_at")
