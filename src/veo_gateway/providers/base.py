"""What every upstream adapter offers: submit, poll, download, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from veo_gateway.domain.request import Image, VideoRequest


@dataclass(frozen=True)
class OperationStatus:
    """An upstream operation as last seen: still running, failed (with why), or a video."""

    done: bool
    video_ref: str | None = None
    # Some upstreams (Vertex without storageUri) return the video inline instead of a ref.
    video: bytes | None = None
    error: str | None = None


class Provider(Protocol):
    """An upstream (the Gemini API, Vertex AI, or the emulator through the Gemini adapter)."""

    name: str

    async def submit(self, model: str, request: VideoRequest[Image]) -> str:
        """Start a generation; returns the operation's name. Raises UpstreamError."""
        ...

    async def poll(self, operation_name: str) -> OperationStatus:
        """The operation's current state. Raises UpstreamError."""
        ...

    def download(self, video_ref: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Stream the finished video's bytes. Raises UpstreamError."""
        ...


def running_or_failed(operation: dict[str, Any]) -> OperationStatus | None:
    """The status of an operation still running or ended by an error; None when it finished
    with a result to read (the same for the Gemini API and Vertex AI)."""
    if not operation.get("done"):
        return OperationStatus(done=False)
    if error := operation.get("error"):
        message = error.get("message") or "the operation failed"
        return OperationStatus(done=True, error=f"{message} (upstream code {error.get('code')})")
    return None


def without_video(result: dict[str, Any]) -> OperationStatus:
    """A finished result holding no video: blocked by the safety filters (with Google's
    reasons), or simply empty. Either way the task fails, and is never charged."""
    filtered = result.get("raiMediaFilteredCount") or 0
    if filtered:
        reasons = "; ".join(result.get("raiMediaFilteredReasons") or []) or "no reason given"
        return OperationStatus(
            done=True,
            error=f"blocked by Google's safety filters ({filtered} video(s) filtered): {reasons}",
        )
    return OperationStatus(done=True, error="the upstream finished without returning a video")
