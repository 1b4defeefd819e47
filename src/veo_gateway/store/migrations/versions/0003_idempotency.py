"""Idempotency keys for creates; `notified_at` (webhook events) and `deleted_at` on tasks.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("notified_at", sa.Float))
        batch.add_column(sa.Column("deleted_at", sa.Float))
    op.create_index("ix_tasks_unnotified", "tasks", ["notified_at", "state"])
    # Tasks that finished before webhooks existed are not announced after the upgrade.
    op.execute(
        "UPDATE tasks SET notified_at = COALESCE(completed_at, updated_at) "
        "WHERE state IN ('completed', 'failed')"
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_unnotified", "tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("notified_at")
        batch.drop_column("deleted_at")
    op.drop_index("ix_idempotency_created", "idempotency_keys")
    op.drop_table("idempotency_keys")
