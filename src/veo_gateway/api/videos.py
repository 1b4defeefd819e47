"""`/v1/videos`: create a task, read it, fetch its video."""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from veo_gateway.api.deps import OwnerDep, ServicesDep
from veo_gateway.api.ranges import check_range
from veo_gateway.api.spec_dialect import parse_spec_request, render_spec_video, task_progress
from veo_gateway.api.status import owned_task
from veo_gateway.domain.validation import validate_request
from veo_gateway.errors import FailedPrecondition, InvalidArgument, NotFound
from veo_gateway.media.images import resolve_images
from veo_gateway.media.inputs import save_request
from veo_gateway.store.tasks import State

router = APIRouter()
log = logging.getLogger("veo_gateway.api")


def new_task_id() -> str:
    """An opaque, unguessable task id."""
    return "video_" + secrets.token_hex(16)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise InvalidArgument("request body is empty: send a JSON object", param="body")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}", param="body") from exc


@router.post("/v1/videos")
async def create_video(request: Request, services: ServicesDep, owner: OwnerDep) -> JSONResponse:
    """Validate, resolve images, store the task and its inputs, then answer at once."""
    parsed = parse_spec_request(await _json_body(request))
    row = services.catalog.require(parsed.model)
    validate_request(parsed, row)
    resolved = await resolve_images(parsed, services.fetcher, services.image_limits)
    task_id = new_task_id()
    try:
        stored = await save_request(services.storage, task_id, resolved)
        task = await services.tasks.create(
            task_id=task_id, owner=owner, dialect="spec", model=row.name, request=stored
        )
    except BaseException:
        await services.storage.delete_inputs(task_id)
        raise
    if services.worker is not None:
        timeout = services.settings.inline_submit_timeout
        refusal = await services.worker.submit_now(task, timeout)
        if refusal is not None:
            # Google refused the request itself: the client gets its answer, nothing is kept.
            await services.tasks.delete(task.id)
            await services.storage.delete_inputs(task.id)
            raise refusal
        services.worker.wake()
    log.info("task %s created (model %s, mode %s)", task.id, task.model, parsed.mode)
    # The reply is the spec's "accepted" object (status "", progress 0), even when the task was
    # already handed to Google inline; the next GET shows it in progress.
    return JSONResponse(render_spec_video(task, time.time()))


@router.api_route("/v1/videos/{task_id}/content", methods=["GET", "HEAD"])
async def get_video_content(
    task_id: str, request: Request, services: ServicesDep, owner: OwnerDep
) -> FileResponse:
    """The MP4 from our storage, with Range, HEAD and ETag support."""
    task = await owned_task(services.tasks, task_id, owner)
    if task.state is State.FAILED:
        raise FailedPrecondition(
            f"video {task_id} failed, there is no content: {task.fail_reason}", param="id"
        )
    if task.state is not State.COMPLETED or not task.video_path:
        status = "queued" if task.state in (State.QUEUED, State.SUBMITTING) else "in_progress"
        raise FailedPrecondition(
            f"video {task_id} is not ready yet (status {status}, progress "
            f"{task_progress(task, time.time())}%); poll GET /v1/videos/{task_id} until "
            "it is completed",
            param="id",
        )
    path = Path(task.video_path)
    try:
        stat_result = await anyio.Path(path).stat()
    except FileNotFoundError:
        raise NotFound(f"the video of {task_id} is no longer stored", param="id") from None
    check_range(request.headers.get("range"), stat_result.st_size)
    return FileResponse(
        path,
        stat_result=stat_result,
        media_type="video/mp4",
        filename=f"{task_id}.mp4",
        content_disposition_type="inline",
    )
