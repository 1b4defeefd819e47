"""The one normalized video request every dialect is parsed into.

A request is generic over how its images are held: `ImageSource` (as the client sent them, not
yet fetched or decoded) before resolution, `Image` (checked bytes and sniffed type) after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar


@dataclass(frozen=True)
class ImageSource:
    """An image as the client gave it: an http(s) URL, raw base64 or a data URI."""

    value: str
    field: str
    mime_type: str | None = None


@dataclass(frozen=True)
class Image:
    """Image bytes that decoded, with their type sniffed from the bytes."""

    data: bytes
    mime_type: str
    field: str

    def __repr__(self) -> str:  # never dump image bytes into logs or tracebacks
        return f"Image({self.mime_type}, {len(self.data)} bytes, field={self.field!r})"


@dataclass(frozen=True)
class SourceVideo:
    """The video an extension continues: a completed task of the caller's (`task_id`), or an
    uploaded MP4 (`data`); once resolved, what each upstream kind is sent: the Gemini API's file
    `uri` of a video it generated, Vertex AI's `gcs_uri` or the bytes inline."""

    task_id: str | None = None
    data: bytes | None = None
    uri: str | None = None
    gcs_uri: str | None = None
    mime_type: str = "video/mp4"
    field: str = "video"
    seconds: float | None = None  # its length, once known
    credential: str | None = None  # the credential whose project holds `uri`

    def __repr__(self) -> str:  # never dump video bytes into logs or tracebacks
        size = None if self.data is None else len(self.data)
        return f"SourceVideo(task_id={self.task_id!r}, {size} bytes, uri={self.uri!r})"


ImageT = TypeVar("ImageT", ImageSource, Image)
OtherT = TypeVar("OtherT", ImageSource, Image)


@dataclass(frozen=True)
class ReferenceImage(Generic[ImageT]):
    """A reference image ("asset") that guides the video without being a frame of it."""

    image: ImageT
    reference_type: str = "asset"


@dataclass(frozen=True)
class VideoRequest(Generic[ImageT]):
    """What the client asked for, in Google's terms, whatever dialect it spoke."""

    model: str
    prompt: str
    image: ImageT | None = None
    last_frame: ImageT | None = None
    reference_images: tuple[ReferenceImage[ImageT], ...] = ()
    aspect_ratio: str | None = None
    duration_seconds: int | None = None
    negative_prompt: str | None = None
    person_generation: str | None = None
    resolution: str | None = None
    # Other `metadata` keys, passed to the upstream `parameters` untouched.
    extra_parameters: Mapping[str, Any] = field(default_factory=dict)
    # The video an extension continues (domain/extension.py); None for a new video.
    video: SourceVideo | None = None

    @property
    def mode(self) -> str:
        """text, image, interpolation, reference or extension."""
        if self.video is not None:
            return "extension"
        if self.reference_images:
            return "reference"
        if self.last_frame is not None:
            return "interpolation"
        if self.image is not None:
            return "image"
        return "text"

    def images(self) -> list[ImageT]:
        """Every image of the request, frames first, then references."""
        found = [img for img in (self.image, self.last_frame) if img is not None]
        return found + [ref.image for ref in self.reference_images]

    def map_images(self, convert: Callable[[ImageT], OtherT]) -> VideoRequest[OtherT]:
        """The same request with each image converted (e.g. resolved into bytes)."""
        return VideoRequest(
            model=self.model,
            prompt=self.prompt,
            image=None if self.image is None else convert(self.image),
            last_frame=None if self.last_frame is None else convert(self.last_frame),
            reference_images=tuple(
                ReferenceImage(image=convert(ref.image), reference_type=ref.reference_type)
                for ref in self.reference_images
            ),
            aspect_ratio=self.aspect_ratio,
            duration_seconds=self.duration_seconds,
            negative_prompt=self.negative_prompt,
            person_generation=self.person_generation,
            resolution=self.resolution,
            extra_parameters=self.extra_parameters,
            video=self.video,
        )
