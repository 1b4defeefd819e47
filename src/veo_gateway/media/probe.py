"""What a video file holds: duration, frame size and codecs, read with PyAV (FFmpeg)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

# FFmpeg reports container durations in microseconds (AV_TIME_BASE).
_AV_TIME_BASE = 1_000_000


@dataclass(frozen=True)
class VideoInfo:
    """The facts about one video file that tests and the gateway check."""

    duration: float
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    size_bytes: int


def probe_video(path: Path) -> VideoInfo:
    """Read `path`'s container and first video (and audio) stream.

    Raises ValueError when the file has no video stream, and av.FFmpegError (an OSError) when
    FFmpeg cannot read it.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            duration=_duration(container, video),
            width=int(video.codec_context.width),
            height=int(video.codec_context.height),
            video_codec=str(video.codec_context.name),
            audio_codec=None if audio is None else str(audio.codec_context.name),
            size_bytes=path.stat().st_size,
        )


def _duration(container: Any, video: Any) -> float:
    if container.duration is not None:
        return float(container.duration / _AV_TIME_BASE)
    # Some containers carry no overall duration; the video stream's is the next best.
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    return 0.0
