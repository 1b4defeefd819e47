"""Google's predictLongRunning protocol (Gemini API, v1beta) as the emulator reads and writes it.

Reading: the JSON body into one `Submission`, refusing what is malformed (what a well-formed body
may ask of a model is `emulator.google_rules`' to judge). Writing: the error envelope and the
operation bodies, in Google's exact shapes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from collections.abc import Mapping
from typing import Any

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from veo_gateway.emulator.submission import InputImage, Reference, Submission
from veo_gateway.errors import GatewayError, InvalidArgument

MISSING_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY = "API key not valid. Please pass a valid API key."
RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
BLOCKED_REASON = (
    "Veo could not generate videos because the input image contains content that has been "
    "flagged by our safety filters (emulated). You will not be charged for blocked videos. "
    "Please try a different prompt or image."
)
FAILED_MESSAGE = "Video generation failed due to an internal error (emulated)."
FAILED_CODE = 13  # google.rpc.Code INTERNAL

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
_IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_INSTANCE_KEYS = frozenset({"prompt", "image", "lastFrame", "referenceImages", "video"})
# Google's proto JSON parser takes both base64 alphabets; the google-genai SDK sends URL-safe.
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def not_found_model(model: str) -> str:
    """Google's message for a model it does not serve."""
    return (
        f"models/{model} is not found for API version v1beta, or is not supported for "
        "predictLongRunning. Call ListModels to see the list of available models and their "
        "supported methods."
    )


def envelope(error: GatewayError) -> dict[str, Any]:
    """Google's error envelope: exactly code, message and status."""
    return {"error": {"code": error.code, "message": error.message, "status": error.google_status}}


