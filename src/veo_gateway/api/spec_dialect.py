"""The spec dialect: `POST /v1/videos` JSON in the shape of the reference document, and its replies.

Parsing is strict and by hand, so every wrong type names its field in the error, and no field the
client sent is silently dropped: unknown top-level fields are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from veo_gateway.api.bodies import check_text
from veo_gateway.domain.options import options_of
from veo_gateway.domain.progress import estimate_progress
from veo_gateway.domain.request import ImageSource, ReferenceImage, SourceVideo, VideoRequest
from veo_gateway.errors import InvalidArgument
from veo_gateway.store.tasks import FINAL_STATES, State, Task

# `callback_url` is read by the create route itself (webhooks/callbacks.py), not by this parser.
TOP_LEVEL_FIELDS = ("model", "prompt", "images", "metadata", "callback_url", "video")

# metadata keys the gateway reads itself; every other key goes to upstream `parameters` as is.
_KNOWN_METADATA = (
    "aspectRatio",
    "durationSeconds",
    "negativePrompt",
    "personGeneration",
    "resolution",
    "referenceImages",
)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


def _string(value: Any, param: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{param} must be a string, got {_type_name(value)}", param=param)
    return check_text(value, param)


def _integer(value: Any, param: str) -> int | None:
    if value is None:
        return None
    # bool is an int in Python, but never a duration.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{param} must be a number, got {_type_name(value)}", param=param)
    if isinstance(value, float) and not value.is_integer():
        raise InvalidArgument(f"{param} must be a whole number of seconds", param=param)
    return int(value)


def _image_source(value: Any, param: str, mime_type: str | None = None) -> ImageSource:
    text = _string(value, param, required=True)
    assert text is not None
    if not text.strip():
        raise InvalidArgument(f"{param} must not be empty", param=param)
    return ImageSource(value=text.strip(), field=param, mime_type=mime_type)


def _reference(value: Any, index: int) -> ReferenceImage[ImageSource]:
    param = f"metadata.referenceImages[{index}]"
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{param} must be an object", param=param)
    image = value.get("image")
    if not isinstance(image, Mapping):
        raise InvalidArgument(f"{param}.image must be an object", param=f"{param}.image")
    mime = _string(image.get("mimeType"), f"{param}.image.mimeType")
    if "bytesBase64Encoded" not in image:
        raise InvalidArgument(
            f"{param}.image.bytesBase64Encoded is required",
            param=f"{param}.image.bytesBase64Encoded",
        )
    source = _image_source(image["bytesBase64Encoded"], f"{param}.image.bytesBase64Encoded", mime)
    ref_type = _string(value.get("referenceType", "asset"), f"{param}.referenceType")
    return ReferenceImage(image=source, reference_type=ref_type or "asset")


def parse_spec_request(body: Any) -> VideoRequest[ImageSource]:
    """Parse the spec dialect's JSON body into a request, or raise InvalidArgument."""
    if not isinstance(body, Mapping):
        raise InvalidArgument(
            f"request body must be a JSON object, got {_type_name(body)}", param="body"
        )
    unknown = sorted(set(body) - set(TOP_LEVEL_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"unknown field {unknown[0]!r}; accepted fields: {', '.join(TOP_LEVEL_FIELDS)} "
            "(upstream options go in metadata)",
            param=unknown[0],
        )
    if "model" not in body:
        raise InvalidArgument("model is required", param="model")
    model = _string(body["model"], "model", required=True)
    if "prompt" not in body:
        raise InvalidArgument("prompt is required", param="prompt")
    prompt = _string(body["prompt"], "prompt", required=True)
    assert model is not None and prompt is not None

    images = body.get("images")
    images = [] if images is None else images
    if not isinstance(images, list):
        raise InvalidArgument(f"images must be an array, got {_type_name(images)}", param="images")
    if len(images) > 2:
        raise InvalidArgument(
            f"at most 2 images are accepted (first and last frame), got {len(images)}",
            param="images",
        )
    frames = [_image_source(img, f"images[{i}]") for i, img in enumerate(images)]

    metadata = body.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(
            f"metadata must be an object, got {_type_name(metadata)}", param="metadata"
        )
    refs_value = metadata.get("referenceImages")
    refs_value = [] if refs_value is None else refs_value
    if not isinstance(refs_value, list):
        raise InvalidArgument(
            "metadata.referenceImages must be an array", param="metadata.referenceImages"
        )

    video = None
    if body.get("video") is not None:
        # An extension: the id of a completed task of the caller's (api/sources.py).
        task_id = _string(body["video"], "video", required=True)
        if not task_id or not task_id.strip():
            raise InvalidArgument("video must be the id of a completed video task", param="video")
        if frames or refs_value:
            raise InvalidArgument(
                "video and images exclude each other: an extension continues its video, "
                "it takes no images",
                param="images" if frames else "metadata.referenceImages",
            )
        video = SourceVideo(task_id=task_id.strip())

    return VideoRequest(
        model=model,
        prompt=prompt,
        video=video,
        image=frames[0] if frames else None,
        last_frame=frames[1] if len(frames) > 1 else None,
        reference_images=tuple(_reference(ref, i) for i, ref in enumerate(refs_value)),
        aspect_ratio=_string(metadata.get("aspectRatio"), "metadata.aspectRatio"),
        duration_seconds=_integer(metadata.get("durationSeconds"), "metadata.durationSeconds"),
        negative_prompt=_string(metadata.get("negativePrompt"), "metadata.negativePrompt"),
        person_generation=_string(metadata.get("personGeneration"), "metadata.personGeneration"),
        resolution=_string(metadata.get("resolution"), "metadata.resolution"),
        extra_parameters={k: v for k, v in metadata.items() if k not in _KNOWN_METADATA},
    )


_SPEC_STATUS = {
    State.QUEUED: "",
    State.SUBMITTING: "",
    State.IN_PROGRESS: "in_progress",
    State.COMPLETED: "completed",
    State.FAILED: "failure",
    State.CANCELLED: "failure",
}


def task_progress(task: Task, now: float) -> int:
    """0 before the upstream has the job, an estimate while it runs, 100 when completed."""
    if task.state is State.COMPLETED:
        return 100
    if task.submitted_at is None:
        return 0
    end = task.completed_at if task.state in FINAL_STATES and task.completed_at else now
    return estimate_progress(end - task.submitted_at, task.expected_seconds or 60.0)


def render_spec_video(task: Task, now: float, expires_at: float | None) -> dict[str, Any]:
    """A task as the spec's video object; `expires_at` is when its video is (or was) deleted.

    The spec's fields are kept as they are, an expired task included (still `completed`);
    `expires_at`, OpenAI's name, is added for a completed task whose video will be deleted.
    """
    body: dict[str, Any] = {
        "id": task.id,
        "task_id": task.id,
        "object": "video",
        "model": task.model,
        "status": _SPEC_STATUS[task.state],
        "progress": task_progress(task, now),
        "created_at": int(task.created_at),
    }
    if task.completed_at is not None:
        body["completed_at"] = int(task.completed_at)
    if expires_at is not None:
        body["expires_at"] = int(expires_at)
    if task.state in (State.FAILED, State.CANCELLED):
        body["fail_reason"] = task.fail_reason or "the task failed"
    body.update(sample_fields(task))
    body.update(extension_fields(task))
    return body


def extension_fields(task: Task) -> dict[str, Any]:
    """For an extension: the task whose video it continues (null for an uploaded MP4 that is
    not a video of this gateway's)."""
    video = task.request.get("video")
    return {} if not video else {"extended_from_video_id": video.get("task_id")}


def sample_fields(task: Task) -> dict[str, int]:
    """How many videos the task makes (`sample_count`: asked for until it completes, then
    delivered, each one at `content?index=N`), and how many the safety filters withheld."""
    fields = {
        "sample_count": len(task.samples)
        if task.state is State.COMPLETED
        else options_of(task.request).sample_count
    }
    if task.samples_filtered:
        fields["samples_filtered"] = task.samples_filtered
    return fields
