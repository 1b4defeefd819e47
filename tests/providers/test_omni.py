"""The Gemini Omni adapter against the emulator's Interactions API, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.media import assert_length, make_image
from tests.support.servers import serve_app
from veo_gateway.config import GatewayConfig, Target, UpstreamConfig
from veo_gateway.domain.catalog import BUILTIN_MODELS
from veo_gateway.domain.request import Image, ReferenceImage, VideoRequest
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.media.probe import probe_video
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.omni import parse_interaction
from veo_gateway.providers.registry import build_pool
from veo_gateway.providers.switch import ProtocolSwitch

KEY, TOKEN = "omni-key", "omni-token"
OMNI = "gemini-omni-1.2-flash"
IMAGE = Image(data=make_image(), mime_type="image/png", field="images[0]")


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.0, 0.0),
        api_keys=frozenset({KEY}),
        vertex_tokens=frozenset({TOKEN}),
        storage_dir=tmp_path_factory.mktemp("omni"),
        fps=6,
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def _switches(url: str, storage_uri: str | None = None) -> dict[str, ProtocolSwitch]:
    upstreams = (
        UpstreamConfig(name="gemini", kind="gemini", api_keys=(KEY,), base_url=url),
        UpstreamConfig(
            name="vertex",
            kind="vertex",
            project="demo",
            location="global",
            access_token=TOKEN,
            base_url=url,
            storage_uri=storage_uri,
        ),
    )
    config = GatewayConfig(upstreams, {OMNI: (Target("gemini", OMNI),)}, BUILTIN_MODELS)
    pool = build_pool(config, UpstreamHttp(timeout=30), store=None)  # type: ignore[arg-type]
    found = {}
    for credential in pool.credentials():
        assert isinstance(credential.provider, ProtocolSwitch)
        found[credential.upstream] = credential.provider
    return found


async def _generate(provider: ProtocolSwitch, request: VideoRequest[Image], path: Path) -> Path:
    name = await provider.submit(OMNI, request)
    for _ in range(600):
        status = await provider.poll(name)
        if status.done:
            break
        await asyncio.sleep(0.05)
    assert status.done and status.error is None, status.error
    [sample] = status.samples
    if sample.data is not None:
        path.write_bytes(sample.data)
    else:
        assert sample.ref is not None
        async with provider.download(sample.ref) as chunks:
            path.write_bytes(b"".join([chunk async for chunk in chunks]))
    return path


@pytest.mark.parametrize("kind", ["gemini", "vertex"])
async def test_omni_generates_through_both_protocols(
    emulator_url: str, tmp_path: Path, kind: str
) -> None:
    provider = _switches(emulator_url)[kind]
    request = VideoRequest[Image](
        model=OMNI,
        prompt="the picture moves",
        image=IMAGE,
        aspect_ratio="9:16",
        resolution="360p",
        duration_seconds=4,
    )
    info = probe_video(await _generate(provider, request, tmp_path / "out.mp4"))
    assert (info.width, info.height) == (360, 640)
    assert_length(info, 4)
    log = httpx.get(f"{emulator_url}/_emulator/requests").json()
    sent = log[-1]
    assert sent["path"].endswith("/interactions")
    fmt = sent["body"]["response_format"]
    assert fmt["delivery"] == ("uri" if kind == "gemini" else "inline")
    assert sent["body"]["generation_config"] == {"video_config": {"task": "image_to_video"}}


async def test_vertex_storage_uri_delivers_by_gcs(emulator_url: str, tmp_path: Path) -> None:
    provider = _switches(emulator_url, storage_uri="gs://bucket/omni")["vertex"]
    request = VideoRequest[Image](
        model=OMNI,
        prompt="three friends",
        reference_images=(ReferenceImage(IMAGE), ReferenceImage(IMAGE)),
        resolution="360p",
        duration_seconds=4,
    )
    info = probe_video(await _generate(provider, request, tmp_path / "gcs.mp4"))
    assert info.height == 360


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("x [emulator:blocked]", "blocked by Google's safety filters"),
        ("x [emulator:fail]", "ended failed"),
        ("x [emulator:incomplete]", "ended incomplete"),
    ],
)
async def test_endings_become_failures_with_googles_reason(
    emulator_url: str, prompt: str, words: str
) -> None:
    provider = _switches(emulator_url)["gemini"]
    request = VideoRequest[Image](model=OMNI, prompt=prompt, resolution="360p", duration_seconds=4)
    name = await provider.submit(OMNI, request)
    for _ in range(600):
        status = await provider.poll(name)
        if status.done:
            break
        await asyncio.sleep(0.05)
    assert status.error is not None and words in status.error
    assert "emulated" in status.error  # Google's own words are kept


async def test_cancel_reaches_the_interaction_and_veo_has_none(emulator_url: str) -> None:
    provider = _switches(emulator_url)["gemini"]
    request = VideoRequest[Image](model=OMNI, prompt="a long take", resolution="360p")
    name = await provider.submit(OMNI, request)
    assert name.startswith("interactions/")
    assert await provider.cancel(name) is True
    status = await provider.poll(name)
    assert status.done and status.error is not None and "cancelled" in status.error
    assert await provider.cancel("models/veo-3.1-fast-generate-preview/operations/x") is False


def test_parse_interaction_reads_every_status() -> None:
    assert not parse_interaction({"status": "in_progress"}).done
    no_video = parse_interaction({"status": "completed", "steps": []})
    assert no_video.error == "the upstream finished without a video"
    asks = parse_interaction({"status": "requires_action"})
    assert asks.error is not None and "requires_action" in asks.error
    undecodable = parse_interaction(
        {
            "status": "completed",
            "steps": [{"type": "model_output", "content": [{"type": "video", "data": "!!"}]}],
        }
    )
    assert undecodable.error == "the upstream sent undecodable video bytes"
