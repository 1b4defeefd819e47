"""A task rendered in the dialect it was created in (status replies, lists, webhook events)."""

from __future__ import annotations

from typing import Any

from veo_gateway.api.openai_dialect import render_openai_video
from veo_gateway.api.spec_dialect import render_spec_video
from veo_gateway.store.tasks import Task
from veo_gateway.worker.retention import expires_at

SPEC = "spec"
OPENAI = "openai"


def render_task(task: Task, now: float, retention_seconds: float) -> dict[str, Any]:
    """The task's video object: OpenAI's Video for OpenAI-shaped tasks, the spec's otherwise.

    `retention_seconds` (0: forever) dates when a completed task's video is deleted.
    """
    expires = expires_at(task, retention_seconds)
    if task.dialect == OPENAI:
        return render_openai_video(task, now, expires)
    return render_spec_video(task, now, expires)
