"""Operations end to end: latency, each mode's MP4, the URI form, blocked and failed outcomes."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import FAST, HOST, STANDARD, VEO2, Emulator, inline, png
from tests.support.media import assert_length
from veo_gateway.media.probe import probe_video


async def test_done_operation_shape_and_uri(emulator: Emulator) -> None:
    response = await emulator.submit(FAST, {"prompt": "a red fox in snow"}, {"durationSeconds": 4})
    name = response.json()["name"]
    operation = await emulator.wait(name)
    assert operation["name"] == name and operation["done"] is True
    assert operation["response"]["@type"] == (
        "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
    )
    samples = operation["response"]["generateVideoResponse"]["generatedSamples"]
    assert len(samples) == 1
    uri = samples[0]["video"]["uri"]
    # Always https and the Host the poll came in on, exactly like Google (and what the SDK needs).
    assert re.fullmatch(
        rf"https://{re.escape(HOST)}/v1beta/files/[a-z0-9]+:download\?alt=media", uri
    ), uri
    info = probe_video(await emulator.download(uri))
    assert (info.width, info.height) == (1280, 720)
    assert_length(info, 4, tolerance=0.15)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    stats = (await emulator.client.get("/_emulator/stats")).json()
    assert stats["downloads"] == 1


async def test_download_needs_a_key_and_alt_media(emulator: Emulator) -> None:
    operation = await emulator.wait(
        (await emulator.submit(FAST, {"prompt": "x"}, {"durationSeconds": 4})).json()["name"]
    )
    uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    path = uri.split(HOST, 1)[1]
    response = await emulator.client.get(path, headers={"x-goog-api-key": ""})
    assert response.status_code == 403
    response = await emulator.client.get(path.split("?")[0])
    assert response.status_code == 400
    response = await emulator.client.get(path, headers={"range": "bytes=0-7"})
    assert response.status_code == 206 and response.content[4:8] == b"ftyp"


async def test_latency_holds_the_operation_running(make_emulator: Any) -> None:
    async with make_emulator(latency=(0.6, 0.6)) as emulator:
        name = (await emulator.submit(FAST, {"prompt": "x [emulator:fail]"})).json()["name"]
        running = (await emulator.client.get(f"/v1beta/{name}")).json()
        assert running == {"name": name}
        await asyncio.sleep(0.7)
        assert (await emulator.client.get(f"/v1beta/{name}")).json()["done"] is True


async def test_running_until_the_render_finishes(emulator: Emulator) -> None:
    # Latency 0, but an 8 s 1080p render takes a while: the operation waits for it.
    name = (await emulator.submit(FAST, {"prompt": "x"}, {"resolution": "1080p"})).json()["name"]
    assert "done" not in (await emulator.client.get(f"/v1beta/{name}")).json()
    info = probe_video(await _video(emulator, name))
    assert (info.width, info.height) == (1920, 1080)
    assert_length(info, 8, tolerance=0.15)


async def _video(emulator: Emulator, name: str) -> Any:
    operation = await emulator.wait(name)
    uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    return await emulator.download(uri)


@pytest.mark.parametrize(
    ("model", "instance", "parameters", "size", "seconds", "audio"),
    [
        (
            FAST,
            {"prompt": "一只可爱的橘猫在花园里追逐蝴蝶"},
            {"aspectRatio": "9:16", "durationSeconds": 4},
            (720, 1280),
            4,
            "aac",
        ),
        (
            FAST,
            {"prompt": "push in", "image": inline(png(fmt="JPEG"), "image/jpeg")},
            {"durationSeconds": 4},
            (1280, 720),
            4,
            "aac",
        ),
        (
            FAST,
            {
                "prompt": "morph",
                "image": inline(png((255, 0, 0))),
                "lastFrame": inline(png((0, 0, 255))),
            },
            {"durationSeconds": 8},
            (1280, 720),
            8,
            "aac",
        ),
        (
            STANDARD,
            {
                "prompt": "a cat",
                "referenceImages": [
                    {"image": inline(png(c)), "referenceType": "ASSET"}
                    for c in ((255, 0, 0), (0, 255, 0))
                ],
            },
            {"aspectRatio": "16:9"},
            (1280, 720),
            8,
            "aac",
        ),
        (
            VEO2,
            {"prompt": "no sound here"},
            {"durationSeconds": 5, "aspectRatio": "9:16"},
            (720, 1280),
            5,
            None,
        ),
    ],
)
async def test_each_mode_renders_an_mp4(
    emulator: Emulator,
    model: str,
    instance: dict[str, Any],
    parameters: dict[str, Any],
    size: tuple[int, int],
    seconds: int,
    audio: str | None,
) -> None:
    info = probe_video(await emulator.generate(model, instance, parameters))
    assert (info.width, info.height) == size
    assert_length(info, seconds, tolerance=0.15)
    assert info.video_codec == "h264" and info.audio_codec == audio
    assert info.size_bytes > 10_000


async def test_blocked_marker(emulator: Emulator) -> None:
    name = (await emulator.submit(FAST, {"prompt": "x [emulator:blocked]"})).json()["name"]
    operation = await emulator.wait(name)
    assert "error" not in operation
    result = operation["response"]["generateVideoResponse"]
    assert "generatedSamples" not in result
    assert result["raiMediaFilteredCount"] == 1
    assert result["raiMediaFilteredReasons"][0].startswith(
        "Veo could not generate videos because the input image contains content that has been "
        "flagged"
    )


async def test_fail_marker(emulator: Emulator) -> None:
    name = (await emulator.submit(FAST, {"prompt": "x [emulator:fail]"})).json()["name"]
    assert await emulator.wait(name) == {
        "name": name,
        "done": True,
        "error": {
            "code": 13,
            "message": "Video generation failed due to an internal error (emulated).",
        },
    }


async def test_corrupt_image_fails_the_operation_not_the_emulator(emulator: Emulator) -> None:
    # A valid PNG header over garbage passes the header check but cannot be decoded.
    broken = png()[:60] + b"\x00" * 200
    name = (
        await emulator.submit(
            FAST, {"prompt": "x", "image": inline(broken)}, {"durationSeconds": 4}
        )
    ).json()["name"]
    operation = await emulator.wait(name)
    assert operation["error"]["code"] == 13
    assert "Video generation failed" in operation["error"]["message"]


async def test_sample_count_gives_one_uri_per_sample(emulator: Emulator) -> None:
    # The Gemini API makes one video per request for Veo 3.x, and up to two for Veo 2.
    refused = await emulator.submit(FAST, {"prompt": "x"}, {"sampleCount": 2})
    assert refused.status_code == 400
    assert "sampleCount must be 1" in refused.json()["error"]["message"]
    name = (
        await emulator.submit(VEO2, {"prompt": "x"}, {"durationSeconds": 5, "sampleCount": 2})
    ).json()["name"]
    operation = await emulator.wait(name)
    uris = [
        s["video"]["uri"]
        for s in operation["response"]["generateVideoResponse"]["generatedSamples"]
    ]
    assert len(set(uris)) == 2
    for uri in uris:
        assert probe_video(await emulator.download(uri)).video_codec == "h264"


async def test_shutdown_deletes_rendered_files(make_emulator: Any, tmp_path: Path) -> None:
    async with make_emulator() as emulator:
        path = await emulator.generate(FAST, {"prompt": "x"}, {"durationSeconds": 4})
        assert path.stat().st_size > 0
        assert len(list((tmp_path / "videos").iterdir())) == 1
    # Its files are reachable only through the app's memory; gone with it, they are deleted.
    assert list((tmp_path / "videos").iterdir()) == []


async def test_shutdown_stops_renders_in_progress(make_emulator: Any, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with make_emulator(latency=(0.0, 0.0)) as emulator:
        await emulator.submit(FAST, {"prompt": "x"}, {"resolution": "4k"})
        await asyncio.sleep(0.3)
        stopping = loop.time()
    # A 4k render takes seconds; shutdown stops it between frames and leaves no file behind.
    assert loop.time() - stopping < 1.5
    videos = tmp_path / "videos"
    assert not (list(videos.iterdir()) if videos.exists() else [])
