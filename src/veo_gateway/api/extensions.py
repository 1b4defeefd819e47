"""`POST /v1/videos/extensions`: OpenAI's video extension, served by Veo 3.1's.

The `openai` SDK's `videos.extend(prompt=, seconds=, video=)` sends a multipart form; `video`
is an uploaded MP4 there (the SDK refuses `{"id": ...}` in a form), `{"id": ...}` in JSON, or
`video[id]` in a form written by hand. An upload that is a video this gateway made (known by its
SHA-256) extends that task; another MP4 is taken where the route's upstream takes any video
(Vertex AI), and refused where it does not (the Gemini API). The reply is the new task's video
object, as for `POST /v1/videos`; the new video is the whole, source and extension.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from veo_gateway.api import schemas
from veo_gateway.api.bodies import check_text, parse_json
from veo_gateway.api.deps import OwnerDep, Services, ServicesDep
from veo_gateway.api.forms import FilePart, parse_form
from veo_gateway.api.openapi import errors, ok
from veo_gateway.api.render import OPENAI
from veo_gateway.api.videos import create_task, idempotency_key
from veo_gateway.domain.extension import ADDED_SECONDS, DURATION_SECONDS
from veo_gateway.domain.request import SourceVideo, VideoRequest
from veo_gateway.errors import InvalidArgument

router = APIRouter()

FIELDS = ("prompt", "seconds", "video", "model")
# OpenAI's `seconds` is the length of the new segment; Veo adds 7 s, asked as 8.
SECONDS = (str(ADDED_SECONDS), str(DURATION_SECONDS))

_BODY = {
    "type": "object",
    "required": ["prompt", "video"],
    "properties": {
        "prompt": {"type": "string"},
        "seconds": {"type": "string", "enum": list(SECONDS)},
        "model": {"type": "string"},
        "video": {
            "description": 'The completed video to extend: `{"id": ...}`, or an MP4 file.',
            "oneOf": [
                {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                {"type": "string", "format": "binary"},
            ],
        },
    },
}


@router.post(
    "/v1/videos/extensions",
    responses={
        **ok(schemas.Video, "The extension's task, accepted: its video object."),
        **errors(400, 401, 403, 404, 409, 410, 413, 429, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _BODY},
                "multipart/form-data": {"schema": _BODY},
            },
        }
    },
)
async def extend_video(request: Request, services: ServicesDep, owner: OwnerDep) -> JSONResponse:
    """Extend a completed video by 7 s (Veo 3.1): a new task whose video is the whole."""
    key = idempotency_key(request)
    fields, upload = await _read(request)
    parsed = await _parse(services, owner, fields, upload)
    fingerprint = ""
    if key is not None:
        hashed = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
        if upload is not None:
            hashed.update(hashlib.sha256(upload).digest())
        fingerprint = hashed.hexdigest()
    return await create_task(
        services, owner, OPENAI, parsed, key=key, fingerprint=fingerprint, callback_url=None
    )


async def _read(request: Request) -> tuple[dict[str, Any], bytes | None]:
    """The fields of a JSON or form body, and `video` when it is a file."""
    content_type = request.headers.get("content-type", "").lower()
    raw = await request.body()
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        fields: dict[str, Any] = {}
        upload = None
        for name, value in parse_form(content_type, raw):
            if isinstance(value, FilePart):
                if name != "video":
                    raise InvalidArgument(
                        f"{name} must be a text field; only video takes a file", param=name
                    )
                upload = value.data
            elif name == "video[id]":
                fields["video"] = {"id": value}
            else:
                fields[name] = value
        return fields, upload
    body = parse_json(raw)
    if not isinstance(body, Mapping):
        raise InvalidArgument("request body must be a JSON object", param="body")
    return dict(body), None


async def _parse(
    services: Services, owner: str, fields: Mapping[str, Any], upload: bytes | None
) -> VideoRequest[Any]:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidArgument(
            f"unknown field {unknown[0]!r}; accepted fields: {', '.join(FIELDS)}",
            param=unknown[0],
        )
    if "prompt" not in fields:
        raise InvalidArgument("prompt is required", param="prompt")
    prompt = _text(fields["prompt"], "prompt")
    if "seconds" in fields:
        seconds = fields["seconds"]
        if isinstance(seconds, bool) or str(seconds).strip() not in SECONDS:
            raise InvalidArgument(
                f"seconds: Veo extends a video by {ADDED_SECONDS} s per call (Google's "
                f"durationSeconds {DURATION_SECONDS}); send seconds={DURATION_SECONDS} (or "
                f"{ADDED_SECONDS}), got {json.dumps(seconds)[:40]}",
                param="seconds",
            )
    source = _source(fields.get("video"), upload)
    model = _text(fields["model"], "model") if "model" in fields else None
    if model is None:
        model = await _model_for(services, owner, source)
    return VideoRequest(model=model, prompt=prompt, video=source)


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{param} must be a string", param=param)
    return check_text(value, param)


def _source(value: Any, upload: bytes | None) -> SourceVideo:
    if upload is not None:
        if value is not None:
            raise InvalidArgument("send video once: a file or an id, not both", param="video")
        return SourceVideo(data=upload)
    task_id = value.get("id") if isinstance(value, Mapping) else None
    if not isinstance(task_id, str) or not task_id.strip():
        raise InvalidArgument(
            'video is required: {"id": "<a completed video id>"}, or an MP4 file in a form',
            param="video",
        )
    return SourceVideo(task_id=task_id.strip())


async def _model_for(services: Services, owner: str, source: SourceVideo) -> str:
    """The model an extension that names none goes to: its source's when that model extends,
    else the default model, else the first model here that extends."""
    catalog = services.catalog
    if source.task_id is not None:
        task = await services.tasks.get(source.task_id, owner)
        if task is not None and task.model in catalog and catalog[task.model].extension:
            return task.model
    default = catalog.default_model
    if catalog[default].extension:
        return default
    return next((name for name in catalog if catalog[name].extension), default)
