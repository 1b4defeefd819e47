"""Google's predictLongRunning body for a request: `instances[0]` and `parameters`."""

from __future__ import annotations

import base64
from typing import Any

from veo_gateway.domain.request import Image, VideoRequest


def _image(image: Image) -> dict[str, str]:
    return {
        "bytesBase64Encoded": base64.b64encode(image.data).decode("ascii"),
        "mimeType": image.mime_type,
    }


def build_body(request: VideoRequest[Image]) -> dict[str, Any]:
    """The JSON body Google's predictLongRunning takes for this request."""
    instance: dict[str, Any] = {"prompt": request.prompt}
    if request.image is not None:
        instance["image"] = _image(request.image)
    if request.last_frame is not None:
        instance["lastFrame"] = _image(request.last_frame)
    if request.reference_images:
        instance["referenceImages"] = [
            # Google's enum spelling, as the google-genai SDK sends it (the spec writes "asset").
            {"image": _image(ref.image), "referenceType": ref.reference_type.upper()}
            for ref in request.reference_images
        ]
    parameters: dict[str, Any] = {}
    for key, value in (
        ("aspectRatio", request.aspect_ratio),
        ("durationSeconds", request.duration_seconds),
        ("negativePrompt", request.negative_prompt),
        ("personGeneration", request.person_generation),
        ("resolution", request.resolution),
    ):
        if value is not None:
            parameters[key] = value
    # Options the gateway does not know go through untouched (the spec: metadata is Google's).
    for key, value in request.extra_parameters.items():
        parameters.setdefault(key, value)
    body: dict[str, Any] = {"instances": [instance]}
    if parameters:  # as the SDK does: no empty "parameters" object
        body["parameters"] = parameters
    return body
