"""Test images, made in memory."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw


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
