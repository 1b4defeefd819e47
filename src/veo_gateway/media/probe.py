"""What a video file holds: durations, frame size and codecs, read with PyAV (FFmpeg).

A container's duration is that of its longest stream, so a short video track under a full-length
soundtrack still reports the full length. The video stream is therefore measured on its own too,
from its packets (no decoding): how many frames it has and how far their timestamps reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

# FFmpeg reports container durations in microseconds (AV_TIME_BASE).
_AV_TIME_BASE = 1_000_000


@dataclass(frozen=True)
class StreamTiming:
    """One stream measured from its own packets."""

    duration: float  # seconds from the first packet's start to the last one's end
    packets: int  # for video: frames
    time_base: Fraction


@dataclass(frozen=True)
class VideoInfo:
    """The facts about one video file that tests and the gateway check."""

    duration: float  # the container's: its longest stream
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    size_bytes: int
    video: StreamTiming
    audio: StreamTiming | None = None

    @property
    def frames(self) -> int:
        """How many frames the video stream holds."""
        return self.video.packets

    @property
    def shortest(self) -> float:
        """The length every stream reaches: what a viewer gets in full, picture and sound."""
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        return min([self.duration] + [stream.duration for stream in streams])


def probe_video(path: Path) -> VideoInfo:
    """Read `path`'s container and first video (and audio) stream, and measure both streams.

    Raises ValueError when the file has no video stream, and av.FFmpegError (an OSError) when
    FFmpeg cannot read it.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        timings = _measure(container, [s for s in (video, audio) if s is not None])
        return VideoInfo(
            duration=_duration(container, video),
            width=int(video.codec_context.width),
            height=int(video.codec_context.height),
            video_codec=str(video.codec_context.name),
            audio_codec=None if audio is None else str(audio.codec_context.name),
            size_bytes=path.stat().st_size,
            video=timings[video.index],
            audio=None if audio is None else timings[audio.index],
        )


def _measure(container: Any, streams: list[Any]) -> dict[int, StreamTiming]:
    """Each stream's span and packet count, demuxed (not decoded) from the start."""
    spans: dict[int, list[int]] = {s.index: [] for s in streams}  # start, end, count
    for packet in container.demux(streams):
        if packet.pts is None or packet.size == 0:  # the demuxer's flush packets
            continue
        end = packet.pts + (packet.duration or 0)
        span = spans[packet.stream.index]
        if not span:
            span.extend((packet.pts, end, 0))
        span[0], span[1], span[2] = min(span[0], packet.pts), max(span[1], end), span[2] + 1
    timings = {}
    for stream in streams:
        time_base = Fraction(stream.time_base or Fraction(1, _AV_TIME_BASE))
        start, end, count = spans[stream.index] or (0, 0, 0)
        timings[stream.index] = StreamTiming(float((end - start) * time_base), count, time_base)
    return timings


def _duration(container: Any, video: Any) -> float:
    if container.duration is not None:
        return float(container.duration / _AV_TIME_BASE)
    # Some containers carry no overall duration; the video stream's is the next best.
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    return 0.0