def parse_json(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or Google's 400 for anything else."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = getattr(exc, "msg", "Invalid UTF-8")
        raise InvalidArgument(f"Invalid JSON payload received. {detail}.") from exc
    if not isinstance(payload, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected an object.")
    return payload


def redact(payload: Any) -> Any:
    """`payload` with every inline image's base64 replaced by "<N bytes sha256:H>", for the
    request log. H is a digest of the base64 text as sent, so two logged bodies are equal
    exactly when the bodies sent were (alphabet and padding included)."""
    if isinstance(payload, list):
        return [redact(item) for item in payload]
    if not isinstance(payload, dict):
        return payload
    out: dict[str, Any] = {}
    for key, value in payload.items():
        # Veo's inline images, and the Interactions API's media content blocks.
        inline = key == "bytesBase64Encoded" or (
            key == "data" and payload.get("type") in ("image", "video", "audio")
        )
        if inline and isinstance(value, str):
            digest = hashlib.sha256(value.encode()).hexdigest()[:16]
            out[key] = f"<{len(value.rstrip('=')) * 3 // 4} bytes sha256:{digest}>"
        else:
            out[key] = redact(value)
    return out


def parse_predict(model: str, payload: Mapping[str, Any]) -> Submission:
    """The submission in a predictLongRunning body."""
    for key in payload:
        if key not in ("instances", "parameters"):
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidArgument("instances must be a list with one instance.")
    if len(instances) > 1:
        raise InvalidArgument("Only one instance per request is supported.")
    instance = instances[0]
    if not isinstance(instance, dict):
        raise InvalidArgument("instances[0] must be an object.")
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidArgument("parameters must be an object.")
    for key in instance:
        # Refuse rather than ignore: a dropped input would silently change the video.
        if key not in _INSTANCE_KEYS:
            raise InvalidArgument(f"instances[0].{key} isn't supported by this emulator.")
    prompt = instance.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidArgument("instances[0].prompt is required and must be a string.")
    image, last = instance.get("image"), instance.get("lastFrame")
    return Submission(
        model=model,
        prompt=prompt,
        image=None if image is None else _image(image, "instances[0].image"),
        last_frame=None if last is None else _image(last, "instances[0].lastFrame"),
        references=_references(instance.get("referenceImages")),
        parameters=parameters,
        video_value=instance.get("video"),
    )


def _references(value: Any) -> tuple[Reference, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidArgument("instances[0].referenceImages must be a list.")
    refs = []
    for index, item in enumerate(value):
        field = f"instances[0].referenceImages[{index}]"
        if not isinstance(item, dict) or "image" not in item:
            raise InvalidArgument(f"{field} must be an object with an image.")
        kind = item.get("referenceType", "asset")
        if not isinstance(kind, str):
            raise InvalidArgument(f"{field}.referenceType must be a string.")
        # The SDK writes the enum name (ASSET), other clients the value (asset).
        refs.append(Reference(image=_image(item["image"], f"{field}.image"), kind=kind.lower()))
    return tuple(refs)


def decode_base64(text: str, field: str) -> bytes:
    """Strict base64 (standard or URL-safe alphabet, padding optional) or Google's 400."""
    padded = text.translate(_URLSAFE_TO_STANDARD) + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(
            f"Invalid value at '{field}.bytesBase64Encoded' (TYPE_BYTES), Base64 decoding failed."
        ) from exc


def _image(value: Any, field: str) -> InputImage:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be an object with bytesBase64Encoded and mimeType.")
    if "gcsUri" in value:
        raise InvalidArgument(
            f"{field}.gcsUri isn't supported by the Gemini API. "
            "Send the image inline as bytesBase64Encoded."
        )
    text = value.get("bytesBase64Encoded")
    if not isinstance(text, str):
        raise InvalidArgument(f"{field}.bytesBase64Encoded is required.")
    mime = value.get("mimeType")
    if mime is not None and (
        not isinstance(mime, str) or mime.lower() not in _IMAGE_FORMATS.values()
    ):
        raise InvalidArgument(
            f"{field}.mimeType {mime!r} isn't supported. Use image/png, image/jpeg or image/webp."
        )
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise InvalidArgument(f"{field} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB.")
    data = decode_base64(text, field)
    return InputImage(data=data, mime_type=_sniff(data, field), field=field)


def sniff_image(data: bytes, field: str) -> str:
    """The image's real type from its bytes (PNG, JPEG or WebP), or Google's 400."""
    return _sniff(data, field)


def _sniff(data: bytes, field: str) -> str:
    """The image's real type from its bytes; refuses what is not a sane PNG, JPEG or WebP."""
    unusable = InvalidArgument(
        f"Unable to process input image ({field}). Please use a PNG, JPEG or WebP image."
    )
    try:
        # Opening reads only the header: enough to know the format and the pixel count.
        with PILImage.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError, PILImage.DecompressionBombError) as exc:
        raise unusable from exc
    if kind not in _IMAGE_FORMATS:
        raise unusable
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidArgument(f"{field} has too many pixels ({width}x{height}).")
    return _IMAGE_FORMATS[kind]


def running(name: str) -> dict[str, Any]:
    """An operation still running: Google sends just its name."""
    return {"name": name}


def finished_with_videos(name: str, uris: list[str], filtered: int = 0) -> dict[str, Any]:
    """A finished operation with one sample per URI (and `filtered` withheld)."""
    result: dict[str, Any] = {"generatedSamples": [{"video": {"uri": uri}} for uri in uris]}
    if filtered:
        result.update(raiMediaFilteredCount=filtered, raiMediaFilteredReasons=[BLOCKED_REASON])
    return {
        "name": name,
        "done": True,
        "response": {"@type": RESPONSE_TYPE, "generateVideoResponse": result},
    }


def finished_blocked(name: str) -> dict[str, Any]:
    """A finished operation whose video the safety filters withheld: no samples."""
    return {
        "name": name,
        "done": True,
        "response": {
            "@type": RESPONSE_TYPE,
            "generateVideoResponse": {
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": [BLOCKED_REASON],
            },
        },
    }


def finished_with_error(name: str, message: str = FAILED_MESSAGE) -> dict[str, Any]:
    """A failed operation: done, with an error and no response."""
    return {"name": name, "done": True, "error": {"code": FAILED_CODE, "message": message}}
