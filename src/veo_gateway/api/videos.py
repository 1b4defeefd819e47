"""`/v1/videos`: create a task, read it, fetch its video."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from veo_gateway.api import schemas
from veo_gateway.api.bodies import looks_like_json_object, parse_json
from veo_gateway.api.content_response import ContentResponse
from veo_gateway.api.deps import OwnerDep, Services, ServicesDep
from veo_gateway.api.forms import FilePart, parse_form
from veo_gateway.api.openai_dialect import looks_like_openai, parse_openai_request
from veo_gateway.api.openapi import create_body, errors, ok
from veo_gateway.api.ranges import satisfiable_ranges
from veo_gateway.api.render import OPENAI, SPEC, render_task
from veo_gateway.api.sources import prepare_extension
from veo_gateway.api.spec_dialect import parse_spec_request, task_progress
from veo_gateway.api.status import owned_task, poll_after
from veo_gateway.domain.catalog import ModelCapabilities
from veo_gateway.domain.extension import ADDED_SECONDS
from veo_gateway.domain.numbers import decimal
from veo_gateway.domain.options import Options, check_options
from veo_gateway.domain.request import ImageSource, VideoRequest
from veo_gateway.domain.validation import validate_request
from veo_gateway.errors import (
    Conflict,
    FailedPrecondition,
    Gone,
    InsufficientStorage,
    InvalidArgument,
    NotFound,
    OutOfRange,
)
from veo_gateway.media.frames import make_spritesheet, make_thumbnail
from veo_gateway.media.images import resolve_images
from veo_gateway.media.inputs import save_request
from veo_gateway.store.notifier import Channel
from veo_gateway.store.tasks import IdempotencyConflict, State, Task
from veo_gateway.store.usage import Charge, check_model
from veo_gateway.webhooks.callbacks import validate_callback_url
from veo_gateway.worker.cancel import cancel_at_google
from veo_gateway.worker.retention import RetentionPolicy

MAX_PAGE = 100
MAX_IDEMPOTENCY_KEY = 255

router = APIRouter()
log = logging.getLogger("veo_gateway.api")


def new_task_id() -> str:
    """An opaque, unguessable task id."""
    return "video_" + secrets.token_hex(16)


@router.post(
    "/v1/videos",
    responses={
        **ok(schemas.Video, "The task, accepted: its video object."),
        **errors(400, 401, 403, 404, 409, 410, 413, 429, 503),
        "default": {
            "model": schemas.ErrorEnvelope,
            "description": "Google refused the request when it was handed over at once: its "
            "own code, status and message.",
        },
    },
    openapi_extra=create_body(),
)
async def create_video(request: Request, services: ServicesDep, owner: OwnerDep) -> JSONResponse:
    """Validate, resolve images, store the task and its inputs, then answer at once.

    The body is the spec's JSON, or OpenAI's (multipart/form-data, or JSON using its fields);
    the task keeps the dialect it was created in. With an `Idempotency-Key`, a repeat of the
    same request gives back the same task, and a different request with the key a 409.
    """
    key = idempotency_key(request)
    dialect, parsed, fingerprint, callback_url = await _parse_create(
        request, services, fingerprint=key is not None
    )
    return await create_task(
        services,
        owner,
        dialect,
        parsed,
        key=key,
        fingerprint=fingerprint,
        callback_url=callback_url,
    )


async def create_task(
    services: Services,
    owner: str,
    dialect: str,
    parsed: VideoRequest[ImageSource],
    *,
    key: str | None,
    fingerprint: str,
    callback_url: str | None = None,
) -> JSONResponse:
    """Check a parsed create (an extension's source too), store the task and hand it over."""
    row = services.catalog.require(parsed.model)
    limits = await services.keys.limits(owner)
    check_model(limits, row.name)
    validate_request(parsed, row)
    parsed, options = check_options(parsed, row, services.catalog)
    idempotency = None if key is None else (key, fingerprint)
    if key is not None and (earlier := await services.tasks.find_idempotent(owner, key)):
        return await _replay(services, owner, key, fingerprint, *earlier)
    if parsed.video is not None:
        parsed = await prepare_extension(services, owner, parsed, row)
    resolved = await resolve_images(parsed, services.fetcher, services.image_limits)
    services.storage.check_space()  # 507 under the free-space floor, before writing anything
    task_id = new_task_id()
    try:
        stored = await save_request(services.storage, task_id, resolved)
        task = await services.tasks.create(
            task_id=task_id,
            owner=owner,
            dialect=dialect,
            model=row.name,
            request=stored,
            idempotency=idempotency,
            charge=_charge(services, parsed, row, options),
            limits=limits,
            callback_url=callback_url,
        )
    except IdempotencyConflict as conflict:
        # Another request with the same key won the race: answer what it created.
        await services.storage.delete_inputs(task_id)
        assert key is not None
        return await _replay(
            services, owner, key, fingerprint, conflict.task_id, conflict.request_hash
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
    # Every worker (this process's, and on PostgreSQL every other's) looks for work now.
    await services.notifier.publish(Channel.TASK_CREATED, task.id)
    log.info("task %s created (model %s, mode %s, %s)", task.id, task.model, parsed.mode, dialect)
    # The reply is the "accepted" object (spec: status "", OpenAI: queued), even when the task
    # was already handed to Google inline; the next GET shows it in progress.
    return JSONResponse(render_task(task, time.time(), services.settings.retention_seconds))


def _charge(
    services: Services, parsed: VideoRequest[ImageSource], row: ModelCapabilities, options: Options
) -> Charge:
    """What the task will cost if every sample it asks for is delivered (an extension: the
    seconds Google adds, see domain/extension.py)."""
    seconds = parsed.duration_seconds or row.default_duration
    if parsed.video is not None:
        seconds = ADDED_SECONDS
    resolution = parsed.resolution or row.default_resolution
    audio, samples = options.audio(row), options.sample_count
    return Charge(
        model=row.name,
        seconds=seconds * samples,
        resolution=resolution,
        audio=audio,
        cost_usd=round(services.prices.cost(row.name, resolution, seconds, audio) * samples, 4),
        samples=samples,
    )


async def _parse_create(
    request: Request, services: Services, *, fingerprint: bool
) -> tuple[str, VideoRequest[ImageSource], str, str | None]:
    """(dialect, request, fingerprint of what the client sent, callback URL) for a create.

    The fingerprint (a digest of the canonical request, images included) is only worked out
    when asked for: only creates with an Idempotency-Key need it, and bodies run to tens of MB.
    """
    content_type = request.headers.get("content-type", "").lower()
    raw = await request.body()
    if content_type.startswith("multipart/form-data") or (
        content_type.startswith("application/x-www-form-urlencoded")
        and not looks_like_json_object(raw)
    ):
        fields, upload = _form_fields(parse_form(content_type, raw))
        parsed = parse_openai_request(fields, services.catalog, upload)
        digest = ""
        if fingerprint:
            hashed = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
            if upload is not None:
                hashed.update(hashlib.sha256(upload[0]).digest())
            digest = hashed.hexdigest()
        return OPENAI, parsed, digest, None
    body = parse_json(raw)
    digest = (
        hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() if fingerprint else ""
    )
    if isinstance(body, Mapping) and looks_like_openai(body):
        return OPENAI, parse_openai_request(body, services.catalog), digest, None
    parsed = parse_spec_request(body)
    callback_url = validate_callback_url(body.get("callback_url"), services.settings)
    return SPEC, parsed, digest, callback_url


def _form_fields(
    items: list[tuple[str, str | FilePart]],
) -> tuple[dict[str, Any], tuple[bytes, str | None] | None]:
    """OpenAI's form fields; `input_reference` as a file, or as `input_reference[image_url]`
    (how the SDK flattens `{"image_url": ...}` into a form)."""
    fields: dict[str, Any] = {}
    upload: tuple[bytes, str | None] | None = None
    for name, value in items:
        if isinstance(value, FilePart):
            if name != "input_reference":
                raise InvalidArgument(
                    f"{name} must be a text field, not a file; only input_reference takes a file",
                    param=name,
                )
            upload = (value.data, value.content_type)
        elif name == "input_reference[image_url]":
            fields["input_reference"] = {"image_url": value}
        else:
            fields[name] = value
    return fields, upload


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    problem = None
    if not key:
        problem = (
            f"Idempotency-Key is empty; send 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        )
    elif len(key) > MAX_IDEMPOTENCY_KEY:
        problem = (
            f"Idempotency-Key is {len(key)} characters long; the limit is {MAX_IDEMPOTENCY_KEY}"
        )
    elif not all(" " <= char <= "~" for char in key):
        # Starlette reads header bytes as Latin-1: anything outside printable ASCII is a control
        # character or bytes of an encoding the key would silently depend on.
        problem = (
            "Idempotency-Key must be printable ASCII (space to '~'): no control characters "
            "or non-ASCII bytes"
        )
    if problem is not None:
        raise InvalidArgument(problem, param="Idempotency-Key")
    return key


async def _replay(
    services: Services, owner: str, key: str, fingerprint: str, task_id: str, earlier_hash: str
) -> JSONResponse:
    """The answer to a create whose Idempotency-Key was already used."""
    if earlier_hash != fingerprint:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used with a different request; use a new key "
            "for a new request",
            param="Idempotency-Key",
        )
    task = await services.tasks.get(task_id, owner)
    if task is None:
        raise Conflict(
            f"the video created with Idempotency-Key {key!r} has been deleted",
            param="Idempotency-Key",
        )
    body = render_task(task, time.time(), services.settings.retention_seconds)
    return JSONResponse(body, headers={"idempotent-replayed": "true"})


@router.get(
    "/v1/videos",
    responses={**ok(schemas.VideoList, "A page of the caller's videos."), **errors(400, 401)},
)
async def list_videos(
    services: ServicesDep,
    owner: OwnerDep,
    after: Annotated[str | None, Query(description="The `last_id` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> JSONResponse:
    """The caller's own videos, newest first by default, a page at a time."""
    page = await services.tasks.list_for_owner(
        owner, limit=limit + 1, after=after, newest_first=order == "desc"
    )
    if page is None:
        raise InvalidArgument(f"after: no video with id {after!r}", param="after")
    now = time.time()
    retention = services.settings.retention_seconds
    data = [render_task(task, now, retention) for task in page[:limit]]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(page) > limit,
        }
    )


@router.get(
    "/v1/videos/{task_id}",
    responses={**ok(schemas.Video, "The task's video object."), **errors(401, 404)},
)
async def get_video(task_id: str, services: ServicesDep, owner: OwnerDep) -> JSONResponse:
    """The task's video object, with `openai-poll-after-ms` while it runs.

    Served by the status fast path (api/status.py) before the routing, with the same answer;
    this route is what the path is without the fast path in front, and what the document shows.
    """
    task = await owned_task(services.tasks, task_id, owner)
    now = time.time()
    body = render_task(task, now, services.settings.retention_seconds)
    return JSONResponse(body, headers=poll_after(task, now))


@router.delete(
    "/v1/videos/{task_id}",
    responses={**ok(schemas.VideoDeleted, "The video was deleted."), **errors(401, 404)},
)
async def delete_video(task_id: str, services: ServicesDep, owner: OwnerDep) -> JSONResponse:
    """Delete the video and its inputs; a task still running is cancelled and never charged."""
    reason = "cancelled: deleted by its owner"
    try:
        before = await services.tasks.mark_deleted(task_id, owner, reason)
    except InsufficientStorage:
        # The database needs a little room to record the delete: the task's files make it.
        if await services.tasks.get(task_id, owner) is None:
            raise NotFound(f"no video task with id {task_id!r}", param="id") from None
        await services.storage.delete_video(task_id)
        await services.storage.delete_inputs(task_id)
        before = await services.tasks.mark_deleted(task_id, owner, reason)
    if before is None:
        raise NotFound(f"no video task with id {task_id!r}", param="id")
    if before.state in (State.SUBMITTING, State.IN_PROGRESS):
        # The worker will not poll it any more (a submission's job gives it back too: a
        # release is idempotent, so a job that died with it cannot keep it).
        await services.pool.release(before.upstream, task_id)
        # Its slot is free: the workers (here and, on PostgreSQL, elsewhere) may take another.
        await services.notifier.publish(Channel.TASK_FINISHED, task_id)
        if before.state is State.IN_PROGRESS and before.operation_name:
            await cancel_at_google(services.pool, before.upstream, before.operation_name)
    await services.storage.delete_video(task_id)
    await services.storage.delete_inputs(task_id)
    log.info("task %s deleted (was %s)", task_id, before.state.value)
    return JSONResponse({"id": task_id, "object": "video.deleted", "deleted": True})


_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The MP4 (variant=video), or a JPEG (thumbnail, spritesheet).",
        "content": {
            "video/mp4": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    206: {
        "description": "The ranges asked for (several as multipart/byteranges).",
        "content": {
            "video/mp4": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "multipart/byteranges": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}


@router.get(
    "/v1/videos/{task_id}/content",
    responses={**_CONTENT, **errors(400, 401, 404, 410, 416)},
    operation_id="get_video_content",
)
@router.head(
    "/v1/videos/{task_id}/content",
    responses={**_CONTENT, **errors(400, 401, 404, 410, 416)},
    operation_id="head_video_content",
)
async def get_video_content(
    task_id: str,
    request: Request,
    services: ServicesDep,
    owner: OwnerDep,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
    index: Annotated[
        str | None,
        Query(description="Which sample (0-based; default 0): `sample_count` says how many."),
    ] = None,
    range_: Annotated[str | None, Header(alias="range")] = None,
    if_range: Annotated[str | None, Header(alias="if-range")] = None,
) -> Response:
    """The MP4 from our storage (Range, If-Range, HEAD and ETag), or a JPEG thumbnail or
    spritesheet, of sample `index`; 410 once the retention has deleted it. With
    CONTENT_REDIRECT and object storage, a GET of the MP4 is a 307 to a presigned URL of the
    store instead."""
    task = await owned_task(services.tasks, task_id, owner)
    sample = _sample_index(index)
    if task.state in (State.FAILED, State.CANCELLED):
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
    samples = task.samples
    if sample >= len(samples):
        raise OutOfRange(
            f"index={sample} is out of range: video {task_id} has {len(samples)} sample(s), "
            f"index 0 to {len(samples) - 1}",
            param="index",
        )
    video_path = samples[sample]
    gone = _gone(services, task)
    if task.expired_at is not None:
        raise gone
    storage, settings = services.storage, services.settings
    # The first sample's files keep the names they always had; the others say their index.
    named = task_id if sample == 0 else f"{task_id}.{sample}"
    try:
        # Opened now and read through: the sweep may delete the video mid-download.
        if variant == "video":
            source = await storage.open_video(video_path)
            media_type, suffix = "video/mp4", ".mp4"
        else:
            make = make_thumbnail if variant == "thumbnail" else make_spritesheet
            still = variant if sample == 0 else f"{variant}-{sample}"
            source = await storage.open_still(task_id, video_path, still, make)
            media_type, suffix = "image/jpeg", ".jpg"
    except FileNotFoundError:
        # The sweeper deletes the files before it marks the task.
        raise gone from None
    try:
        if (
            variant == "video"
            and settings.content_redirect
            and request.method == "GET"
            # The gateway's own page (the playground) may connect to the gateway only (its
            # Content-Security-Policy): it is served the bytes, as every client of file storage.
            and request.headers.get("sec-fetch-site") != "same-origin"
            and (url := await storage.signed_url(video_path, settings.content_redirect_seconds))
        ):
            # The key was checked above: the signature lets the store serve this one object.
            return RedirectResponse(url, status_code=307, headers={"cache-control": "no-store"})
        if if_range is not None and if_range.strip() not in (source.etag, source.last_modified):
            range_ = None  # RFC 9110 section 13.1.5: the file changed, send all of it
        ranges = satisfiable_ranges(range_, source.size)
    except BaseException:
        source.close()
        raise
    return ContentResponse(
        source,
        media_type=media_type,
        filename=f"{named}{'' if variant == 'video' else '.' + variant}{suffix}",
        ranges=ranges,
    )


def _sample_index(text: str | None) -> int:
    """The `index` query parameter: a whole number from 0."""
    if text is None:
        return 0
    value = decimal(text.strip(), max_digits=4)
    if value is None:
        raise InvalidArgument(
            f"index must be a whole number from 0 (the sample's position); got {text[:40]!r}",
            param="index",
        )
    return value


def _gone(services: Services, task: Task) -> Gone:
    """The 410 for a task whose video the retention deleted."""
    settings = services.settings
    policy = RetentionPolicy(settings.retention_seconds, settings.storage_max_bytes)
    return Gone(policy.gone_message(task), param="id")
