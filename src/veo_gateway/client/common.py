"""What the sync and async clients share: the Video, the errors, request bodies and replies.

    ClientError                 anything the client cannot do (bad input, network, no such route)
    └── ApiError                the gateway answered with its error envelope (status code, message)

Nothing here does I/O on the network; `Client` and `AsyncClient` do, with httpx.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# The gateway's own default (domain/catalog.py; a test keeps the two equal), named here since
# the client never imports the server side.
DEFAULT_MODEL = "veo-3.1-fast-generate-preview"
BASE_URL_ENV = "VEO_GATEWAY_BASE_URL"
API_KEY_ENV = "VEO_GATEWAY_API_KEY"

TERMINAL_STATUSES = ("completed", "failure")

# An image is a local path, an http(s) URL, a data URI, or the raw bytes of a file.
ImageInput = str | os.PathLike[str] | bytes
ProgressCallback = Callable[["Video"], object]
BytesCallback = Callable[[int, int | None], object]


class ClientError(Exception):
    """The client could not do what was asked: bad input, network failure, unexpected reply."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class ApiError(ClientError):
    """The gateway refused a request; `message` is the gateway's own words."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        status: str | None = None,
        param: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.status = status
        self.param = param
        self.type = type

    def __str__(self) -> str:
        return (
            f"{self.message} (HTTP {self.status_code}{', ' + self.status if self.status else ''})"
        )


@dataclass(frozen=True)
class Video:
    """One video task as the gateway reports it."""

    id: str
    model: str
    status: str  # "" (accepted, not yet submitted), "in_progress", "completed" or "failure"
    progress: int = 0
    created_at: int | None = None
    completed_at: int | None = None
    fail_reason: str | None = None
    video_url: str | None = None
    # Seconds left: the server's figure when it sends one, else estimated from the progress rate.
    eta_seconds: float | None = None
    # Videos the task makes (`metadata.sampleCount`); once completed, those delivered.
    sample_count: int = 1
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the task is completed or failed: its status will not change again."""
        return self.status in TERMINAL_STATUSES

    @property
    def failed(self) -> bool:
        """True when the task ended in failure (see `fail_reason`)."""
        return self.status == "failure"


def default_base_url() -> str:
    """The gateway URL from VEO_GATEWAY_BASE_URL, or the local default."""
    return os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def default_api_key() -> str | None:
    """The client key from VEO_GATEWAY_API_KEY, if set."""
    return os.environ.get(API_KEY_ENV) or None


def headers(api_key: str | None) -> dict[str, str]:
    """Request headers; the key goes as a Bearer token."""
    base = {"User-Agent": "veo-gateway-client"}
    if api_key:
        base["Authorization"] = f"Bearer {api_key}"
    return base


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def video_from_json(body: Any) -> Video:
    """Read one video object of the gateway's reply."""
    if not isinstance(body, Mapping) or not isinstance(body.get("id"), str):
        raise ClientError(f"unexpected reply from the gateway: {str(body)[:200]}")
    eta = body.get("eta_seconds", body.get("estimated_seconds_left"))
    return Video(
        id=body["id"],
        model=str(body.get("model") or ""),
        status=str(body.get("status") or ""),
        progress=_optional_int(body.get("progress")) or 0,
        created_at=_optional_int(body.get("created_at")),
        completed_at=_optional_int(body.get("completed_at")),
        fail_reason=body.get("fail_reason") if isinstance(body.get("fail_reason"), str) else None,
        video_url=body.get("video_url") if isinstance(body.get("video_url"), str) else None,
        eta_seconds=float(eta) if isinstance(eta, int | float) else None,
        sample_count=_optional_int(body.get("sample_count")) or 1,
        raw=dict(body),
    )


def videos_from_json(body: Any) -> list[Video]:
    """Read a list reply: a bare array, or an object holding it under `data`."""
    items = body.get("data") if isinstance(body, Mapping) else body
    if not isinstance(items, list):
        raise ClientError(f"unexpected reply from the gateway: {str(body)[:200]}")
    return [video_from_json(item) for item in items]


LIST_PAGE = 100  # the most `GET /v1/videos` answers at once


