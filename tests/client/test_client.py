"""The Python client, blocking and asyncio, against a real gateway on the built-in emulator."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import KEY_A, KEY_B, Gateway
from tests.support.media import assert_length, make_image
from tests.support.servers import free_port
from veo_gateway.cli_client import generate
from veo_gateway.client import ApiError, AsyncClient, Client, ClientError, Video, common
from veo_gateway.client.common import EtaTracker, image_value, sniff_mime
from veo_gateway.domain import catalog
from veo_gateway.media.probe import probe_video

PROMPT = "a red kite over a green hill"


def test_create_wait_and_download(gateway: Gateway, tmp_path: Path) -> None:
    seen: list[Video] = []
    with Client(gateway.url, KEY_A) as client:
        created = client.create(PROMPT, duration=4, aspect_ratio="9:16")
        assert created.id.startswith("video_")
        assert created.status in ("", "in_progress")
        assert created.model == "veo-3.1-fast-generate-preview"

        video = client.wait(created.id, on_progress=seen.append, poll_interval=0.05)
        assert video.status == "completed" and video.done and not video.failed
        assert video.progress == 100
        assert seen and seen[-1] == video
        assert [v.progress for v in seen] == sorted(v.progress for v in seen)

        sizes: list[tuple[int, int | None]] = []
        (tmp_path / "out").mkdir()
        out = client.download(
            video.id, tmp_path / "out" / "kite.mp4", on_bytes=lambda n, t: sizes.append((n, t))
        )
    info = probe_video(out)
    assert (info.width, info.height) == (720, 1280)
    assert_length(info, 4)
    assert sizes[-1] == (out.stat().st_size, out.stat().st_size)
    assert list((tmp_path / "out").iterdir()) == [out]  # no temporary file left behind


def test_image_to_video_from_a_local_file(gateway: Gateway, tmp_path: Path) -> None:
    frame = tmp_path / "frame.png"
    frame.write_bytes(make_image("PNG", (1280, 720)))
    with Client(gateway.url, KEY_A) as client:
        video = client.wait(client.create(PROMPT, image=frame).id, poll_interval=0.05)
        assert video.status == "completed", video.fail_reason
        out = client.download(video.id, tmp_path / "out.mp4")
    info = probe_video(out)
    assert (info.width, info.height) == (1280, 720)


def test_validation_error_carries_the_servers_message(gateway: Gateway) -> None:
    expected = gateway.create(
        {
            "model": "veo-3.1-fast-generate-preview",
            "prompt": PROMPT,
            "metadata": {"durationSeconds": 5},
        }
    ).json()["error"]
    with Client(gateway.url, KEY_A) as client, pytest.raises(ApiError) as caught:
        client.create(PROMPT, duration=5)
    assert caught.value.status_code == 400
    assert caught.value.message == expected["message"]
    assert caught.value.param == "metadata.durationSeconds"


def test_failed_task_is_returned_with_its_reason(gateway: Gateway, tmp_path: Path) -> None:
    with Client(gateway.url, KEY_A) as client:
        video = client.wait(client.create(f"{PROMPT} [emulator:fail]").id, poll_interval=0.05)
        assert video.failed and video.fail_reason
        with pytest.raises(ApiError) as caught:
            client.download(video.id, tmp_path / "never.mp4")
    assert caught.value.status_code == 400
    assert video.fail_reason in caught.value.message
    assert not (tmp_path / "never.mp4").exists()


def test_an_unwritable_target_is_a_client_error(gateway: Gateway, tmp_path: Path) -> None:
    with Client(gateway.url, KEY_A) as client:
        video = client.wait(client.create(PROMPT).id, poll_interval=0.05)
        with pytest.raises(ClientError, match="cannot write"):
            client.download(video.id, tmp_path / "missing-dir" / "out.mp4")


def test_another_keys_task_and_a_wrong_key(gateway: Gateway) -> None:
    with Client(gateway.url, KEY_A) as alice, Client(gateway.url, KEY_B) as bob:
        video = alice.create(PROMPT)
        with pytest.raises(ApiError) as caught:
            bob.get(video.id)
        assert caught.value.status_code == 404
    with Client(gateway.url, "not-a-key") as stranger, pytest.raises(ApiError) as caught:
        stranger.get(video.id)
    assert caught.value.status_code == 401


def test_listing_reads_every_page(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "LIST_PAGE", 2)  # five tasks then take three pages
    with Client(gateway.url, KEY_B) as client:
        ids = [client.create(f"{PROMPT} {i}", duration=4).id for i in range(5)]
        assert [v.id for v in client.list()] == ids[::-1]
        assert [v.id for v in client.list(3)] == ids[:1:-1]
    with Client(gateway.url, KEY_A) as other:
        assert not set(ids) & {v.id for v in other.list()}


async def test_async_listing_reads_every_page(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "LIST_PAGE", 2)
    async with AsyncClient(gateway.url, KEY_B) as client:
        ids = [(await client.create(f"{PROMPT} {i}", duration=4)).id for i in range(3)]
        assert [v.id for v in await client.list()] == ids[::-1]
        assert [v.id for v in await client.list(1)] == ids[-1:]


def test_connection_refused_is_a_client_error() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", KEY_A) as client,
        pytest.raises(ClientError) as caught,
    ):
        client.get("video_x")
    assert "cannot reach the gateway" in caught.value.message
    assert caught.value.status_code is None


def test_missing_image_file_is_said_before_sending(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="cannot read image"):
        image_value(tmp_path / "nope.png")


def test_image_values() -> None:
    png = make_image("PNG")
    assert image_value(png).startswith("data:image/png;base64,")
    assert sniff_mime(make_image("JPEG")) == "image/jpeg"
    assert sniff_mime(make_image("WEBP")) == "image/webp"
    assert image_value("https://example.com/a.png") == "https://example.com/a.png"
    assert image_value("data:image/png;base64,AAAA") == "data:image/png;base64,AAAA"


def test_eta_from_the_progress_rate() -> None:
    now = [100.0]
    tracker = EtaTracker(clock=lambda: now[0])
    assert (
        tracker.update(Video(id="v", model="m", status="in_progress", progress=10)).eta_seconds
        is None
    )
    now[0] = 110.0
    # 20 points in 10 s: the 70 left take 35 s.
    assert (
        tracker.update(Video(id="v", model="m", status="in_progress", progress=30)).eta_seconds
        == 35.0
    )
    given = Video(id="v", model="m", status="in_progress", progress=40, eta_seconds=3.0)
    assert tracker.update(given).eta_seconds == 3.0


async def test_async_client_end_to_end(gateway: Gateway, tmp_path: Path) -> None:
    frame = tmp_path / "frame.png"
    frame.write_bytes(make_image("PNG", (1280, 720)))
    seen: list[int] = []

    async def on_progress(video: Video) -> None:
        seen.append(video.progress)

    async with AsyncClient(gateway.url, KEY_A) as client:
        created = await client.create(PROMPT, image=str(frame), duration=6)
        video = await client.wait(created.id, on_progress=on_progress, poll_interval=0.05)
        assert video.status == "completed", video.fail_reason
        assert seen and seen[-1] == 100
        out = await client.download(video.id, tmp_path / "async.mp4")
        with pytest.raises(ApiError) as caught:
            await client.create(PROMPT, duration=5)
    assert caught.value.status_code == 400 and caught.value.message
    info = probe_video(out)
    assert_length(info, 6)


def test_base_url_and_key_from_the_environment(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEO_GATEWAY_BASE_URL", gateway.url)
    monkeypatch.setenv("VEO_GATEWAY_API_KEY", KEY_A)
    with Client() as client:
        assert client.base_url == gateway.url
        assert client.create(PROMPT).id.startswith("video_")


def test_one_default_model_everywhere(gateway: Gateway) -> None:
    # The client's, the CLI's, the OpenAI dialect's and the playground's (GET /v1/models) default
    # is the catalog's: the fast tier.
    assert common.DEFAULT_MODEL == catalog.DEFAULT_MODEL == "veo-3.1-fast-generate-preview"
    assert inspect.signature(generate).parameters["model"].default == catalog.DEFAULT_MODEL
    models = gateway.client.get("/v1/models", headers=gateway.headers()).json()
    assert models["default_model"] == catalog.DEFAULT_MODEL
    openai = gateway.create({"prompt": PROMPT, "seconds": "4"})
    assert openai.status_code == 200, openai.text
    assert openai.json()["model"] == catalog.DEFAULT_MODEL


def test_delete(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(emulator_latency="60")
    with Client(gateway.url, KEY_A) as client:
        running = client.create(PROMPT)
        client.delete(running.id)
        with pytest.raises(ApiError) as caught:
            client.delete(running.id)
    assert caught.value.status_code == 404
    assert gateway.get(running.id).status_code == 404


async def test_async_delete(gateway: Gateway) -> None:
    async with AsyncClient(gateway.url, KEY_A) as client:
        video = await client.create(PROMPT)
        await client.delete(video.id)
        with pytest.raises(ApiError):
            await client.get(video.id)


def test_extend_a_video_blocking_and_async(gateway: Gateway) -> None:
    import asyncio

    with Client(gateway.url, KEY_A) as client:
        source = client.wait(client.create(PROMPT, duration=4).id, poll_interval=0.05)
        extended = client.extend(source.id, "the kite flies off")
        assert extended.status in ("", "in_progress") and extended.id != source.id
        with pytest.raises(ApiError, match="no video task with id"):
            client.extend("video_nope", "p")

    async def extend_async() -> str:
        async with AsyncClient(gateway.url, KEY_A) as client:
            return (await client.extend(source.id, "again")).id

    for task in (extended.id, asyncio.run(extend_async())):
        assert gateway.get(task).json()["extended_from_video_id"] == source.id
