"""Video extension (Veo 3.1): Google's rules for the video an extension continues, per upstream
kind, checked before anything goes upstream.

Google's rules (its Gemini API video guide, Vertex AI's "extend a Veo video" page, and the
google-genai SDK, which sends the source as `instances[0].video`):

- Veo 3.1 and 3.1 Fast extend; Lite, Veo 3.0 and Veo 2 do not.
- The Gemini API extends only a video Veo generated there, named by its file URI, which Google
  keeps two days; the source is 720p, 16:9 or 9:16, at most 141 s long; each call adds 7 s (the
  request says `durationSeconds` 8 and `resolution` 720p), 148 s in all.
- Vertex AI takes any MP4 (inline, or from Cloud Storage) of 1 to 30 s at 24 fps, 16:9 or 9:16.

As with `domain/options.py`, a route may send a request to either kind (its credentials are
chosen at submission), so a source is taken only when every kind of the route would take it.
The result is the whole video, source and extension: both upstreams give it back (Vertex's
length rule is taken to be the Gemini API's: the source plus 7 s).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from veo_gateway.domain.catalog import ModelCapabilities
from veo_gateway.domain.options import KIND_NAMES
from veo_gateway.domain.request import VideoRequest
from veo_gateway.errors import FailedPrecondition, InvalidArgument

ADDED_SECONDS = 7  # what one extension adds to the video
DURATION_SECONDS = 8  # Google's `durationSeconds` for an extension
RESOLUTION = "720p"  # and its `resolution`
GEMINI_MAX_INPUT_SECONDS = 141
GEMINI_MAX_TOTAL_SECONDS = 148
VERTEX_INPUT_SECONDS = (1, 30)
VERTEX_FPS = 24
ASPECT_RATIOS = ("16:9", "9:16")
UPSTREAM_TTL_SECONDS = 2 * 24 * 3600  # how long Google keeps a Gemini API video's file
_HEIGHTS = {720: "720p", 1080: "1080p", 2160: "4k"}


@dataclass(frozen=True)
class Clip:
    """What is known of a source video: its shape, and where Google may find it."""

    seconds: float
    width: int
    height: int
    fps: float
    task_id: str | None = None  # the gateway's task that made it; None: an upload
    upstream_uri: str | None = None  # its Gemini API file URI, when the Gemini API made it
    gcs_uri: str | None = None  # its Cloud Storage object, when Vertex AI wrote it there
    credential: str | None = None  # the credential whose project holds `upstream_uri`
    made_at: float | None = None  # when Google finished it (Unix seconds)

    @property
    def name(self) -> str:
        """How messages name the source."""
        return f"video {self.task_id}" if self.task_id else "the uploaded video"

    @property
    def aspect_ratio(self) -> str | None:
        """16:9 or 9:16 (None for any other shape)."""
        if self.width * 9 == self.height * 16:
            return "16:9"
        if self.width * 16 == self.height * 9:
            return "9:16"
        return None

    @property
    def resolution(self) -> str:
        """720p, 1080p or 4k by its short side, else WIDTHxHEIGHT."""
        return _HEIGHTS.get(min(self.width, self.height), f"{self.width}x{self.height}")


def output_seconds(source_seconds: float) -> int:
    """How long an extension of a `source_seconds` video is: all of it, plus 7 s."""
    return round(source_seconds) + ADDED_SECONDS


def video_seconds(stored: Mapping[str, Any], row: ModelCapabilities | None = None) -> int:
    """How long a task's video is, from its stored request."""
    if video := stored.get("video"):
        return output_seconds(float(video["seconds"]))
    default = row.default_duration if row is not None else DURATION_SECONDS
    return int(stored.get("duration_seconds") or default)


def check_extension(
    request: VideoRequest[Any],
    row: ModelCapabilities,
    kinds: Collection[str],
    clip: Clip,
    now: float,
    *,
    extenders: Collection[str] = (),
) -> None:
    """A 400 for the first of Google's rules the extension of `clip` by `request` breaks on
    `row` served by `kinds`; `extenders` (models here that extend) says what to use instead."""
    if not row.extension:
        instead = f"; models that extend here: {', '.join(extenders)}" if extenders else ""
        raise InvalidArgument(
            f"{row.name} cannot extend videos: Google extends with Veo 3.1 and Veo 3.1 Fast "
            f"only{instead}",
            param="model",
        )
    if request.images():
        raise InvalidArgument(
            "an extension continues its video: it takes no images (send either video or images)",
            param="images",
        )
    if request.duration_seconds not in (None, DURATION_SECONDS):
        raise InvalidArgument(
            f"an extension adds {ADDED_SECONDS} s to its video, asked of Google as "
            f"durationSeconds {DURATION_SECONDS}; got {request.duration_seconds}",
            param="seconds",
        )
    if request.resolution not in (None, RESOLUTION):
        raise InvalidArgument(
            f"an extension is made at {RESOLUTION}; got resolution {request.resolution}",
            param="resolution",
        )
    if clip.aspect_ratio is None:
        raise InvalidArgument(
            f"{clip.name} is {clip.width}x{clip.height}: Google extends 16:9 or 9:16 videos only",
            param="video",
        )
    for kind in sorted(kinds):
        if kind == "gemini":
            _check_gemini(clip, row, now)
        elif kind == "vertex":
            _check_vertex(clip, row)


def _on(kind: str, row: ModelCapabilities) -> str:
    return f"{KIND_NAMES.get(kind, kind)}, which {row.name} is routed to here"


def _check_gemini(clip: Clip, row: ModelCapabilities, now: float) -> None:
    where = _on("gemini", row)
    if clip.upstream_uri is None:
        made = (
            "was not made on the Gemini API (no file URI of it is on record)"
            if clip.task_id
            else "is not a video this gateway made there"
        )
        raise InvalidArgument(
            f"{clip.name} {made}: {where}, extends only videos Veo generated on it, by their "
            "file URI (Vertex AI takes any MP4 of 1 to 30 s)",
            param="video",
        )
    if clip.made_at is not None and now - clip.made_at > UPSTREAM_TTL_SECONDS:
        hours = (now - clip.made_at) / 3600
        raise FailedPrecondition(
            f"{clip.name} was made {hours:.0f} hours ago: Google keeps the Gemini API's videos "
            "2 days, so it is gone upstream and can no longer be extended there",
            param="video",
        )
    if clip.resolution != RESOLUTION:
        raise InvalidArgument(
            f"{clip.name} is {clip.resolution}: {where}, extends {RESOLUTION} videos only",
            param="video",
        )
    if clip.seconds > GEMINI_MAX_INPUT_SECONDS + 0.5:
        raise InvalidArgument(
            f"{clip.name} is {clip.seconds:.0f} s long: {where}, extends videos of at most "
            f"{GEMINI_MAX_INPUT_SECONDS} s ({GEMINI_MAX_TOTAL_SECONDS} s in all)",
            param="video",
        )


def _check_vertex(clip: Clip, row: ModelCapabilities) -> None:
    low, high = VERTEX_INPUT_SECONDS
    where = _on("vertex", row)
    if not low - 0.05 <= clip.seconds <= high + 0.5:
        raise InvalidArgument(
            f"{clip.name} is {clip.seconds:.1f} s long: {where}, extends videos of {low} to "
            f"{high} s",
            param="video",
        )
    if abs(clip.fps - VERTEX_FPS) > 0.5:
        raise InvalidArgument(
            f"{clip.name} is {clip.fps:.3g} fps: {where}, extends {VERTEX_FPS} fps videos only",
            param="video",
        )
