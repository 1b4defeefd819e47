"""Credential state shared by every worker: slots in flight, the requests-per-minute window,
cool-downs and out-of-service marks (until now each process kept its own in memory).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credential_slots",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("credential", sa.String(128), nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
    )
    op.create_index("ix_credential_slots_credential", "credential_slots", ["credential"])
    op.create_table(
        "credential_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("credential", sa.String(128), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_credential_requests_at", "credential_requests", ["credential", "at"])
    op.create_table(
        "credential_state",
        sa.Column("credential", sa.String(128), primary_key=True),
        sa.Column("cool_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("out_of_service", sa.Text),
        sa.Column("out_since", sa.Float),
    )
    # Tasks already running upstream keep their slots (the worker also restores them at start).
    op.execute(
        "INSERT INTO credential_slots (task_id, credential, acquired_at) "
        "SELECT id, upstream, updated_at FROM tasks "
        "WHERE state IN ('submitting', 'in_progress') AND upstream IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("credential_state")
    op.drop_index("ix_credential_requests_at", table_name="credential_requests")
    op.drop_table("credential_requests")
    op.drop_index("ix_credential_slots_credential", table_name="credential_slots")
    op.drop_table("credential_slots")
