"""Client images (http(s) URL, raw base64, data URI) into checked bytes with a sniffed type.

The bytes decide the type, never what the client declared; only PNG, JPEG and WebP that Pillow
decodes within the pixel cap get through.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import struct
from dataclasses import dataclass

from PIL import Image as PILImage

from veo_gateway.domain.request import Image, ImageSource, VideoRequest
from veo_gateway.errors import GatewayError, InvalidArgument
from veo_gateway.media.fetch import FetchRefused, SafeFetcher

_MIB = 1024 * 1024
# Pillow's name for each accepted type: the only decoder Pillow may try on those bytes.
_PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
# Types clients send by mistake, named in the refusal so they know what they sent.
_OTHER_MAGIC = (
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
)
_DATA_URI = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),", re.IGNORECASE)
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*", re.IGNORECASE)
# Anything that starts like `scheme:` is meant as a URI: ':' is never part of base64.
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# Pillow's own errors for broken files; struct.error and EOFError come from truncated headers.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on one image."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


def _size(n: int) -> str:
    return f"{n // _MIB} MB" if n >= _MIB and n % _MIB == 0 else f"{n:,} bytes"


def sniff_mime(data: bytes) -> str | None:
    """The image type by its magic bytes: image/png, image/jpeg or image/webp, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _describe(data: bytes) -> str:
    head = data[:64].lstrip()
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return "unknown"


def _b64decode(text: str, field: str) -> bytes:
    # Clients wrap long base64 in lines and pad it with spaces; nothing else is forgiven.
    compact = "".join(text.split())
    if "-" in compact or "_" in compact:
        raise InvalidArgument(
            f"invalid base64: {field}: URL-safe base64 ('-', '_') is not accepted; "
            "use the standard alphabet ('+', '/')",
            param=field,
        )
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise InvalidArgument(f"invalid base64: {field}: {exc}", param=field) from exc
    except ValueError as exc:  # non-ASCII characters in the string
        raise InvalidArgument(
            f"invalid base64: {field}: only ASCII base64 characters are allowed", param=field
        ) from exc


def decode_inline(value: str, field: str) -> bytes:
    """Decode raw base64 or a `data:<mime>;base64,<payload>` URI, strictly.

    Raises InvalidArgument("invalid base64: ...", param=field).
    """
    text = value.strip()
    if text[:5].lower() != "data:":
        return _b64decode(text, field)
    match = _DATA_URI.match(text)
    if match is None:
        raise InvalidArgument(
            f"invalid base64: {field}: a data URI must be data:<type>;base64,<data>", param=field
        )
    # The declared type only has to be well formed; the bytes decide the real one later.
    if not _MIME.fullmatch(match["mime"]):
        raise InvalidArgument(
            f"invalid base64: {field}: the data URI has no valid media type "
            f"({match['mime']!r}); expected data:<type>;base64,<data>",
            param=field,
        )
    if not match["params"].lower().endswith(";base64"):
        raise InvalidArgument(
            f"invalid base64: {field}: the data URI is not base64-encoded; "
            "expected data:<type>;base64,<data>",
            param=field,
        )
    return _b64decode(text[match.end() :], field)


def check_image(data: bytes, field: str, limits: ImageLimits) -> str:
    """The sniffed mime type of `data`, once shown to be a bounded, decodable PNG, JPEG or WebP.

    CPU-bound for large images: call it in a thread. Raises InvalidArgument.
    """
    if not data:
        raise InvalidArgument(f"image {field} is empty", param=field)
    if len(data) > limits.max_bytes:
        raise InvalidArgument(
            f"image {field} is larger than {_size(limits.max_bytes)}", param=field
        )
    mime = sniff_mime(data)
    if mime is None:
        raise InvalidArgument(
            f"unsupported image type ({_describe(data)}) in {field}: "
            "only PNG, JPEG and WebP are accepted",
            param=field,
        )
    too_big = f"image {field} has more pixels than the {limits.max_pixels:,} allowed"
    try:
        # `formats` is the local guard: Pillow tries only the sniffed type's decoder, never
        # another plugin that would accept the same bytes. Pillow's global MAX_IMAGE_PIXELS is
        # left alone (other code shares it); the check below is the one that counts.
        with PILImage.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[mime]]) as image:
            width, height = image.size
            # Judged on the header alone, before a single pixel is decoded: a small file can
            # claim a huge canvas (a decompression bomb).
            if width * height > limits.max_pixels:
                raise InvalidArgument(f"{too_big}: it is {width}x{height}", param=field)
            image.load()
    except PILImage.DecompressionBombError as exc:  # Pillow's own cap, hit while opening
        raise InvalidArgument(too_big, param=field) from exc
    except _DECODE_ERRORS as exc:
        raise InvalidArgument(
            f"image {field} could not be decoded as {_PILLOW_FORMATS[mime]}: {exc}", param=field
        ) from exc
    return mime


def _decode_and_check(value: str, field: str, limits: ImageLimits) -> tuple[bytes, str]:
    data = decode_inline(value, field)
    return data, check_image(data, field, limits)


async def resolve_image(source: ImageSource, fetcher: SafeFetcher, limits: ImageLimits) -> Image:
    """Download or decode one image and check it; raises InvalidArgument naming its field."""
    field = source.field
    value = source.value.strip()
    head = value[:8].lower()
    if head.startswith(("http://", "https://")):
        try:
            data = await fetcher.fetch(value)
        except FetchRefused as exc:
            raise InvalidArgument(f"failed to download image: {field}: {exc}", param=field) from exc
        mime = await asyncio.to_thread(check_image, data, field, limits)
    elif not head.startswith("data:") and (scheme := _SCHEME.match(value)):
        raise InvalidArgument(
            f"failed to download image: {field}: scheme {scheme[0][:-1]!r} is not allowed; "
            "send an http(s) URL, base64 or a data URI",
            param=field,
        )
    else:
        # Decoding 20 MB of base64 and then the pixels both take a while: off the event loop.
        data, mime = await asyncio.to_thread(_decode_and_check, value, field, limits)
    # A declared mime type (source.mime_type, or a data URI's) that disagrees with the bytes is
    # not an error: clients often get it wrong, and the sniffed type is the true one.
    return Image(data=data, mime_type=mime, field=field)


async def resolve_images(
    request: VideoRequest[ImageSource], fetcher: SafeFetcher, limits: ImageLimits
) -> VideoRequest[Image]:
    """The request with every image downloaded or decoded, concurrently, and checked.

    The first image to fail cancels the others, and its InvalidArgument is raised.
    """
    sources = request.images()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(resolve_image(s, fetcher, limits)) for s in sources]
    except ExceptionGroup as errors:
        failures = [exc for exc in errors.exceptions if isinstance(exc, GatewayError)]
        if len(failures) < len(errors.exceptions):
            raise  # a bug, not a bad image: keep everything
        # The first image to fail cancels the others, so there is almost always just one.
        chosen = failures[0]
        raise chosen from chosen.__cause__
    # Matched by identity, not by field name, so the mapping holds whatever the fields say.
    by_source = {id(source): task.result() for source, task in zip(sources, tasks, strict=True)}
    return request.map_images(lambda source: by_source[id(source)])
