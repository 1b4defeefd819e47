"""What every upstream adapter offers: submit, poll, download, and where Google can, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from veo_gateway.domain.request import Image, VideoRequest


@dataclass(frozen=True)
class Sample:
    """One video of a finished operation: a reference to download, or its bytes inline (Vertex
    without storageUri)."""

    ref: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class OperationStatus:
    """An upstream operation as last seen: still running, failed (with why), or its videos
    (one per sample asked for, less those the safety filters withheld)."""

    done: bool
    samples: tuple[Sample, ...] = ()
    error: str | None = None
    filtered: int = 0  # samples the safety filters withheld

    @property
    def video_ref(self) -> str | None:
        """The first sample's reference."""
        return self.samples[0].ref if self.samples else None

    @property
    def video(self) -> bytes | None:
        """The first sample's bytes, when they came inline."""
        return self.samples[0].data if self.samples else None


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


class Cancellable(Protocol):
    """An adapter whose operations Google can cancel (Gemini Omni's interactions).

    Optional: Veo's predictLongRunning operations have no cancel that stops the work (the
    Gemini API's operations offer none, and Vertex AI's fetchPredictOperation has no
    counterpart), so Veo's adapters leave it out, and a DELETE only stops the gateway
    polling them."""

    async def cancel(self, operation_name: str) -> bool:
        """Ask Google to stop the operation; True when it was asked. Raises UpstreamError."""
        ...


async def cancel_upstream(provider: Provider, operation_name: str) -> bool:
    """Cancel `operation_name` at Google when `provider` can; False when it cannot."""
    cancel = getattr(provider, "cancel", None)
    if cancel is None:
        return False
    return bool(await cancel(operation_name))


def running_or_failed(operation: dict[str, Any]) -> OperationStatus | None:
    """The status of an operation still running or ended by an error; None when it finished
    with a result to read (the same for the Gemini API and Vertex AI)."""
    if not operation.get("done"):
        return OperationStatus(done=False)
    if error := operation.get("error"):
        message = error.get("message") or "the operation failed"
        return OperationStatus(done=True, error=f"{message} (upstream code {error.get('code')})")
    return None


def with_videos(result: dict[str, Any], samples: list[Sample]) -> OperationStatus:
    """A finished result: its videos, with how many the filters withheld; none at all is a
    failure (`without_video`)."""
    if not samples:
        return without_video(result)
    filtered = result.get("raiMediaFilteredCount") or 0
    return OperationStatus(
        done=True, samples=tuple(samples), filtered=filtered if isinstance(filtered, int) else 0
    )


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
