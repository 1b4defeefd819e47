"""The one normalized video request every dialect is parsed into.

A request is generic over how its images are held: `ImageSource` (as the client sent them, not
yet fetched or decoded) before resolution, `Image` (checked bytes and sniffed type) after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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


I = TypeVar("I", ImageSource, Image)
J = TypeVar("J", ImageSource, Image)


@dataclass(frozen=True)
class ReferenceImage(Generic[I]):
    """A reference image ("asset") that guides the video without being a frame of it."""

    image: I
    reference_type: str = "asset"


@dataclass(frozen=True)
class VideoRequest(Generic[I]):
    """What the client asked for, in Google's terms, whatever dialect it spoke."""

    model: str
    prompt: str
    image: I | None = None
    last_frame: I | None = None
    reference_images: tuple[ReferenceImage[I], ...] = ()
    aspect_ratio: str | None = None
    duration_seconds: int | None = None
    negative_prompt: str | None = None
    person_generation: str | None = None
    resolution: str | None = None
    # Other `metadata` keys, passed to the upstream `parameters` untouched.
    extra_parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """text, image, interpolation or reference."""
        if self.reference_images:
            return "reference"
        if self.last_frame is not None:
            return "interpolation"
        if self.image is not None:
            return "image"
        return "text"

    def images(self) -> list[I]:
        """Every image of the request, frames first, then references."""
        found = [img for img in (self.image, self.last_frame) if img is not None]
        return found + [ref.image for ref in self.reference_images]

    def map_images(self, convert: Callable[[I], J]) -> VideoRequest[J]:
        """The same request with each image converted (e.g. resolved into bytes)."""
        return VideoRequest(  # type: ignore[return-value]
            **{
                **self.__dict__,
                "image": None if self.image is None else convert(self.image),
                "last_frame": None if self.last_frame is None else convert(self.last_frame),
                "reference_images": tuple(
                    replace(ref, image=convert(ref.image))  # type: ignore[arg-type]
                    for ref in self.reference_images
                ),
            }
        )
