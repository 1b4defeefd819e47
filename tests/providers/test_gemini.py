"""The Gemini adapter against the emulator's real protocol, and Google's behaviours around it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.support.servers import serve_app
from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.errors import UpstreamError, UpstreamUnavailable
from veo_gateway.providers.gemini import GeminiProvider, parse_operation
from veo_gateway.providers.http import UpstreamHttp

FAST = "veo-3.1-fast-generate-preview"


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.0, 0.0), api_keys=frozenset({"good"}), storage_dir=tmp_path / "emu"
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


async def test_submit_poll_download_round_trip(emulator_url: str, tmp_path: Path) -> None:
    async with UpstreamHttp(timeout=30) as client:
        provider = GeminiProvider(api_key="good", base_url=emulator_url, client=client)
        name = await provider.submit(
            FAST, VideoRequest(model=FAST, prompt="a fox", duration_seconds=4)
        )
        assert name.startswith(f"models/{FAST}/operations/")
        for _ in range(300):
            status = await provider.poll(name)
            if status.done:
                break
            await asyncio.sleep(0.1)
        assert status.done and status.error is None and status.video_ref
        assert status.video_ref.startswith("https://")
        async with provider.download(status.video_ref) as chunks:
            data = b"".join([chunk async for chunk in chunks])
        assert data[4:8] == b"ftyp"


async def test_upstream_errors_pass_through(emulator_url: str) -> None:
    async with UpstreamHttp(timeout=30) as client:
        bad_key = GeminiProvider(api_key="bad", base_url=emulator_url, client=client)
        with pytest.raises(UpstreamError) as info:
            await bad_key.submit(FAST, VideoRequest(model=FAST, prompt="x"))
        assert info.value.code == 400 and info.value.google_status == "INVALID_ARGUMENT"
        assert "API key not valid" in info.value.message
        assert not info.value.retryable

        provider = GeminiProvider(api_key="good", base_url=emulator_url, client=client)
        with pytest.raises(UpstreamError) as info:
            await provider.submit("veo-0", VideoRequest(model="veo-0", prompt="x"))
        assert info.value.code == 404
        image = Image(data=b"\x89PNG...", mime_type="image/png", field="images[0]")
        with pytest.raises(UpstreamError) as info:
            await provider.submit(
                FAST,
                VideoRequest(
                    model=FAST, prompt="x", image=image, last_frame=image, duration_seconds=6
                ),
            )
        assert info.value.code == 400


async def test_unreachable_upstream_is_retryable() -> None:
    async with UpstreamHttp(timeout=2) as client:
        provider = GeminiProvider(api_key="k", base_url="http://127.0.0.1:9", client=client)
        with pytest.raises(UpstreamUnavailable) as info:
            await provider.poll("models/m/operations/x")
        assert info.value.retryable


def test_operation_outcomes() -> None:
    assert not parse_operation({"name": "x"}).done
    failed = parse_operation({"done": True, "error": {"code": 13, "message": "boom"}})
    assert failed.error and "boom" in failed.error
    blocked = parse_operation(
        {
            "done": True,
            "response": {
                "generateVideoResponse": {
                    "raiMediaFilteredCount": 1,
                    "raiMediaFilteredReasons": ["has a celebrity"],
                }
            },
        }
    )
    assert blocked.error and "safety" in blocked.error and "has a celebrity" in blocked.error
    video = parse_operation(
        {
            "done": True,
            "response": {
                "generateVideoResponse": {
                    "generatedSamples": [
                        {"video": {"uri": "https://h/v1beta/files/abc:download?alt=media"}}
                    ]
                }
            },
        }
    )
    assert video.video_ref and video.error is None
    empty = parse_operation({"done": True, "response": {}})
    assert empty.error


def test_file_url_uses_our_base_not_the_uri_host() -> None:
    provider = GeminiProvider(api_key="k", base_url="http://127.0.0.1:5/", client=None)  # type: ignore[arg-type]
    assert (
        provider.file_url(
            "https://generativelanguage.googleapis.com/v1beta/files/a1b2:download?alt=media"
        )
        == "http://127.0.0.1:5/v1beta/files/a1b2:download?alt=media"
    )
    for bad in ("http://evil/v1beta/files/a1:download", "https://x/other/path", "ftp://x"):
        with pytest.raises(UpstreamError):
            provider.file_url(bad)


async def test_download_redirect_does_not_carry_the_key_off_site() -> None:
    # Google answers a file download with a redirect to its storage host: two real servers play
    # them (another port is another host to the adapter), recording which requests carried the
    # key.
    seen: list[tuple[str, str | None]] = []

    async def storage(request: Request) -> Response:
        seen.append(("storage", request.headers.get("x-goog-api-key")))
        return Response(b"....ftypmp42")

    with serve_app(Starlette(routes=[Route("/blob", storage)])) as storage_url:

        async def google(request: Request) -> Response:
            seen.append(("api", request.headers.get("x-goog-api-key")))
            return RedirectResponse(f"{storage_url}/blob?sig=1", status_code=302)

        api = Starlette(routes=[Route("/v1beta/files/abc:download", google)])
        with serve_app(api) as api_url:
            async with UpstreamHttp(timeout=30) as client:
                provider = GeminiProvider(api_key="secret", base_url=api_url, client=client)
                uri = "https://x/v1beta/files/abc:download?alt=media"
                async with provider.download(uri) as chunks:
                    data = b"".join([c async for c in chunks])
    assert data == b"....ftypmp42"
    assert seen == [("api", "secret"), ("storage", None)]
