"""Fair order: an index on (owner, submitted_at), so the scheduler reads when each owner was
last served with one seek per owner instead of a scan of every task ever made.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_owner_submitted", "tasks", ["owner", "submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_owner_submitted", table_name="tasks")
