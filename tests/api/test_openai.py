"""The OpenAI Videos API shape, driven by the official `openai` SDK against the real app."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.conftest import KEY_A, KEY_B, Gateway
from tests.support.media import assert_length, data_uri, make_image
from veo_gateway.media.probe import probe_video

FAST = "veo-3.1-fast-generate-preview"
STANDARD = "veo-3.1-generate-preview"


def sdk(gateway: Gateway, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_create_and_poll_retrieve_and_download(gateway: Gateway, tmp_path: Path) -> None:
    client = sdk(gateway)
    video = client.videos.create(model=FAST, prompt="a paper boat", seconds="4", size="720x1280")
    assert video.object == "video" and video.status == "queued" and video.progress == 0
    assert (video.seconds, video.size, video.model) == ("4", "720x1280", FAST)
    assert video.prompt == "a paper boat"

    done = client.videos.create_and_poll(
        model=FAST, prompt="a paper boat", seconds="4", size="1280x720", poll_interval_ms=100
    )
    assert done.status == "completed" and done.progress == 100 and done.completed_at
    assert done.error is None
    again = client.videos.retrieve(done.id)
    assert again.id == done.id and again.status == "completed"

    path = tmp_path / "boat.mp4"
    client.videos.download_content(done.id).write_to_file(path)
    info = probe_video(path)
    assert (info.width, info.height) == (1280, 720)
    assert_length(info, 4)

    thumbnail = client.videos.download_content(done.id, variant="thumbnail")
    assert thumbnail.response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumbnail.content)) as image:
        assert image.format == "JPEG" and image.size[0] == 640
    sprites = client.videos.download_content(done.id, variant="spritesheet")
    with Image.open(io.BytesIO(sprites.content)) as image:
        assert image.format == "JPEG" and image.size == (4 * 320, 4 * 180)


def test_input_reference_as_a_file_and_as_an_image_url(gateway: Gateway) -> None:
    client = sdk(gateway)
    upload = ("first.png", make_image(color=(250, 10, 10)), "image/png")
    video = client.videos.create_and_poll(
        model=FAST, prompt="it moves", seconds="4", input_reference=upload, poll_interval_ms=100
    )
    assert video.status == "completed", video.error
    # OpenAI's JSON form, with the reference as a data URL.
    response = gateway.client.post(
        "/v1/videos",
        headers=gateway.headers(),
        json={
            "model": FAST,
            "prompt": "it moves",
            "seconds": 4,
            "input_reference": {"image_url": data_uri(make_image())},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "queued" and body["seconds"] == "4" and body["size"] == "1280x720"
    assert gateway.wait(body["id"])["status"] == "completed"
    # The same in a form, as `input_reference[image_url]` (how form encoders flatten it).
    response = gateway.client.post(
        "/v1/videos",
        headers=gateway.headers(),
        data={
            "model": FAST,
            "prompt": "it moves",
            "seconds": "4",
            "input_reference[image_url]": data_uri(make_image()),
        },
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"model": FAST, "seconds": "12"}, "it makes clips of 4, 6, 8 seconds"),
        ({"model": FAST, "size": "1024x1792"}, "use one of 1280x720, 720x1280, 1920x1080"),
        (
            {"model": "sora-2"},
            "served models: veo-3.1-generate-preview, veo-3.1-fast-generate-preview",
        ),
        ({"model": "veo-2.0-generate-001", "size": "1920x1080"}, "it offers 1280x720, 720x1280"),
        (
            {"model": FAST, "size": "1920x1080", "seconds": "4"},
            f"size 1920x1080 needs seconds=8 on {FAST}; got seconds=4",
        ),
    ],
)
def test_refusals_reach_the_sdk_in_words(
    gateway: Gateway, arguments: dict[str, Any], words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).videos.create(prompt="p", **arguments)
    error = caught.value
    assert error.status_code == 400 and words in error.message
    assert error.body is not None and error.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_a_failed_task_reads_as_openai_error(gateway: Gateway) -> None:
    video = sdk(gateway).videos.create_and_poll(
        model=FAST, prompt="x [emulator:fail]", seconds="4", poll_interval_ms=100
    )
    assert video.status == "failed" and video.error is not None
    assert video.error.code == "generation_failed"
    assert "internal error (emulated)" in video.error.message


def test_spec_tasks_keep_the_spec_shape(gateway: Gateway) -> None:
    body = gateway.create({"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}}).json()
    assert body["status"] == "" and body["task_id"] == body["id"]
    final = gateway.wait(body["id"])
    assert final["status"] == "completed" and "seconds" not in final


def test_list_pages_through_own_videos_only(gateway: Gateway) -> None:
    client = sdk(gateway)
    mine = [client.videos.create(model=FAST, prompt=f"clip {i}", seconds="4").id for i in range(5)]
    sdk(gateway, KEY_B).videos.create(model=FAST, prompt="bob's", seconds="4")
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == mine[::-1][:2] and first.has_more
    every = [video.id for video in client.videos.list(limit=2)]  # the SDK follows `after`
    assert every == mine[::-1]
    oldest_first = [video.id for video in client.videos.list(limit=3, order="asc")]
    assert oldest_first == mine
    refused = gateway.client.get("/v1/videos?limit=0", headers=gateway.headers())
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "limit"
    unknown = gateway.client.get("/v1/videos?after=video_nope", headers=gateway.headers())
    assert unknown.status_code == 400


def test_delete_removes_content_and_cancels_unfinished(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(emulator_latency="4")
    client = sdk(gateway)
    running = client.videos.create(model=FAST, prompt="slow", seconds="4")
    status = gateway.get(running.id)
    assert status.json()["status"] in ("queued", "in_progress")
    assert 1000 <= int(status.headers["openai-poll-after-ms"]) <= 10000
    deleted = client.videos.delete(running.id)
    assert deleted.deleted and deleted.object == "video.deleted" and deleted.id == running.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(running.id)
    (row,) = gateway.db.rows("select state, fail_reason from tasks where id = :id", id=running.id)
    state, reason = row["state"], row["fail_reason"]
    assert state == "cancelled" and "deleted by its owner" in reason
    # Its slot upstream is free again.
    (credential,) = gateway.client.get("/readyz").json()["credentials"]
    assert credential["in_flight"] == 0
    assert not (gateway.settings.data_dir / "inputs" / running.id).exists()

    finished = client.videos.create_and_poll(
        model=FAST, prompt="quick", seconds="4", poll_interval_ms=200
    )
    video_file = gateway.settings.data_dir / "videos" / f"{finished.id}.mp4"
    assert video_file.exists()
    client.videos.download_content(finished.id, variant="thumbnail")
    client.videos.delete(finished.id)
    assert not list(video_file.parent.glob(f"{finished.id}.*"))
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(finished.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(finished.id)


def test_idempotent_creates_under_a_real_race(gateway: Gateway) -> None:
    body = {"model": FAST, "prompt": "once", "metadata": {"durationSeconds": 4}}
    barrier = threading.Barrier(6)
    answers: list[httpx.Response] = []

    def create() -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            barrier.wait()
            answers.append(
                client.post(
                    "/v1/videos",
                    json=body,
                    headers={**gateway.headers(), "Idempotency-Key": "order-42"},
                )
            )

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    (task_id,) = ids
    assert gateway.wait(task_id)["status"] == "completed"
    assert gateway.db.scalar("select count(*) from tasks") == 1  # one task, so one upstream job

    different = gateway.client.post(
        "/v1/videos",
        json={**body, "prompt": "twice"},
        headers={**gateway.headers(), "Idempotency-Key": "order-42"},
    )
    assert different.status_code == 409
    assert "different request" in different.json()["error"]["message"]
    # Keys belong to one client key: another client's "order-42" is a new task.
    other = gateway.client.post(
        "/v1/videos", json=body, headers={**gateway.headers(KEY_B), "Idempotency-Key": "order-42"}
    )
    assert other.status_code == 200 and other.json()["id"] != task_id
    # The SDK's own retries reuse its key: same answer.
    replay = gateway.client.post(
        "/v1/videos", json=body, headers={**gateway.headers(), "Idempotency-Key": "order-42"}
    )
    assert replay.json()["id"] == task_id and replay.headers["idempotent-replayed"] == "true"


def test_idempotency_keys_expire_after_a_day(gateway: Gateway) -> None:
    body = {"model": FAST, "prompt": "once", "metadata": {"durationSeconds": 4}}
    headers = {**gateway.headers(), "Idempotency-Key": "daily-report"}
    first = gateway.client.post("/v1/videos", json=body, headers=headers).json()["id"]
    gateway.db.execute("update idempotency_keys set created_at = created_at - 86401")
    # A day later the key is free again: even another body is a new task, not a 409.
    later = gateway.client.post("/v1/videos", json={**body, "prompt": "again"}, headers=headers)
    assert later.status_code == 200 and later.json()["id"] != first
    replay = gateway.client.post("/v1/videos", json={**body, "prompt": "again"}, headers=headers)
    assert replay.json()["id"] == later.json()["id"]
