"""Client images (URL, raw base64, data URI) into checked bytes with a sniffed type."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage

from veo_gateway.domain.request import Image, ImageSource, VideoRequest
from veo_gateway.errors import InvalidArgument
from veo_gateway.media.fetch import FetchRefused, SafeFetcher

_DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?),", re.S)
_WHITESPACE = re.compile(r"\s+")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on one image."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


def sniff_mime(data: bytes) -> str | None:
    """The image type by its magic bytes: PNG, JPEG or WebP, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _b64(text: str, field: str) -> bytes:
    compact = _WHITESPACE.sub("", text)  # clients wrap long base64 in lines
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(f"invalid base64: {field}: {exc}", param=field) from exc


def decode_inline(value: str, field: str) -> bytes:
    """Raw base64 or a `data:<mime>;base64,<payload>` URI, decoded strictly."""
    if value.startswith("data:"):
        match = _DATA_URI.match(value)
        if match is None:
            raise InvalidArgument(
                f"invalid base64: {field}: a data URI must be data:<type>;base64,<data>",
                param=field,
            )
        if ";base64" not in match.group("params").lower():
            raise InvalidArgument(
                f"invalid base64: {field}: the data URI is not base64-encoded", param=field
            )
        return _b64(value[match.end() :], field)
    return _b64(value, field)


def check_image(data: bytes, field: str, limits: ImageLimits) -> str:
    """The sniffed type of `data` once it is shown to be a decodable, bounded image."""
    if not data:
        raise InvalidArgument(f"{field}: the image is empty", param=field)
    if len(data) > limits.max_bytes:
        raise InvalidArgument(
            f"{field}: the image is larger than {limits.max_bytes // (1024 * 1024)} MB",
            param=field,
        )
    # The bytes decide the type; a declared mimeType that disagrees is simply corrected.
    mime = sniff_mime(data)
    if mime is None:
        raise InvalidArgument(
            f"{field}: unsupported image type: only PNG, JPEG and WebP are accepted",
            param=field,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as image:
                width, height = image.size
                # Judge the header's size before any pixel is decoded (decompression bombs).
                if width * height > limits.max_pixels:
                    raise InvalidArgument(
                        f"{field}: the image is {width}x{height} pixels, more than the "
                        f"{limits.max_pixels:,} allowed",
                        param=field,
                    )
                image.load()
    except InvalidArgument:
        raise
    except (
        OSError,
        SyntaxError,
        ValueError,
        PILImage.DecompressionBombError,
        PILImage.DecompressionBombWarning,
    ) as exc:
        raise InvalidArgument(
            f"{field}: the image could not be decoded ({exc})", param=field
        ) from exc
    return mime


async def resolve_image(source: ImageSource, fetcher: SafeFetcher, limits: ImageLimits) -> Image:
    """Fetch or decode one image and check it."""
    value = source.value
    if value.startswith(("http://", "https://")):
        try:
            data = await fetcher.fetch(value)
        except FetchRefused as exc:
            raise InvalidArgument(
                f"failed to download image: {source.field}: {exc}", param=source.field
            ) from exc
    elif _SCHEME.match(value):
        scheme = value.split(":", 1)[0]
        raise InvalidArgument(
            f"failed to download image: {source.field}: scheme {scheme!r} is not allowed, "
            "use http(s), base64 or a data URI",
            param=source.field,
        )
    else:
        data = decode_inline(value, source.field)
    mime = await asyncio.to_thread(check_image, data, source.field, limits)
    return Image(data=data, mime_type=mime, field=source.field)


async def resolve_images(
    request: VideoRequest[ImageSource], fetcher: SafeFetcher, limits: ImageLimits
) -> VideoRequest[Image]:
    """Every image of the request, fetched or decoded concurrently, then checked."""
    sources = request.images()
    resolved = await asyncio.gather(*(resolve_image(s, fetcher, limits) for s in sources))
    by_field = {image.field: image for image in resolved}
    return request.map_images(lambda source: by_field[source.field])
