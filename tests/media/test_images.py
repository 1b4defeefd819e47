"""Images as clients send them (URL, base64, data URI) into checked bytes, or a clear 400."""

from __future__ import annotations

import base64
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from tests.conftest import Gateway
from tests.media.conftest import JPEG, PNG, WEBP, MakeFetcher, Server
from tests.support.media import b64, data_uri, make_image
from tests.support.servers import free_port
from veo_gateway.domain.request import Image, ImageSource, ReferenceImage, VideoRequest
from veo_gateway.errors import InvalidArgument
from veo_gateway.media.fetch import ALLOW_PRIVATE_IMAGES, FetchLimits
from veo_gateway.media.images import (
    ImageLimits,
    check_image,
    decode_inline,
    resolve_image,
    resolve_images,
)

LIMITS = ImageLimits()
ALLOW = FetchLimits(allow_private=True)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (its data is far too short)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def refusal(exc: pytest.ExceptionInfo[InvalidArgument], field: str = "images[0]") -> str:
    assert exc.value.param == field
    assert exc.value.http_status == 400
    return exc.value.message


# --- decode_inline ---------------------------------------------------------------------------


def test_raw_base64() -> None:
    assert decode_inline(b64(PNG), "images[0]") == PNG


def test_base64_wrapped_in_lines_and_spaces() -> None:
    text = b64(PNG)
    wrapped = "\n  " + "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + " \n"
    assert decode_inline(wrapped, "images[0]") == PNG


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("YWJj" + "ZA", "Incorrect padding"),
        ("YW!j", "Only base64 data is allowed"),
        ("not base64!!", "Only base64 data is allowed"),
        ("YWJj\x00ZGVm", "Only base64 data is allowed"),
        ("YWJjé", "only ASCII"),
        (base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode(), "URL-safe base64"),
    ],
)
def test_bad_base64_refused(value: str, detail: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        decode_inline(value, "images[0]")
    message = refusal(exc)
    assert message.startswith("invalid base64: images[0]: ")
    assert detail in message


@pytest.mark.parametrize(
    "uri",
    [
        data_uri(PNG, "image/png"),
        data_uri(PNG, "image/jpeg"),  # a wrong declared type is not the decoder's business
        "DATA:IMAGE/PNG;BASE64," + b64(PNG),
        "data:image/png;name=frame.png;base64," + b64(PNG),
        "  data:image/png;base64,\n" + b64(PNG) + "\n",
    ],
)
def test_data_uris(uri: str) -> None:
    assert decode_inline(uri, "images[0]") == PNG


@pytest.mark.parametrize(
    ("uri", "detail"),
    [
        ("data:image/png," + b64(PNG), "not base64-encoded"),
        ("data:image/png;charset=utf-8," + b64(PNG), "not base64-encoded"),
        ("data:image/png;base64;x=y," + b64(PNG), "not base64-encoded"),
        ("data:png;base64," + b64(PNG), "no valid media type"),
        ("data:;base64," + b64(PNG), "no valid media type"),
        ("data:image/png;base64" + b64(PNG), "must be data:<type>;base64,<data>"),
        ("data:image/png;base64,%89PNG", "Only base64 data is allowed"),
    ],
)
def test_bad_data_uris_refused(uri: str, detail: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        decode_inline(uri, "metadata.referenceImages[1].image.bytesBase64Encoded")
    message = refusal(exc, "metadata.referenceImages[1].image.bytesBase64Encoded")
    assert message.startswith("invalid base64: metadata.referenceImages[1].image.")
    assert detail in message


@given(st.binary(max_size=300))
def test_any_bytes_round_trip_through_base64(data: bytes) -> None:
    assert decode_inline(base64.b64encode(data).decode(), "f") == data


# --- check_image -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"), [(PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp")]
)
def test_accepted_types_sniffed(data: bytes, mime: str) -> None:
    assert check_image(data, "images[0]", LIMITS) == mime


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (make_image("GIF"), "GIF"),
        (make_image("BMP"), "BMP"),
        (make_image("TIFF"), "TIFF"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"hello, this is text and not an image", "unknown"),
    ],
)
def test_other_types_refused(data: bytes, named: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_image(data, "images[0]", LIMITS)
    assert refusal(exc) == (
        f"unsupported image type ({named}) in images[0]: only PNG, JPEG and WebP are accepted"
    )


@pytest.mark.parametrize(
    "data", [PNG[: len(PNG) // 2], JPEG[: len(JPEG) // 2], WEBP[: len(WEBP) // 2], PNG[:40]]
)
def test_truncated_images_refused(data: bytes) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_image(data, "images[0]", LIMITS)
    assert refusal(exc).startswith("image images[0] could not be decoded as ")


def test_png_magic_with_jpeg_inside_refused() -> None:
    # The sniffed type's decoder is the only one tried: these bytes are no PNG.
    with pytest.raises(InvalidArgument, match="could not be decoded as PNG"):
        check_image(b"\x89PNG\r\n\x1a\n" + JPEG, "images[0]", LIMITS)


def test_empty_refused() -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_image(b"", "images[0]", LIMITS)
    assert refusal(exc) == "image images[0] is empty"


def test_byte_cap() -> None:
    limits = ImageLimits(max_bytes=len(PNG))
    assert check_image(PNG, "images[0]", limits) == "image/png"
    with pytest.raises(InvalidArgument) as exc:
        check_image(PNG + b"\x00", "images[0]", limits)
    assert refusal(exc) == f"image images[0] is larger than {len(PNG):,} bytes"


def test_pixel_cap_is_inclusive() -> None:
    limits = ImageLimits(max_pixels=100)
    assert check_image(make_image(size=(10, 10)), "images[0]", limits) == "image/png"
    with pytest.raises(InvalidArgument) as exc:
        check_image(make_image(size=(11, 10)), "images[0]", limits)
    assert refusal(exc) == "image images[0] has more pixels than the 100 allowed: it is 11x10"


@pytest.mark.parametrize(("width", "height"), [(8000, 6000), (30000, 30000), (1, 2**31 - 1)])
def test_decompression_bomb_refused_from_its_header(width: int, height: int) -> None:
    bomb = png_claiming(width, height)
    assert len(bomb) < 200
    global_cap = PILImage.MAX_IMAGE_PIXELS
    started = time.monotonic()
    with pytest.raises(InvalidArgument) as exc:
        check_image(bomb, "images[0]", LIMITS)
    # The pixel refusal, not a decoding error: the (truncated) pixels were never decoded.
    assert refusal(exc).startswith("image images[0] has more pixels than the 40,000,000 allowed")
    assert time.monotonic() - started < 1.0
    assert global_cap == PILImage.MAX_IMAGE_PIXELS


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from([PNG, JPEG, WEBP]),
    cut=st.integers(1, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
)
def test_damaged_images_give_a_400_or_pass(
    seed: bytes, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(seed[: max(cut, 12)])
    for position, value in flips:
        data[position % len(data)] = value
    try:
        mime = check_image(bytes(data), "f", LIMITS)
    except InvalidArgument as exc:
        assert exc.param == "f"
    else:
        assert mime in ("image/png", "image/jpeg", "image/webp")


# --- resolve_image ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b64(PNG), data_uri(PNG), data_uri(PNG, "image/webp")])
async def test_inline_sources(make_fetcher: MakeFetcher, value: str) -> None:
    image = await resolve_image(
        ImageSource(value, "images[0]", "image/jpeg"), make_fetcher(), LIMITS
    )
    # The declared types (image/jpeg, image/webp) were wrong: the bytes decide.
    assert image == Image(data=PNG, mime_type="image/png", field="images[0]")


@pytest.mark.parametrize(
    ("path", "data", "mime"),
    [
        ("img.png", PNG, "image/png"),
        ("img.jpg", JPEG, "image/jpeg"),
        ("img.webp", WEBP, "image/webp"),
    ],
)
async def test_url_sources(
    make_fetcher: MakeFetcher, server: Server, path: str, data: bytes, mime: str
) -> None:
    source = ImageSource(f"{server.url}/{path}", "images[0]", "image/gif")
    image = await resolve_image(source, make_fetcher(ALLOW), LIMITS)
    assert (image.data, image.mime_type, image.field) == (data, mime, "images[0]")


async def test_refused_url_names_the_field(make_fetcher: MakeFetcher, server: Server) -> None:
    field = "metadata.referenceImages[1].image.bytesBase64Encoded"
    with pytest.raises(InvalidArgument) as exc:
        await resolve_image(ImageSource(f"{server.url}/img.png", field), make_fetcher(), LIMITS)
    assert refusal(exc, field) == (
        f"failed to download image: {field}: address 127.0.0.1 is loopback (set "
        f"{ALLOW_PRIVATE_IMAGES}=true to allow private, loopback and link-local addresses)"
    )
    assert server.hits == []


async def test_download_failure_keeps_the_reason(make_fetcher: MakeFetcher, server: Server) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await resolve_image(
            ImageSource(f"{server.url}/status/404", "images[0]"), make_fetcher(ALLOW), LIMITS
        )
    assert refusal(exc) == "failed to download image: images[0]: HTTP 404"


async def test_uppercase_scheme_is_a_url(make_fetcher: MakeFetcher, server: Server) -> None:
    with pytest.raises(
        InvalidArgument,
        match=rf"^failed to download image: .* is loopback \(set {ALLOW_PRIVATE_IMAGES}=true .*\)$",
    ):
        await resolve_image(
            ImageSource(f"HTTP://127.0.0.1:{server.port}/img.png", "images[0]"),
            make_fetcher(),
            LIMITS,
        )


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        ("ftp://127.0.0.1/a.png", "ftp"),
        ("file:///etc/passwd", "file"),
        ("gopher://127.0.0.1:70/", "gopher"),
        ("javascript:alert(1)", "javascript"),
    ],
)
async def test_other_schemes_refused(make_fetcher: MakeFetcher, value: str, scheme: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await resolve_image(ImageSource(value, "images[0]"), make_fetcher(), LIMITS)
    assert refusal(exc).startswith(
        f"failed to download image: images[0]: scheme '{scheme}' is not allowed"
    )


async def test_downloaded_non_image_refused(make_fetcher: MakeFetcher, server: Server) -> None:
    with pytest.raises(InvalidArgument, match=r"^unsupported image type \(unknown\) in images"):
        await resolve_image(
            ImageSource(f"{server.url}/host", "images[0]"), make_fetcher(ALLOW), LIMITS
        )


async def test_bad_base64_source(make_fetcher: MakeFetcher) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await resolve_image(ImageSource("YWJjZA", "images[0]"), make_fetcher(), LIMITS)
    assert refusal(exc) == "invalid base64: images[0]: Incorrect padding"


# --- resolve_images --------------------------------------------------------------------------


def request_of(
    image: str | None = None, last_frame: str | None = None, references: tuple[str, ...] = ()
) -> VideoRequest[ImageSource]:
    return VideoRequest(
        model="veo-3.1-generate-preview",
        prompt="a fox",
        image=None if image is None else ImageSource(image, "images[0]"),
        last_frame=None if last_frame is None else ImageSource(last_frame, "images[1]"),
        reference_images=tuple(
            ReferenceImage(ImageSource(ref, f"metadata.referenceImages[{i}].image"))
            for i, ref in enumerate(references)
        ),
        duration_seconds=8,
    )


async def test_every_image_lands_in_its_slot(make_fetcher: MakeFetcher, server: Server) -> None:
    red, green = make_image(color=(255, 0, 0)), make_image("JPEG", color=(0, 255, 0))
    request = request_of(references=(b64(red), data_uri(green), f"{server.url}/img.webp"))
    resolved = await resolve_images(request, make_fetcher(ALLOW), LIMITS)
    assert [
        (ref.image.data, ref.image.mime_type, ref.image.field) for ref in resolved.reference_images
    ] == [
        (red, "image/png", "metadata.referenceImages[0].image"),
        (green, "image/jpeg", "metadata.referenceImages[1].image"),
        (WEBP, "image/webp", "metadata.referenceImages[2].image"),
    ]
    assert (resolved.prompt, resolved.duration_seconds, resolved.mode) == ("a fox", 8, "reference")

    frames = await resolve_images(
        request_of(f"{server.url}/img.jpg", b64(PNG)), make_fetcher(ALLOW), LIMITS
    )
    assert frames.image is not None and frames.last_frame is not None
    assert (frames.image.data, frames.image.field) == (JPEG, "images[0]")
    assert (frames.last_frame.data, frames.last_frame.field) == (PNG, "images[1]")


async def test_text_only_request_unchanged(make_fetcher: MakeFetcher) -> None:
    resolved = await resolve_images(request_of(), make_fetcher(), LIMITS)
    assert (resolved.mode, resolved.images(), resolved.prompt) == ("text", [], "a fox")


async def test_images_are_resolved_concurrently(make_fetcher: MakeFetcher, server: Server) -> None:
    slow = f"{server.url}/slow-image/0.6"
    started = time.monotonic()
    await resolve_images(request_of(slow, slow, ()), make_fetcher(ALLOW), LIMITS)
    await resolve_images(request_of(references=(slow, slow, slow)), make_fetcher(ALLOW), LIMITS)
    # Serially: 3 s. Concurrently: about 1.2 s.
    assert time.monotonic() - started < 2.4


async def test_one_bad_image_fails_the_request_and_names_itself(
    make_fetcher: MakeFetcher, server: Server
) -> None:
    request = request_of(references=(f"{server.url}/slow-image/5", "@@@"))
    started = time.monotonic()
    with pytest.raises(InvalidArgument) as exc:
        await resolve_images(request, make_fetcher(ALLOW), LIMITS)
    assert refusal(exc, "metadata.referenceImages[1].image").startswith("invalid base64")
    assert time.monotonic() - started < 3  # the slow download was cancelled, not awaited


def test_a_refused_image_url_names_the_setting_that_allows_it(gateway: Gateway) -> None:
    body = {
        "model": "veo-3.1-fast-generate-preview",
        "prompt": "p",
        "images": [f"http://127.0.0.1:{free_port()}/a.png"],
    }
    response = gateway.create(body)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "address 127.0.0.1 is loopback" in message
    assert f"set {ALLOW_PRIVATE_IMAGES}=true" in message
