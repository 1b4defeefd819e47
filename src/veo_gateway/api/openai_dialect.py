"""The OpenAI Videos API dialect: `POST /v1/videos` as OpenAI's SDK sends it, and its Video object.

Creates come as `multipart/form-data` (what the `openai` SDK always sends: `prompt`, `model`,
`seconds`, `size`, and `input_reference` as a file, or as `input_reference[image_url]`) or as
JSON with the same fields (`input_reference` as `{"image_url": ...}`). `seconds` becomes
`durationSeconds` and `size` an aspect ratio and a resolution; nothing is ever silently changed:
a size or a duration the model cannot do is refused with what it can do.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from veo_gateway.api.bodies import check_text
from veo_gateway.api.spec_dialect import extension_fields, sample_fields, task_progress
from veo_gateway.domain.catalog import Catalog, ModelCapabilities
from veo_gateway.domain.extension import video_seconds
from veo_gateway.domain.numbers import decimal
from veo_gateway.domain.request import ImageSource, VideoRequest
from veo_gateway.errors import InvalidArgument
from veo_gateway.store.tasks import State, Task

FIELDS = ("prompt", "model", "seconds", "size", "input_reference")
SIZES: dict[str, tuple[str, str]] = {
    "1280x720": ("16:9", "720p"),
    "720x1280": ("9:16", "720p"),
    "1920x1080": ("16:9", "1080p"),
    "1080x1920": ("9:16", "1080p"),
    "3840x2160": ("16:9", "4k"),
    "2160x3840": ("9:16", "4k"),
    # Gemini Omni's 360p.
    "640x360": ("16:9", "360p"),
    "360x640": ("9:16", "360p"),
}
_SIZE_OF = {value: key for key, value in SIZES.items()}
_STATUS = {
    State.QUEUED: "queued",
    State.SUBMITTING: "queued",
    State.IN_PROGRESS: "in_progress",
    State.COMPLETED: "completed",
    State.FAILED: "failed",
    State.CANCELLED: "failed",
}


def looks_like_openai(body: Mapping[str, Any]) -> bool:
    """True for a JSON create that uses OpenAI's fields (the spec dialect has none of these)."""
    return any(key in body for key in ("seconds", "size", "input_reference"))


def default_model(catalog: Catalog) -> str:
    """The model a create without one goes to (OpenAI's own default does not exist here)."""
    return catalog.default_model


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{param} must be a string", param=param)
    return check_text(value, param)


def _shown(value: Any) -> str:
    """A client's value quoted in a message: JSON, and cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


def _seconds(value: Any, row: ModelCapabilities) -> int:
    if isinstance(value, str):
        check_text(value, "seconds")
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    seconds = decimal(text, max_digits=4)
    if seconds is None:
        raise InvalidArgument(
            f"seconds must be a whole number of seconds, got {_shown(value)}", param="seconds"
        )
    if seconds not in row.durations:
        accepted = ", ".join(str(d) for d in row.durations)
        raise InvalidArgument(
            f"seconds={seconds} is not available for {row.name}; it makes clips of "
            f"{accepted} seconds",
            param="seconds",
        )
    return seconds


def _size(value: Any, row: ModelCapabilities) -> tuple[str, str]:
    size = _text(value, "size").strip().lower()
    if size not in SIZES:
        raise InvalidArgument(
            f"size {_shown(value)} is not supported; use one of {', '.join(SIZES)}", param="size"
        )
    aspect_ratio, resolution = SIZES[size]
    if resolution not in row.resolutions or aspect_ratio not in row.aspect_ratios:
        offered = [
            name
            for name, (ratio, res) in SIZES.items()
            if res in row.resolutions and ratio in row.aspect_ratios
        ]
        raise InvalidArgument(
            f"size {size} is not available for {row.name}; it offers {', '.join(offered)}",
            param="size",
        )
    return aspect_ratio, resolution


def parse_openai_request(
    fields: Mapping[str, Any], catalog: Catalog, upload: tuple[bytes, str | None] | None = None
) -> VideoRequest[ImageSource]:
    """An OpenAI-shaped create (JSON or form fields; `upload` is an `input_reference` file)."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidArgument(
            f"unknown field {unknown[0]!r}; accepted fields: {', '.join(FIELDS)}",
            param=unknown[0],
        )
    if "prompt" not in fields:
        raise InvalidArgument("prompt is required", param="prompt")
    prompt = _text(fields["prompt"], "prompt")
    model = _text(fields["model"], "model") if "model" in fields else default_model(catalog)
    if model not in catalog:
        raise InvalidArgument(
            f"model {model!r} is not served here; served models: {', '.join(catalog)}",
            param="model",
        )
    row = catalog[model]
    # Unset options are made explicit with the model's defaults, so the task says what it made.
    seconds = _seconds(fields["seconds"], row) if "seconds" in fields else row.default_duration
    aspect_ratio, resolution = (
        _size(fields["size"], row)
        if "size" in fields
        else (row.default_aspect_ratio, row.default_resolution)
    )
    if resolution in row.resolutions_need_8s and seconds != row.long_duration:
        # Said in OpenAI's terms: the domain's own check names the spec's fields.
        size = _text(fields["size"], "size").strip().lower()
        raise InvalidArgument(
            f"size {size} needs seconds={row.long_duration} on {row.name}; got seconds={seconds}",
            param="seconds",
        )
    image = None
    if upload is not None:
        data, mime = upload
        encoded = base64.b64encode(data).decode("ascii")
        image = ImageSource(
            value=f"data:{mime or 'application/octet-stream'};base64,{encoded}",
            field="input_reference",
        )
    elif "input_reference" in fields:
        reference = fields["input_reference"]
        url = reference.get("image_url") if isinstance(reference, Mapping) else None
        if not isinstance(url, str) or not url.strip():
            raise InvalidArgument(
                'input_reference must be a file, or {"image_url": "https://... or data:..."}',
                param="input_reference",
            )
        image = ImageSource(value=url.strip(), field="input_reference")
    return VideoRequest(
        model=model,
        prompt=prompt,
        image=image,
        aspect_ratio=aspect_ratio,
        duration_seconds=seconds,
        resolution=resolution,
    )


def render_openai_video(task: Task, now: float, expires_at: float | None) -> dict[str, Any]:
    """A task as OpenAI's Video object; `expires_at` is when its video is (or was) deleted."""
    request = task.request
    aspect_ratio, resolution = str(request.get("aspect_ratio")), str(request.get("resolution"))
    seconds = request.get("duration_seconds")
    if request.get("video"):
        seconds = video_seconds(request)  # an extension's video is the whole, source and all
    body: dict[str, Any] = {
        "id": task.id,
        "object": "video",
        "model": task.model,
        "status": _STATUS[task.state],
        "progress": task_progress(task, now),
        "created_at": int(task.created_at),
        "completed_at": None if task.completed_at is None else int(task.completed_at),
        # Set for a completed task under a retention period (past once the video is gone).
        "expires_at": None if expires_at is None else int(expires_at),
        "prompt": request.get("prompt"),
        "seconds": "" if seconds is None else str(seconds),
        "size": _SIZE_OF.get((aspect_ratio, resolution), ""),
        "remixed_from_video_id": None,
        "error": None,
    }
    # Beside OpenAI's fields (its SDK keeps fields it does not know): how many samples.
    body.update(sample_fields(task))
    body.update(extension_fields(task))
    if task.state is State.FAILED:
        body["error"] = {"code": "generation_failed", "message": task.fail_reason or "failed"}
    elif task.state is State.CANCELLED:
        body["error"] = {"code": "cancelled", "message": task.fail_reason or "cancelled"}
    return body
