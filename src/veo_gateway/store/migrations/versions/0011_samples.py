"""Several samples per task: where each delivered sample is stored and how many the safety
filters withheld, and how many samples a ledger entry is for (each delivered one is charged).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("sample_paths", sa.JSON))
    op.add_column("tasks", sa.Column("samples_filtered", sa.Integer))
    op.add_column("usage", sa.Column("samples", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("samples")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("samples_filtered")
        batch.drop_column("sample_paths")
