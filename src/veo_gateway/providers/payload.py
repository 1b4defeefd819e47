"""Google's predictLongRunning body for a request: `instances[0]` and `parameters`."""

from __future__ import annotations

import base64
from typing import Any

from veo_gateway.domain.request import Image, SourceVideo, VideoRequest
from veo_gateway.errors import UpstreamError


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


def gemini_video(video: SourceVideo) -> dict[str, str]:
    """`instances[0].video` on the Gemini API: the file URI of a video Veo generated there (what
    google-genai sends for a generated video it was handed back: `{"uri"}`)."""
    if video.uri is None:
        # domain/extension.py refuses this at the create; a route changed since could lead here.
        raise UpstreamError(
            "the Gemini API extends only videos it generated, by their file URI; this one has none",
            code=400,
            status="INVALID_ARGUMENT",
        )
    return {"uri": video.uri}


def vertex_video(video: SourceVideo) -> dict[str, str]:
    """`instances[0].video` on Vertex AI: a Cloud Storage object, or the MP4 inline (google-genai's
    `gcsUri` / `bytesBase64Encoded`, with `mimeType`)."""
    if video.gcs_uri is not None:
        return {"gcsUri": video.gcs_uri, "mimeType": video.mime_type}
    if video.data is None:
        raise UpstreamError(
            "the video to extend has no bytes to send", code=400, status="INVALID_ARGUMENT"
        )
    return {
        "bytesBase64Encoded": base64.b64encode(video.data).decode("ascii"),
        "mimeType": video.mime_type,
    }