def list_params(after: str | None, wanted: int | None) -> dict[str, str | int]:
    """Query parameters of the next `GET /v1/videos` page (`wanted`: how many are still
    wanted, None for all)."""
    params: dict[str, str | int] = {
        "limit": LIST_PAGE if wanted is None else min(LIST_PAGE, wanted)
    }
    if after is not None:
        params["after"] = after
    return params


def list_page(body: Any) -> tuple[list[Video], str | None]:
    """A list reply's videos, and the cursor of the next page (None after the last)."""
    videos = videos_from_json(body)
    if isinstance(body, Mapping) and body.get("has_more") is True and videos:
        last = body.get("last_id")
        return videos, last if isinstance(last, str) else videos[-1].id
    return videos, None


def api_error(response: httpx.Response) -> ApiError:
    """The gateway's error envelope as an ApiError (any other body is quoted as is)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return ApiError(
            error["message"],
            status_code=response.status_code,
            status=error.get("status") if isinstance(error.get("status"), str) else None,
            param=error.get("param") if isinstance(error.get("param"), str) else None,
            type=error.get("type") if isinstance(error.get("type"), str) else None,
        )
    text = response.text.strip()[:300] or response.reason_phrase
    return ApiError(text, status_code=response.status_code)


def no_listing_error(base_url: str, status_code: int) -> ClientError:
    """The error for a gateway without `GET /v1/videos`."""
    return ClientError(
        f"the server at {base_url} does not list tasks (GET /v1/videos answered "
        f"{status_code}); look a task up by its id instead",
        status_code=status_code,
    )


def network_error(base_url: str, exc: httpx.HTTPError) -> ClientError:
    """A transport failure (refused, timed out, cut off) said in one line."""
    return ClientError(f"cannot reach the gateway at {base_url}: {exc or type(exc).__name__}")


def sniff_mime(data: bytes) -> str:
    """The image type from its first bytes (the gateway checks it again)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


def image_value(image: ImageInput) -> str:
    """An image as the gateway takes it: URLs and data URIs as they are, files as data URIs."""
    if isinstance(image, bytes):
        data = image
    else:
        text = os.fspath(image)
        if text.startswith(("http://", "https://", "data:")):
            return text
        path = Path(text).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ClientError(
                f"cannot read image {text!r}: {exc.strerror or exc} "
                "(give a file path, an http(s) URL or a data: URI)"
            ) from exc
    return f"data:{sniff_mime(data)};base64,{base64.b64encode(data).decode()}"


def create_body(
    prompt: str,
    *,
    model: str,
    image: ImageInput | None,
    last_frame: ImageInput | None,
    references: Sequence[ImageInput],
    aspect_ratio: str | None,
    duration: int | None,
    resolution: str | None,
    negative_prompt: str | None,
    person_generation: str | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The spec dialect's `POST /v1/videos` body."""
    if last_frame is not None and image is None:
        raise ClientError("a last frame needs a first frame: give image= as well")
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    images = [image_value(img) for img in (image, last_frame) if img is not None]
    if images:
        body["images"] = images
    meta: dict[str, Any] = dict(metadata or {})
    options = {
        "aspectRatio": aspect_ratio,
        "durationSeconds": duration,
        "resolution": resolution,
        "negativePrompt": negative_prompt,
        "personGeneration": person_generation,
    }
    meta.update({key: value for key, value in options.items() if value is not None})
    if references:
        meta["referenceImages"] = [
            {"image": {"bytesBase64Encoded": image_value(ref)}, "referenceType": "asset"}
            for ref in references
        ]
    if meta:
        body["metadata"] = meta
    return body


class EtaTracker:
    """Estimates the seconds left of a task from how fast its progress has been moving."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: tuple[float, int] | None = None

    def update(self, video: Video) -> Video:
        """The video with `eta_seconds` filled in, when the server did not give it."""
        if video.eta_seconds is not None or video.done:
            return video
        now = self._clock()
        if video.progress <= 0:
            return video
        if self._first is None or video.progress < self._first[1]:
            self._first = (now, video.progress)
            return video
        start, progress = self._first
        moved, elapsed = video.progress - progress, now - start
        if moved <= 0 or elapsed <= 0:
            return video
        return dataclasses.replace(video, eta_seconds=(100 - video.progress) * elapsed / moved)
