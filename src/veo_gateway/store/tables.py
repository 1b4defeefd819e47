"""The database schema, declared once with SQLAlchemy Core (migrations create it)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per video task. Times are Unix seconds (float). `due_at` is when the worker should next
# act on the task (submit it when queued, poll it when in progress); `lease_until` keeps two
# workers from acting on it at once.
tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("dialect", sa.String(16), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("upstream", sa.String(128)),
    sa.Column("upstream_model", sa.String(128)),
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
    sa.Index("ix_tasks_owner_created", "owner", "created_at"),
    sa.Index("ix_tasks_state_due", "state", "due_at"),
)

# Client API keys created with `veo-gateway keys create`. Only a SHA-256 of the key is kept.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
)
