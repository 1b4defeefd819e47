"""The Gemini Omni adapter: the Interactions API, on the Gemini API and on Vertex AI.

Create is `POST {root}/{parent}` with `background: true`, the prompt and images as content
blocks of one `user_input` step, `response_modalities: ["video"]`, a video `response_format` and
the task in `generation_config.video_config` (the body google-genai 3.x sends for the same
request: tests/emulator/omni_suite.py compares them). The operation name kept for a task is
the interaction's resource name, `{parent}/{id}`; polls `GET {root}/{name}`, cancels `POST
{root}/{name}/cancel`. The video is the last video block of the model_output steps after the
last user input (the SDK's `output_video`): base64 `data`, or a `uri` downloaded as the same
credential's Veo samples are (a files URI by its id from our base URL; a `gs://` object
through the JSON API), streamed into storage.

Delivery: by URI on the Gemini API (the poll stays small, the bytes stream), inline on Vertex
AI unless the upstream has a `storage_uri`, which becomes `gcs_uri` (Vertex needs one for URI
delivery).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.errors import UpstreamError
from veo_gateway.providers.base import OperationStatus, Provider, Sample
from veo_gateway.providers.http import UpstreamHttp

TASKS = {"text": "text_to_video", "image": "image_to_video", "reference": "reference_to_video"}
RUNNING = frozenset({"in_progress", "queued", "idle"})
GEMINI_VERSION = "v1beta"  # the version of Google's Interactions API examples (the SDK: v1)
VERTEX_VERSION = "v1beta1"  # google-genai 3.x's Vertex AI version


def _image(image: Image) -> dict[str, str]:
    return {
        "type": "image",
        "data": base64.b64encode(image.data).decode("ascii"),
        "mime_type": image.mime_type,
    }


def interaction_body(
    model: str, request: VideoRequest[Image], *, delivery: str, gcs_uri: str | None = None
) -> dict[str, Any]:
    """The create body of an Interactions API video generation for this request."""
    content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
    content.extend(_image(image) for image in request.images())
    response_format: dict[str, Any] = {"type": "video"}
    for key, value in (
        ("aspect_ratio", request.aspect_ratio),
        ("resolution", request.resolution),
        # A protobuf Duration, as Google's JSON writes one.
        ("duration", None if request.duration_seconds is None else f"{request.duration_seconds}s"),
        ("delivery", delivery),
        ("gcs_uri", gcs_uri),
    ):
        if value is not None:
            response_format[key] = value
    return {
        "model": model,
        "input": [{"type": "user_input", "content": content}],
        "response_modalities": ["video"],
        "response_format": response_format,
        "generation_config": {"video_config": {"task": TASKS[request.mode]}},
        "background": True,
    }


def output_video(interaction: dict[str, Any]) -> dict[str, Any] | None:
    """The last video block of the model_output steps after the last user_input step."""
    for step in reversed(interaction.get("steps") or []):
        if not isinstance(step, dict) or step.get("type") == "user_input":
            break
        if step.get("type") != "model_output":
            continue
        for block in reversed(step.get("content") or []):
            if isinstance(block, dict) and block.get("type") == "video":
                return block
    return None


def _reasons(interaction: dict[str, Any]) -> list[str]:
    """Google's reasons: the interaction's errors, then its steps' errors."""
    errors = [e for e in interaction.get("errors") or [] if isinstance(e, dict)]
    errors += [
        s["error"]
        for s in interaction.get("steps") or []
        if isinstance(s, dict) and isinstance(s.get("error"), dict)
    ]
    seen: list[str] = []
    for error in errors:
        text = str(error.get("message") or error.get("code") or "").strip()
        if text and text not in seen:
            seen.append(text)
    return seen


def _safety(interaction: dict[str, Any]) -> bool:
    return any(
        "safety" in str(error.get("code", "")).lower()
        for error in interaction.get("errors") or []
        if isinstance(error, dict)
    )


