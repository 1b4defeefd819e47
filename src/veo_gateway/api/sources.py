"""The video an extension continues: a completed task of the caller's, or an uploaded MP4 (known
by its digest when it is a video this gateway made), resolved into what each upstream kind of
the route is sent, with Google's rules checked first (domain/extension.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

from veo_gateway.api.deps import Services
from veo_gateway.domain.catalog import ModelCapabilities
from veo_gateway.domain.extension import (
    DURATION_SECONDS,
    RESOLUTION,
    Clip,
    check_extension,
    video_seconds,
)
from veo_gateway.domain.request import SourceVideo, VideoRequest
from veo_gateway.errors import FailedPrecondition, Gone, InvalidArgument, NotFound
from veo_gateway.media.clips import probe_upload
from veo_gateway.store.digests import find_digest
from veo_gateway.store.tasks import State, Task

VEO_FPS = 24.0  # what Veo renders (and the emulator, by default)
_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def task_clip(task: Task, sample: int = 0, gcs_uri: str | None = None) -> Clip:
    """What is known of sample `sample` of a completed task, from its row (`gcs_uri`: where
    the store keeps it, when that is a Cloud Storage bucket)."""
    request = task.request
    width, height = _SIZES.get(str(request.get("resolution") or RESOLUTION), _SIZES[RESOLUTION])
    if (request.get("aspect_ratio") or "16:9") == "9:16":
        width, height = height, width
    refs = task.upstream_refs or []
    ref = refs[sample] if sample < len(refs) else None
    return Clip(
        seconds=float(video_seconds(request)),
        width=width,
        height=height,
        fps=VEO_FPS,
        task_id=task.id,
        upstream_uri=ref if ref and ref.startswith("https://") else None,
        gcs_uri=gcs_uri,
        credential=task.upstream,
        made_at=task.completed_at,
    )


async def source_task(services: Services, owner: str, task_id: str) -> Task:
    """The caller's completed task `task_id`, or why it cannot be extended (another owner's
    task is answered as one that does not exist)."""
    task = await services.tasks.get(task_id, owner)
    if task is None:
        raise NotFound(f"no video task with id {task_id!r} to extend", param="video")
    if task.state in (State.FAILED, State.CANCELLED):
        raise FailedPrecondition(
            f"video {task_id} failed, there is nothing to extend: {task.fail_reason}",
            param="video",
        )
    if task.state is not State.COMPLETED:
        raise FailedPrecondition(
            f"video {task_id} is not completed yet: only a completed video can be extended; "
            f"poll GET /v1/videos/{task_id} until it is",
            param="video",
        )
    if task.expired_at is not None:
        raise Gone(
            f"video {task_id} was deleted by the retention: it cannot be extended", param="video"
        )
    return task


async def _made_here(services: Services, owner: str, data: bytes) -> tuple[Task, int] | None:
    """The caller's completed task (and sample) whose stored video is exactly `data`."""
    digest = hashlib.sha256(data).hexdigest()
    for task_id, sample in await find_digest(services.tasks, owner, digest):
        task = await services.tasks.get(task_id, owner)
        if task is not None and task.state is State.COMPLETED and task.expired_at is None:
            return task, sample
    return None


async def _stored_bytes(services: Services, task: Task, sample: int) -> bytes:
    try:
        blob = await services.storage.open_video(task.samples[sample])
    except FileNotFoundError:
        raise Gone(
            f"video {task.id} was deleted by the retention: it cannot be extended", param="video"
        ) from None
    try:
        return b"".join([chunk async for chunk in blob.chunks(0, blob.size)])
    finally:
        blob.close()


def _check_credential(services: Services, clip: Clip, row: ModelCapabilities) -> None:
    """The Gemini API's file URI lives in one project: the credential that made the source must
    serve `row` here too."""
    credential = services.pool.get(clip.credential)
    upstreams = {target.upstream for target in services.pool.targets(row.name)}
    if credential is None or credential.upstream not in upstreams:
        raise InvalidArgument(
            f"{clip.name} was made through upstream credential {clip.credential!r}, which does "
            f"not serve {row.name} here: the Gemini API extends a video only in the project "
            "that made it",
            param="video",
        )


async def prepare_extension(
    services: Services, owner: str, request: VideoRequest[Any], row: ModelCapabilities
) -> VideoRequest[Any]:
    """The extension `request` with its source resolved (and checked by Google's rules), and
    Google's parameters for an extension set: 8 s asked, 720p, the source's aspect ratio."""
    video = request.video
    assert video is not None
    catalog = services.catalog
    kinds = catalog.kinds(row.name)
    task, sample = None, 0
    if video.task_id is not None:
        task = await source_task(services, owner, video.task_id)
    elif video.data is not None and (found := await _made_here(services, owner, video.data)):
        task, sample = found
    if task is not None:
        clip = task_clip(task, sample, services.storage.gcs_uri(task.samples[sample]))
    else:
        clip = await probe_upload(video.data or b"")
    extenders = [name for name in catalog if catalog[name].extension]
    check_extension(request, row, kinds, clip, time.time(), extenders=extenders)
    gemini, vertex = "gemini" in kinds, "vertex" in kinds
    if gemini:
        _check_credential(services, clip, row)
    data = None
    if vertex and clip.gcs_uri is None:
        data = (
            video.data
            if task is None or video.data
            else await _stored_bytes(services, task, sample)
        )
    resolved = SourceVideo(
        task_id=None if task is None else task.id,
        data=data,
        uri=clip.upstream_uri if gemini else None,
        gcs_uri=clip.gcs_uri if vertex else None,
        field=video.field,
        seconds=clip.seconds,
        credential=clip.credential if gemini else None,
    )
    return dataclasses.replace(
        request,
        video=resolved,
        aspect_ratio=clip.aspect_ratio,
        duration_seconds=DURATION_SECONDS,
        resolution=RESOLUTION,
    )
