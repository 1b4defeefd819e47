"""Credential slots get an end: a submission cut off on the wire (its worker died, or shut down
before the call returned) may be running at Google, which counts it against the credential's
quota although no task holds it any more. Its slot is kept, under a name of its own, until
`held_until` (about as long as a render takes), so the in-flight cap still holds.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("credential_slots", sa.Column("held_until", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("credential_slots") as batch:
        batch.drop_column("held_until")
