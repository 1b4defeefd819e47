"""A predictLongRunning call as the emulator reads it from Google's JSON: just data.

The emulator keeps its own shapes rather than the gateway's `domain.request`, so what it makes of
a body depends on Google's protocol alone (see `emulator.google_rules`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InputImage:
    """An inline image that decoded, its type sniffed from its bytes."""

    data: bytes
    mime_type: str
    field: str

    def __repr__(self) -> str:  # never dump image bytes into logs or tracebacks
        return f"InputImage({self.mime_type}, {len(self.data)} bytes, field={self.field!r})"


@dataclass(frozen=True)
class Reference:
    """One of `instances[0].referenceImages`; `kind` is its referenceType, lower-cased."""

    image: InputImage
    kind: str = "asset"


@dataclass(frozen=True)
class InputVideo:
    """An extension's source video (`instances[0].video`), read and measured."""

    data: bytes
    seconds: float
    width: int
    height: int
    fps: float

    def __repr__(self) -> str:  # never dump video bytes into logs or tracebacks
        return f"InputVideo({self.width}x{self.height}, {self.seconds:.1f} s, {len(self.data)} B)"


@dataclass(frozen=True)
class Submission:
    """`instances[0]` and `parameters` of one predictLongRunning body, for one model."""

    model: str
    prompt: str
    image: InputImage | None = None
    last_frame: InputImage | None = None
    references: tuple[Reference, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    # `instances[0].video` as sent, until `emulator.videos` reads it into `video`.
    video_value: Any = None
    video: InputVideo | None = None
