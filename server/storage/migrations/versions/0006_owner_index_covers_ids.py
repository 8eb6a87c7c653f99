"""ix_models_user_id covers (user_id, id): a reader's own models, an owner's
list and the "created" view find their ids in the index alone, not in each
model's row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_index("ix_models_user_id", table_name="models")
    op.create_index("ix_models_user_id", "models", ["user_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_models_user_id", table_name="models")
    op.create_index("ix_models_user_id", "models", ["user_id"])
