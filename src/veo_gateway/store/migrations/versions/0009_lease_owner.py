"""Leases get an owner: the id of the worker process holding a task's lease, so every change a
worker makes under its lease is a compare-and-swap on the owner too, and a worker whose lease
was taken over cannot change the task any more.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("lease_owner", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lease_owner")
