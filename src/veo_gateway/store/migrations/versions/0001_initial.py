"""Tasks and API keys.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("dialect", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("upstream", sa.String(128)),
        sa.Column("operation_name", sa.String(512)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("submitted_at", sa.Float),
        sa.Column("completed_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("expected_seconds", sa.Float),
        sa.Column("fail_reason", sa.Text),
        sa.Column("video_path", sa.String(1024)),
        sa.Column("video_bytes", sa.BigInteger),
    )
    op.create_index("ix_tasks_owner_created", "tasks", ["owner", "created_at"])
    op.create_index("ix_tasks_state_due", "tasks", ["state", "due_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_tasks_state_due", "tasks")
    op.drop_index("ix_tasks_owner_created", "tasks")
    op.drop_table("tasks")
