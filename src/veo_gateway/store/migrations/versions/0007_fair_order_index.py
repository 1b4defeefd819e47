"""Fair order: indexes on (owner, state) and (owner, submitted_at), so the scheduler reads each
waiting owner's tasks in flight and last submission with a seek, not a scan of every task ever
made.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_owner_state", "tasks", ["owner", "state"])
    op.create_index("ix_tasks_owner_submitted", "tasks", ["owner", "submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_owner_submitted", table_name="tasks")
    op.drop_index("ix_tasks_owner_state", table_name="tasks")
