"""Rendering a real MP4 for an emulated operation: H.264 video (and AAC audio) with PyAV.

Blocking and CPU-bound: call it from a worker thread, never on the event loop. Frames are drawn
at a modest canvas size (see `canvas_size`) and scaled up by FFmpeg's swscale while converting
to yuv420p, which costs far less than drawing at 4k with Pillow.
"""

from __future__ import annotations

import io
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter

from veo_gateway.emulator.audio import SAMPLE_RATE, tone_track
from veo_gateway.emulator.scenes import build_scene
from veo_gateway.emulator.text import Fonts

# 16:9 sizes; 9:16 swaps them.
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "360p": (640, 360),  # Gemini Omni's smallest
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "4k": (3840, 2160),
}
_CANVAS_LONG_SIDE = 960
_AUDIO_FRAME = 1024  # samples per AudioFrame: the AAC encoder's own frame size
_BYTES_PER_SAMPLE = 4  # s16, two channels


class RenderCancelled(Exception):
    """The render was stopped (the emulator is shutting down) before it finished."""


@dataclass(frozen=True)
class RenderSpec:
    """Everything a render needs: output format and the inputs that shape the content."""

    prompt: str
    width: int
    height: int
    seconds: int
    fps: int = 24
    audio: bool = True
    first_image: bytes | None = None
    last_image: bytes | None = None
    reference_images: tuple[bytes, ...] = ()
    label: str = ""
    source_video: bytes | None = None  # an extension's source MP4: its frames come first

    def __repr__(self) -> str:  # never dump image bytes into logs
        images = (
            len(self.reference_images)
            + (self.first_image is not None)
            + (self.last_image is not None)
        )
        return (
            f"RenderSpec({self.width}x{self.height}, {self.seconds}s@{self.fps}fps, "
            f"audio={self.audio}, images={images})"
        )


def frame_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """Output (width, height) for an aspect ratio ("16:9", "9:16") and resolution ("720p"...)."""
    width, height = RESOLUTIONS[resolution]
    return (height, width) if aspect_ratio == "9:16" else (width, height)


def canvas_size(width: int, height: int) -> tuple[int, int]:
    """The size frames are drawn at: the output's shape, long side at most 960, even numbers."""
    scale = min(1.0, _CANVAS_LONG_SIDE / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def render_video(
    spec: RenderSpec,
    dest: Path,
    cancel: threading.Event | None = None,
    fonts: Fonts | None = None,
) -> None:
    """Render `spec` to an MP4 at `dest`, atomically (a temp file, then `os.replace`).

    Raises RenderCancelled if `cancel` is set before the last frame.
    """
    fonts = fonts or Fonts()
    fonts.check(spec.prompt)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        # faststart puts the index first, so players (and Range readers) start at once.
        with av.open(
            str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}
        ) as container:
            _encode(container, spec, cancel, fonts)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _encode(container: Any, spec: RenderSpec, cancel: threading.Event | None, fonts: Fonts) -> None:
    # Above 720p, veryfast's smaller files are not worth twice the CPU time of ultrafast.
    preset = "veryfast" if spec.width * spec.height <= 1280 * 720 else "ultrafast"
    video = container.add_stream("libx264", rate=spec.fps, options={"preset": preset})
    video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
    audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo") if spec.audio else None
    pcm = tone_track(spec.seconds) if audio is not None else b""
    audio_sent = 0  # samples

    reformatter = VideoReformatter()  # one for all frames: it keeps its scaling context
    frames = spec.seconds * spec.fps
    time_base = Fraction(1, spec.fps)
    index = 0

    def emit(source: Any) -> None:
        nonlocal index, audio_sent
        if cancel is not None and cancel.is_set():
            raise RenderCancelled
        frame = reformatter.reformat(source, width=spec.width, height=spec.height, format="yuv420p")
        frame.pts, frame.time_base = index, time_base
        container.mux(video.encode(frame))
        index += 1
        if audio is not None:
            # Keep audio level with video so the muxer interleaves without buffering much.
            until = index * SAMPLE_RATE // spec.fps
            audio_sent = _send_audio(container, audio, pcm, audio_sent, until)

    first = spec.first_image
    if spec.source_video is not None:
        # An extension: every frame of its source first, then new frames that start from the
        # source's last one, so the video visibly continues it.
        first = _replay_source(spec.source_video, spec.fps, frames - spec.fps, emit)
    scene = build_scene(
        size=canvas_size(spec.width, spec.height),
        prompt=spec.prompt,
        first=first,
        last=spec.last_image,
        references=spec.reference_images,
        fonts=fonts,
        label=spec.label,
    )
    new = frames - index
    for step in range(new):
        image = scene(step / (new - 1) if new > 1 else 0.0)
        emit(av.VideoFrame.from_image(image))  # type: ignore[no-untyped-call]  # PyAV's stub
    container.mux(video.encode(None))
    if audio is not None:
        container.mux(audio.encode(None))


def _replay_source(data: bytes, fps: int, limit: int, emit: Callable[[Any], None]) -> bytes | None:
    """Emit the MP4 `data` at `fps` (each output frame shows the source frame of its time, so a
    source of another frame rate keeps its length), at most `limit` frames; returns its last
    frame as a PNG."""
    emitted, last = 0, None
    with av.open(io.BytesIO(data), mode="r") as source:
        stream = source.streams.video[0]
        for frame in source.decode(stream):
            start = float(frame.time or 0.0)
            while last is not None and emitted < limit and emitted / fps < start - 1e-6:
                emit(last)
                emitted += 1
            last = frame
        if last is None:
            return None
        end = float(last.time or 0.0) + 1 / float(stream.average_rate or fps)
        while emitted < limit and emitted / fps < end - 1e-6:
            emit(last)
            emitted += 1
    buffer = io.BytesIO()
    last.to_image().save(buffer, format="PNG")  # type: ignore[no-untyped-call]  # PyAV stub
    return buffer.getvalue()


def _send_audio(container: Any, stream: Any, pcm: bytes, start: int, until: int) -> int:
    """Encode PCM samples [start, until) in encoder-sized frames; returns the new position."""
    position = start
    while position < until:
        count = min(_AUDIO_FRAME, until - position)
        chunk = pcm[position * _BYTES_PER_SAMPLE : (position + count) * _BYTES_PER_SAMPLE]
        frame = av.AudioFrame(format="s16", layout="stereo", samples=count)
        frame.planes[0].update(chunk)
        frame.sample_rate = SAMPLE_RATE
        frame.pts, frame.time_base = position, Fraction(1, SAMPLE_RATE)
        container.mux(stream.encode(frame))
        position += count
    return position
