"""models.commit_message: why a model was written, kept with it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Nullable, so adding it is instant on both databases (no table rewrite).
    with op.batch_alter_table("models") as batch_op:
        batch_op.add_column(sa.Column("commit_message", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch_op:
        batch_op.drop_column("commit_message")
