"""What every upstream adapter offers: submit, poll, download, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

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