def parse_interaction(interaction: dict[str, Any]) -> OperationStatus:
    """Read an interaction: running, ended without a video (with Google's reason), or done
    with its video inline or by URI."""
    status = str(interaction.get("status") or "in_progress")
    if status in RUNNING:
        return OperationStatus(done=False)
    reasons = "; ".join(_reasons(interaction)) or "no reason given"
    if status == "completed":
        block = output_video(interaction)
        if block is None:
            if _reasons(interaction):
                return OperationStatus(done=True, error=f"Gemini Omni returned no video: {reasons}")
            return OperationStatus(done=True, error="the upstream finished without a video")
        if isinstance(uri := block.get("uri"), str) and uri:
            return OperationStatus(done=True, samples=(Sample(ref=uri),))
        try:
            data = base64.b64decode(str(block.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            return OperationStatus(done=True, error="the upstream sent undecodable video bytes")
        if not data:
            return OperationStatus(done=True, error="the upstream sent an empty video")
        return OperationStatus(done=True, samples=(Sample(data=data),))
    if _safety(interaction):
        return OperationStatus(done=True, error=f"blocked by Google's safety filters: {reasons}")
    if status == "cancelled":
        return OperationStatus(done=True, error=f"cancelled at Google: {reasons}")
    # failed, incomplete, budget_exceeded; requires_action and requires_continuation ask for a
    # turn a video generation never takes.
    return OperationStatus(done=True, error=f"the interaction ended {status}: {reasons}")


class OmniProvider:
    """Talks to one credential's Interactions API: `root` is `{base}/{version}`, `parent`
    `interactions` (Gemini API) or `projects/{p}/locations/{l}/interactions` (Vertex AI).
    Downloads go through `files`, the same credential's Veo adapter."""

    def __init__(
        self,
        *,
        root: str,
        parent: str,
        headers: Callable[[], Awaitable[dict[str, str]]],
        client: UpstreamHttp,
        files: Provider,
        delivery: str,
        gcs_uri: str | None = None,
        name: str = "omni",
    ) -> None:
        self.name = name
        self._root = root.rstrip("/")
        self._parent = parent
        self._headers = headers
        self._client = client
        self._files = files
        self._delivery = delivery
        self._gcs_uri = gcs_uri

    def owns(self, operation_name: str) -> bool:
        """Whether `operation_name` names one of this adapter's interactions."""
        head, _, interaction = operation_name.rpartition("/")
        return head == self._parent and bool(interaction)

    def body(self, model: str, request: VideoRequest[Image]) -> dict[str, Any]:
        """What `submit` sends for this request."""
        return interaction_body(model, request, delivery=self._delivery, gcs_uri=self._gcs_uri)

    async def _call(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        return await self._client.call_json(method, url, await self._headers(), json_body=body)

    async def submit(self, model: str, request: VideoRequest[Image]) -> str:
        """POST the interaction; returns its resource name."""
        reply = await self._call("POST", f"{self._root}/{self._parent}", self.body(model, request))
        interaction = reply.get("id")
        if not isinstance(interaction, str) or not interaction or "/" in interaction:
            raise UpstreamError("the upstream accepted the interaction but returned no id")
        return f"{self._parent}/{interaction}"

    def _url(self, operation_name: str) -> str:
        if not self.owns(operation_name):
            raise UpstreamError(
                f"not an interaction of this upstream: {operation_name!r}", retryable=False
            )
        return f"{self._root}/{operation_name}"

    async def poll(self, operation_name: str) -> OperationStatus:
        """GET the interaction."""
        return parse_interaction(await self._call("GET", self._url(operation_name)))

    async def cancel(self, operation_name: str) -> bool:
        """POST .../cancel, so Google stops the work; True once it answered."""
        await self._call("POST", f"{self._url(operation_name)}/cancel")
        return True

    def download(self, video_ref: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Stream a video delivered by URI, as the credential's Veo samples are fetched."""
        return self._files.download(video_ref)
