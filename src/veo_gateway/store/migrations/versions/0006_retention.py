"""Retention: when a finished task's stored files were deleted (`expired_at`).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("expired_at", sa.Float))
    op.create_index("ix_tasks_unexpired", "tasks", ["expired_at", "completed_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_unexpired", table_name="tasks")
    op.drop_column("tasks", "expired_at")
