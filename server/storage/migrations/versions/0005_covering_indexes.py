"""Covering indexes for pages found by id: a search's matches and a
reader's grants.

- ix_models_id_keys (id, created_at, updated_at, version_id): a page's sort
  keys and versions come from the index alone, not from each model's row;
- ix_model_words_model_id_word replaces ix_model_words_model_id: "has this
  model a word starting with ..." is answered from the index alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_models_id_keys", "models", ["id", "created_at", "updated_at", "version_id"])
    op.create_index("ix_model_words_model_id_word", "model_words", ["model_id", "word"])
    op.drop_index("ix_model_words_model_id", table_name="model_words")


def downgrade() -> None:
    op.create_index("ix_model_words_model_id", "model_words", ["model_id"])
    op.drop_index("ix_model_words_model_id_word", table_name="model_words")
    op.drop_index("ix_models_id_keys", table_name="models")
