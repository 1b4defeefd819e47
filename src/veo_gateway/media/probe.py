"""What a video file holds: durations, frame size and codecs, read with PyAV (FFmpeg).

A container's duration is that of its longest stream, so a short video track under a full-length
soundtrack still reports the full length. The video stream is therefore measured on its own too,
from its packets (no decoding): how many frames it has and how far their timestamps reach.
"""

from __future__ import annotations

import struct
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


class IncompleteVideo(Exception):
    """A video file that is cut short or damaged (as a download that ended early leaves it)."""


def check_whole(path: Path) -> None:
    """Raise IncompleteVideo unless `path` holds the whole video its index describes.

    A download cut short of an MP4 whose index comes first (faststart) still opens, and its
    container still reports the full duration; FFmpeg even reads an index cut short at the end
    of the file. So an MP4's top-level boxes are walked first (a few kilobytes read, see
    `_boxes_whole`): a box that runs past the end of the file is a cut; boxes that tile the file
    exactly, with the index inside them and every chunk it lists starting in a media box, are a
    whole video (a cut cannot leave that: it ends inside a box, or drops whole boxes). Any
    other file is demuxed to the end, and refused unless every stream holds all the packets
    its index lists.
    """
    try:
        if _boxes_whole(path):
            return
    except OSError as exc:
        raise IncompleteVideo(f"it cannot be read: {exc}") from exc
    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type in ("video", "audio")]
            if not any(s.type == "video" for s in streams):
                raise IncompleteVideo("it has no video stream")
            timings = _measure(container, streams)
            for stream in streams:
                found, listed = timings[stream.index].packets, int(stream.frames or 0)
                if found < listed:
                    raise IncompleteVideo(
                        f"its {stream.type} stream holds {found} of the {listed} packets "
                        "its index lists"
                    )
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise IncompleteVideo(f"it cannot be read: {exc}") from exc


# The largest index read into memory: a minute of video at 60 fps indexes in tens of kilobytes.
_MAX_MOOV = 16 * 1024 * 1024
# Boxes on the way from a track (`trak`) to its chunk offsets (ISO/IEC 14496-12).
_TO_CHUNKS = (b"mdia", b"minf", b"stbl")


def _boxes_whole(path: Path) -> bool:
    """Whether `path` is an MP4 (ISO base media file, `ftyp` first) that is certainly whole:
    its top-level boxes end exactly at the end of the file, with one `moov` (the index, not
    fragmented) and at least one `mdat`, and every chunk of every track starts inside an
    `mdat`. Raises IncompleteVideo when a box runs past the end of the file (certainly cut);
    False means "not shown whole", and the caller demuxes the file."""
    size = path.stat().st_size
    moov: bytes | None = None
    media: list[tuple[int, int]] = []  # each mdat's payload: [start, end)
    with path.open("rb") as handle:
        offset = 0
        while offset < size:
            handle.seek(offset)
            header = _box_header(handle.read(16), offset)
            if header is None:
                return False
            kind, start, end = header
            if offset == 0 and kind != b"ftyp":
                return False  # not an ISO base media file: the demuxer knows its format
            if end > size:
                raise IncompleteVideo(
                    f"it is cut short: its {kind.decode('latin-1')!r} box needs {end:,} bytes, "
                    f"the file has {size:,}"
                )
            if kind in (b"moof", b"mvex") or (kind == b"moov" and moov is not None):
                return False  # fragments or a second index: only the demuxer can tell
            if kind == b"moov":
                if end - start > _MAX_MOOV:
                    return False
                handle.seek(start)
                moov = handle.read(end - start)
            elif kind == b"mdat":
                media.append((start, end))
            offset = end
    if moov is None or not media:
        return False
    chunks = _chunk_offsets(moov)
    return chunks is not None and all(
        any(start <= chunk < end for start, end in media) for chunk in chunks
    )


def _box_header(head: bytes, offset: int) -> tuple[bytes, int, int] | None:
    """(type, payload start, end) of the top-level box whose first bytes are `head`, or None
    when it says nothing checkable: size 0 ("to the end of the file") or a malformed size."""
    if len(head) < 8 or (head[:4] == b"\0\0\0\1" and len(head) < 16):
        raise IncompleteVideo(f"it is cut short in the header of the box at byte {offset:,}")
    length, kind = struct.unpack(">I4s", head[:8])
    start = offset + 8
    if length == 1:
        (length,) = struct.unpack(">Q", head[8:16])
        start += 8
    if length == 0 or length < start - offset:
        return None
    return kind, start, offset + length


def _children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]] | None:
    """The boxes inside data[start:end] as (type, payload start, end); None if they do not
    tile it exactly."""
    boxes = []
    offset = start
    while offset < end:
        if end - offset < 8:
            return None
        length, kind = struct.unpack_from(">I4s", data, offset)
        payload = offset + 8
        if length == 1:
            if end - offset < 16:
                return None
            (length,) = struct.unpack_from(">Q", data, offset + 8)
            payload += 8
        if length < payload - offset or offset + length > end:
            return None
        boxes.append((kind, payload, offset + length))
        offset += length
    return boxes


def _chunk_offsets(moov: bytes) -> list[int] | None:
    """Every chunk offset of every track in the `moov` payload; None when there is no track,
    a track has no chunk table, or the index does not parse."""
    offsets: list[int] = []
    tracks = [box for box in _children(moov, 0, len(moov)) or [] if box[0] == b"trak"]
    for _, start, end in tracks:
        for step in _TO_CHUNKS:
            inner = [box for box in _children(moov, start, end) or [] if box[0] == step]
            if not inner:
                return None
            _, start, end = inner[0]
        table = {box[0]: box for box in _children(moov, start, end) or []}
        kind, start, end = table.get(b"stco") or table.get(b"co64") or (b"", 0, 0)
        if end - start < 8:
            return None
        (count,) = struct.unpack_from(">I", moov, start + 4)  # after version and flags
        code = "I" if kind == b"stco" else "Q"
        if count == 0 or start + 8 + count * struct.calcsize(code) > end:
            return None
        offsets += struct.unpack_from(f">{count}{code}", moov, start + 8)
    return offsets if tracks else None


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
