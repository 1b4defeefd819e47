"""Test images, made in memory, and the oracle for a video's length."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw

from veo_gateway.media.probe import VideoInfo


def make_image(
    fmt: str = "PNG",
    size: tuple[int, int] = (320, 180),
    color: tuple[int, int, int] = (200, 80, 40),
) -> bytes:
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    draw.ellipse(
        (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=(30, 120, 220)
    )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{b64(data)}"


def assert_length(info: VideoInfo, seconds: float, tolerance: float = 0.2) -> None:
    """`info` is a video `seconds` long: its container, its video stream measured on its own (a
    short picture under a full-length soundtrack fails here), and its audio stream, if any."""
    lengths = {"container": info.duration, "video stream": info.video.duration}
    if info.audio is not None:
        lengths["audio stream"] = info.audio.duration
    wrong = {
        name: round(value, 3) for name, value in lengths.items() if abs(value - seconds) > tolerance
    }
    assert not wrong, f"expected {seconds} s (±{tolerance}), got {wrong}: {info}"
