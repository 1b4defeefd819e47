"""The database schema, declared once with SQLAlchemy Core (migrations create it)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per video task. Times are Unix seconds (float). `due_at` is when the worker should next
# act on the task (submit it when queued, poll it when in progress); `lease_until` and
# `lease_owner` (the id of the worker process holding the lease, store/claims.py) keep two
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
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("expected_seconds", sa.Float),
    sa.Column("fail_reason", sa.Text),
    sa.Column("video_path", sa.String(1024)),
    sa.Column("video_bytes", sa.BigInteger),  # every sample's together
    # Every delivered sample's reference, the first (`video_path`) included; NULL: one sample.
    sa.Column("sample_paths", sa.JSON),
    # Samples the upstream's safety filters withheld (never charged).
    sa.Column("samples_filtered", sa.Integer),
    # Where the upstream keeps each delivered sample (a Gemini API file URI, a gs:// object;
    # null for bytes that came inline): what an extension of the task names there.
    sa.Column("upstream_refs", sa.JSON),
    # Set once the task's final event (video.completed / video.failed) has been queued for the
    # webhooks, in the same transaction: NULL on a finished task means "not announced yet".
    sa.Column("notified_at", sa.Float),
    # Set by DELETE: the owner no longer sees the task, its files are gone; the row stays for
    # usage and for the worker (an unfinished task is cancelled).
    sa.Column("deleted_at", sa.Float),
    # Set by the retention sweeper once the task's video, derived images and inputs are deleted
    # (store/retention.py): `content` then answers 410; the row stays.
    sa.Column("expired_at", sa.Float),
    sa.Index("ix_tasks_owner_created", "owner", "created_at"),
    sa.Index("ix_tasks_state_due", "state", "due_at"),
    sa.Index("ix_tasks_unnotified", "notified_at", "state"),
    sa.Index("ix_tasks_unexpired", "expired_at", "completed_at"),
    sa.Index("ix_tasks_owner_state", "owner", "state"),
    sa.Index("ix_tasks_owner_submitted", "owner", "submitted_at"),
)

# A SHA-256 of each stored sample, written while it streamed to storage: an upload that is a
# video this gateway made is known by it for the task that made it (video extension).
video_digests = sa.Table(
    "video_digests",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("sample", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Index("ix_video_digests_owner_sha256", "owner", "sha256"),
)

# Idempotency-Key headers seen on creates: (owner, key) -> the task it created, and a digest of
# the request it came with, so a retry gets the same task and a different body gets a 409.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("owner", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_idempotency_created", "created_at"),
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
    # Limits (NULL: none). allowed_models is a JSON list of public model names.
    sa.Column("allowed_models", sa.JSON),
    sa.Column("max_in_flight", sa.Integer),
    sa.Column("max_video_seconds_per_day", sa.Integer),
    sa.Column("monthly_budget_usd", sa.Float),
)

# The usage ledger: one entry per task, written with the task (state "reserved": counted
# against the key's limits) and settled with the task's final state change, in the same
# transaction: "charged" when a video was delivered, "released" (costs nothing) otherwise.
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("seconds", sa.Integer, nullable=False),
    sa.Column("resolution", sa.String(16), nullable=False),
    sa.Column("audio", sa.Boolean, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    # Samples asked for while reserved; those delivered once charged (seconds and cost with it).
    sa.Column("samples", sa.Integer, nullable=False, server_default="1"),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # UTC date of the create: YYYY-MM-DD
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("settled_at", sa.Float),
    sa.Index("ix_usage_owner_day", "owner", "day"),
)

# The webhook outbox. One delivery per (finished task, endpoint), written in the transaction that
# sets the task's `notified_at`; `id` is the Standard Webhooks `webhook-id` (the same on every
# retry) and `payload` the exact JSON body that is signed and sent each time.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending, delivered, failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    # Set while an attempt is under way, so a slow receiver is not sent the event twice at once;
    # cleared at start-up by the process holding the worker lock.
    sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("delivered_at", sa.Float),
    sa.Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_task", "task_id"),
)

# One row per delivery attempt: the HTTP status answered, or why no answer came.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id", "at"),
)

# The per-request `callback_url` of a task (spec dialect), besides the operator's endpoints.
webhook_callbacks = sa.Table(
    "webhook_callbacks",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
)

# Credential state shared by every worker (store/credentials.py). A slot in flight per task
# (submitting, or running upstream), keyed by the task so a task holds at most one and giving
# it back is idempotent; a slot counts only while its task is in flight (see `live_slot`).
credential_slots = sa.Table(
    "credential_slots",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("credential", sa.String(128), nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    # Set for the slot of a submission cut off on the wire (task_id "cut-off:<task>"): it
    # counts until then, whatever became of the task (store/credentials.py).
    sa.Column("held_until", sa.Float),
    sa.Index("ix_credential_slots_credential", "credential"),
)

# One row per submission a credential was given, pruned once past the one-minute window.
credential_requests = sa.Table(
    "credential_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("credential", sa.String(128), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_credential_requests_at", "credential", "at"),
)

# A credential's rest after a 429 (until when) and its "out of service" after a 401/403.
credential_state = sa.Table(
    "credential_state",
    metadata,
    sa.Column("credential", sa.String(128), primary_key=True),
    sa.Column("cool_until", sa.Float, nullable=False, server_default="0"),
    sa.Column("out_of_service", sa.Text),
    sa.Column("out_since", sa.Float),
)
