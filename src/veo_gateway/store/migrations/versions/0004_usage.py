"""Client key limits and the usage ledger.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("allowed_models", sa.JSON))
        batch.add_column(sa.Column("max_in_flight", sa.Integer))
        batch.add_column(sa.Column("max_video_seconds_per_day", sa.Integer))
        batch.add_column(sa.Column("monthly_budget_usd", sa.Float))
    op.create_table(
        "usage",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("seconds", sa.Integer, nullable=False),
        sa.Column("resolution", sa.String(16), nullable=False),
        sa.Column("audio", sa.Boolean, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("settled_at", sa.Float),
    )
    op.create_index("ix_usage_owner_day", "usage", ["owner", "day"])


def downgrade() -> None:
    op.drop_index("ix_usage_owner_day", "usage")
    op.drop_table("usage")
    with op.batch_alter_table("api_keys") as batch:
        for column in (
            "allowed_models",
            "max_in_flight",
            "max_video_seconds_per_day",
            "monthly_budget_usd",
        ):
            batch.drop_column(column)
