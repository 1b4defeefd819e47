"""Uploaded MP4s (the video an extension continues): hostile input, bounded and probed before
any rule is judged on it or any byte of it goes upstream."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio.to_thread

from veo_gateway.domain.extension import Clip
from veo_gateway.errors import InvalidArgument, PayloadTooLarge
from veo_gateway.media.probe import IncompleteVideo, check_whole, probe_video

# Vertex AI's longest source (30 s) at a generous bit rate; a 141 s Gemini API source is never
# uploaded, since that upstream is sent the file URI of a video it made.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# The ISO base media brands of an MP4 (what FFmpeg, Veo and phones write).
_MP4_BRANDS = (b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash")


def _refuse(why: str, param: str) -> InvalidArgument:
    return InvalidArgument(f"{param} must be an MP4 video: {why}", param=param)


def looks_like_mp4(data: bytes) -> bool:
    """True when `data` starts with an MP4's `ftyp` box and brand."""
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _MP4_BRANDS


def _probe(data: bytes, param: str) -> Clip:
    with tempfile.TemporaryDirectory(prefix="veo-upload-") as directory:
        path = Path(directory) / "upload.mp4"
        path.write_bytes(data)
        try:
            check_whole(path)
            info = probe_video(path)
        except IncompleteVideo as exc:
            raise _refuse("it is cut short or damaged", param) from exc
        except (ValueError, OSError) as exc:
            raise _refuse("it has no video stream that can be read", param) from exc
    seconds = info.video.duration or info.duration
    if seconds <= 0 or info.video.packets < 1:
        raise _refuse("it has no frames", param)
    return Clip(
        seconds=seconds,
        width=info.width,
        height=info.height,
        fps=info.video.packets / seconds,
    )


async def probe_upload(data: bytes, param: str = "video") -> Clip:
    """The shape of an uploaded MP4 (length, size, frame rate), or a 4xx saying why not."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"{param} is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES} bytes",
            param=param,
        )
    if not looks_like_mp4(data):
        raise _refuse("the file does not start with an MP4 header", param)
    return await anyio.to_thread.run_sync(_probe, data, param)
