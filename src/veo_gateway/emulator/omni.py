"""Gemini Omni's Interactions body as the emulator reads it, and Google's rules for it.

Written from google-genai 3.x's `_gaos` types (`CreateModelInteraction`, `VideoResponseFormat`,
`VideoConfig`, the content blocks) and kept apart from the gateway's `domain/`, as
`emulator.google_rules` is for Veo. What the SDK's types leave open is decided here and written
down in docs/omni.md: the duration is a protobuf Duration string ("8s"), a video needs
`background: true`, `delivery: "uri"` on Vertex AI needs `gcs_uri` (the SDK's own docstring),
and the models make 4, 6 or 8 seconds with a soundtrack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from veo_gateway.emulator import protocol
from veo_gateway.emulator.google_rules import Output, Protocol
from veo_gateway.emulator.submission import InputImage, Reference, Submission
from veo_gateway.errors import InvalidArgument

# gemini-omni-flash-preview was shut down on 2026-09-30: answered 404 like any unknown id.
MODELS = ("gemini-omni-1.1-flash", "gemini-omni-1.2-flash")
ASPECT_RATIOS = ("16:9", "9:16")
RESOLUTIONS = ("360p", "720p", "1080p", "4k")
DURATIONS = (4, 6, 8)
DEFAULT_DURATION = 8
DEFAULT_ASPECT_RATIO = "16:9"
DEFAULT_RESOLUTION = "720p"
MAX_REFERENCES = 3
TASKS_SERVED = ("text_to_video", "image_to_video", "reference_to_video")
TASKS_KNOWN = (*TASKS_SERVED, "edit", "extend", "upscale")
DELIVERIES = ("inline", "uri")
_FIELDS = frozenset(
    {
        "model",
        "input",
        "background",
        "store",
        "response_modalities",
        "response_format",
        "generation_config",
    }
)
_FORMAT_FIELDS = frozenset(
    {"type", "aspect_ratio", "resolution", "duration", "delivery", "gcs_uri"}
)
_DURATION = re.compile(r"([0-9]+)(?:\.0+)?s")
_GCS_URI = re.compile(r"gs://[a-z0-9][a-z0-9._-]{1,220}(?:/.*)?")


@dataclass(frozen=True)
class OmniRequest:
    """One judged create: what to render, how to deliver it."""

    submission: Submission
    output: Output
    delivery: str
    gcs_uri: str | None
    response_format: dict[str, Any]


def parse_create(payload: Mapping[str, Any], dialect: Protocol) -> OmniRequest:
    """The create body, judged by Omni's rules on `dialect`; Google's 400 for the first rule
    it breaks. The model must be one of `MODELS` (the caller answers 404 otherwise)."""
    for key in payload:
        if key not in _FIELDS:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    model = str(payload["model"])
    if payload.get("background") is not True:
        raise InvalidArgument(
            "Video generation runs in the background: set background to true and poll the "
            "interaction."
        )
    modalities = payload.get("response_modalities")
    if modalities is not None and modalities != ["video"]:
        raise InvalidArgument(f"{model} only generates video: response_modalities must be [video].")
    prompt, images = _content(payload.get("input"))
    task = _task(payload.get("generation_config"), images)
    fmt = payload.get("response_format") or {"type": "video"}
    output, delivery, gcs_uri = _format(fmt, dialect)
    if not prompt.strip() and task != "image_to_video":
        raise InvalidArgument("A text prompt is required for this task.")
    image = None
    references: tuple[Reference, ...] = ()
    if task == "image_to_video":
        if len(images) != 1:
            raise InvalidArgument(
                f"image_to_video takes exactly one input image; got {len(images)}."
            )
        image = images[0]
    elif task == "reference_to_video":
        if not 1 <= len(images) <= MAX_REFERENCES:
            raise InvalidArgument(
                f"reference_to_video takes 1 to {MAX_REFERENCES} reference images; "
                f"got {len(images)}."
            )
        references = tuple(Reference(image=img) for img in images)
    submission = Submission(model=model, prompt=prompt, image=image, references=references)
    return OmniRequest(submission, output, delivery, gcs_uri, dict(fmt))


def _content(value: Any) -> tuple[str, list[InputImage]]:
    """The prompt (text blocks joined) and the images of `input`: a string, a list of content
    blocks, or a list of steps of which the last user_input counts (as the SDK sends it)."""
    if isinstance(value, str):
        return value, []
    if not isinstance(value, list) or not value:
        raise InvalidArgument("input is required: a prompt, or content blocks.")
    if all(isinstance(item, dict) and item.get("type") == "user_input" for item in value):
        value = value[-1].get("content")
        if not isinstance(value, list):
            raise InvalidArgument("input[].content must be a list of content blocks.")
    texts, images = [], []
    for index, block in enumerate(value):
        where = f"input.content[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise InvalidArgument(f"{where}.text must be a string.")
            texts.append(text)
        elif kind == "image":
            images.append(_image(block, where))
        elif kind in ("video", "audio", "document"):
            # Omni's edit and extend take a video; the emulator serves generation only.
            raise InvalidArgument(f"{where}: {kind} input isn't supported by this emulator.")
        else:
            raise InvalidArgument(f"{where}.type must be text or image; got {kind!r}.")
    return "\n".join(texts), images


def _image(block: Mapping[str, Any], where: str) -> InputImage:
    if "uri" in block:
        raise InvalidArgument(f"{where}.uri isn't supported by this emulator: send data inline.")
    data = block.get("data")
    if not isinstance(data, str):
        raise InvalidArgument(f"{where}.data is required (base64).")
    if len(data) > protocol.MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise InvalidArgument(f"{where} is larger than 20 MB.")
    raw = protocol.decode_base64(data, where)
    mime = protocol.sniff_image(raw, where)
    declared = block.get("mime_type")
    if declared is not None and declared != mime:
        raise InvalidArgument(f"{where}.mime_type {declared!r} does not match the image ({mime}).")
    return InputImage(data=raw, mime_type=mime, field=where)


def _task(config: Any, images: list[InputImage]) -> str:
    """The video task asked for, or the one the model picks from the inputs (none: text, one
    image: image_to_video, more: reference_to_video)."""
    task = None
    if config is not None:
        if not isinstance(config, dict):
            raise InvalidArgument("generation_config must be an object.")
        video = config.get("video_config") or {}
        if not isinstance(video, dict):
            raise InvalidArgument("generation_config.video_config must be an object.")
        task = video.get("task")
    if task is None:
        return (
            "text_to_video"
            if not images
            else "image_to_video"
            if len(images) == 1
            else ("reference_to_video")
        )
    if task not in TASKS_KNOWN:
        raise InvalidArgument(f"Invalid value at 'generation_config.video_config.task': {task!r}.")
    if task not in TASKS_SERVED:
        raise InvalidArgument(f"The {task} task isn't supported by this emulator.")
    if task == "text_to_video" and images:
        raise InvalidArgument("text_to_video takes no input images.")
    return str(task)


def _format(fmt: Any, dialect: Protocol) -> tuple[Output, str, str | None]:
    if not isinstance(fmt, dict) or fmt.get("type") != "video":
        raise InvalidArgument("response_format must be a video response format (type: video).")
    for key in fmt:
        if key not in _FORMAT_FIELDS:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'response_format': Cannot find field."
            )
    aspect = _choice(fmt, "aspect_ratio", ASPECT_RATIOS) or DEFAULT_ASPECT_RATIO
    resolution = _choice(fmt, "resolution", RESOLUTIONS) or DEFAULT_RESOLUTION
    seconds = DEFAULT_DURATION
    if (duration := fmt.get("duration")) is not None:
        match = _DURATION.fullmatch(duration) if isinstance(duration, str) else None
        if match is None:
            raise InvalidArgument(
                f"Invalid value at 'response_format.duration': {duration!r}; a duration in "
                'seconds, such as "8s".'
            )
        seconds = int(match.group(1))
        if seconds not in DURATIONS:
            raise InvalidArgument(
                f"Unsupported duration {duration}; supported: "
                f"{', '.join(f'{d}s' for d in DURATIONS)}."
            )
    delivery = _choice(fmt, "delivery", DELIVERIES) or "inline"
    gcs_uri = fmt.get("gcs_uri")
    if gcs_uri is not None:
        if dialect == "gemini":
            raise InvalidArgument("response_format.gcs_uri isn't supported by the Gemini API.")
        if not isinstance(gcs_uri, str) or not _GCS_URI.fullmatch(gcs_uri):
            raise InvalidArgument("gcs_uri must be a Cloud Storage URI: gs://bucket/prefix")
    if dialect == "vertex" and delivery == "uri" and gcs_uri is None:
        raise InvalidArgument("response_format.gcs_uri is required on Vertex AI for delivery uri.")
    return Output(seconds, aspect, resolution, audio=True), delivery, gcs_uri


def _choice(fmt: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    value = fmt.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise InvalidArgument(
            f"Invalid value at 'response_format.{key}': {value!r}; supported values: "
            f"{', '.join(allowed)}."
        )
    return str(value)
