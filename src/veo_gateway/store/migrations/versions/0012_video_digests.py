"""Video extension: where Google keeps each delivered sample (the Gemini API's file URI, which an
extension names), and a SHA-256 of each stored sample, so an uploaded MP4 that is a video this
gateway made is known for the task that made it.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("upstream_refs", sa.JSON))
    op.create_table(
        "video_digests",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("sample", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Index("ix_video_digests_owner_sha256", "owner", "sha256"),
    )


def downgrade() -> None:
    op.drop_table("video_digests")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("upstream_refs")
