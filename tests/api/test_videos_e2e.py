"""The four modes end to end: real app, real SQLite file, the real emulator over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Gateway
from tests.support.media import assert_length, b64, data_uri, make_image
from tests.support.servers import send_bytes, serve_files
from veo_gateway.media.probe import probe_video

FAST = "veo-3.1-fast-generate-preview"
STANDARD = "veo-3.1-generate-preview"


def _download(gateway: Gateway, task_id: str, tmp_path: Path) -> Path:
    response = gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers())
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(response.content)
    path = tmp_path / f"{task_id}.mp4"
    path.write_bytes(response.content)
    return path


def test_text_to_video_reply_shape_and_video(gateway: Gateway, tmp_path: Path) -> None:
    response = gateway.create(
        {
            "model": FAST,
            "prompt": "一只可爱的橘猫在花园里追逐蝴蝶",
            "metadata": {"durationSeconds": 4, "aspectRatio": "9:16"},
        }
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == body["task_id"] and body["id"].startswith("video_")
    assert body["object"] == "video" and body["model"] == FAST
    assert body["status"] == "" and body["progress"] == 0
    assert isinstance(body["created_at"], int)
    # The row exists before the reply: an immediate GET finds it.
    assert gateway.get(body["id"]).status_code == 200

    final = gateway.wait(body["id"])
    assert final["status"] == "completed", final
    assert final["progress"] == 100 and final["completed_at"] >= final["created_at"]
    info = probe_video(_download(gateway, body["id"], tmp_path))
    assert (info.width, info.height) == (720, 1280)
    assert_length(info, 4)
    assert info.video_codec == "h264" and info.audio_codec == "aac"


def test_image_to_video_from_base64_data_uri_and_url(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    png, jpeg = make_image("PNG"), make_image("JPEG", color=(10, 200, 10))
    with serve_files({"/cat.jpg": send_bytes(jpeg, "image/jpeg")}) as images:
        gateway = make_gateway(allow_private_image_urls=True)
        ids = [
            gateway.create(
                {
                    "model": FAST,
                    "prompt": "p",
                    "images": [value],
                    "metadata": {"durationSeconds": 4},
                }
            ).json()["id"]
            for value in (b64(png), data_uri(png), f"{images}/cat.jpg")
        ]
        for task_id in ids:
            final = gateway.wait(task_id)
            assert final["status"] == "completed", final
            info = probe_video(_download(gateway, task_id, tmp_path))
            assert (info.width, info.height) == (1280, 720)


def test_interpolation_two_frames(gateway: Gateway, tmp_path: Path) -> None:
    first, last = make_image(color=(255, 0, 0)), make_image(color=(0, 0, 255))
    body = gateway.create(
        {
            "model": FAST,
            "prompt": "smooth",
            "images": [b64(first), b64(last)],
            "metadata": {"durationSeconds": 8},
        }
    ).json()
    final = gateway.wait(body["id"])
    assert final["status"] == "completed", final
    info = probe_video(_download(gateway, body["id"], tmp_path))
    assert_length(info, 8)


def test_reference_images_on_the_standard_model(gateway: Gateway, tmp_path: Path) -> None:
    refs = [
        {"image": {"bytesBase64Encoded": data_uri(make_image(color=c))}, "referenceType": "asset"}
        for c in ((255, 0, 0), (0, 255, 0))
    ]
    body = gateway.create(
        {
            "model": STANDARD,
            "prompt": "a cat",
            "metadata": {"aspectRatio": "16:9", "durationSeconds": 8, "referenceImages": refs},
        }
    ).json()
    final = gateway.wait(body["id"])
    assert final["status"] == "completed", final
    info = probe_video(_download(gateway, body["id"], tmp_path))
    assert (info.width, info.height) == (1280, 720) and info.audio_codec == "aac"


def test_1080p(gateway: Gateway, tmp_path: Path) -> None:
    body = gateway.create(
        {"model": FAST, "prompt": "wide", "metadata": {"resolution": "1080p", "durationSeconds": 8}}
    ).json()
    assert gateway.wait(body["id"])["status"] == "completed"
    info = probe_video(_download(gateway, body["id"], tmp_path))
    assert (info.width, info.height) == (1920, 1080)


def test_upstream_failure_and_safety_block_reach_fail_reason(gateway: Gateway) -> None:
    failed = gateway.create({"model": FAST, "prompt": "x [emulator:fail]"}).json()
    blocked = gateway.create({"model": FAST, "prompt": "x [emulator:blocked]"}).json()
    final = gateway.wait(failed["id"])
    assert final["status"] == "failure"
    assert "internal error" in final["fail_reason"]
    final = gateway.wait(blocked["id"])
    assert final["status"] == "failure"
    assert "safety" in final["fail_reason"] and "flagged" in final["fail_reason"]
    content = gateway.client.get(f"/v1/videos/{blocked['id']}/content", headers=gateway.headers())
    assert content.status_code == 400
    assert content.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_progress_moves_and_never_goes_backwards(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(emulator_latency="3", poll_interval=0.5)
    task_id = gateway.create(
        {"model": FAST, "prompt": "slow", "metadata": {"durationSeconds": 4}}
    ).json()["id"]
    seen = []
    deadline = time.monotonic() + 60
    while True:
        body = gateway.get(task_id).json()
        seen.append(body["progress"])
        if body["status"] == "completed":
            break
        assert body["progress"] < 100
        assert time.monotonic() < deadline, f"task {task_id} not completed in 60 s: {body}"
        time.sleep(0.2)
    assert seen == sorted(seen)
    assert len({p for p in seen if 0 < p < 100}) >= 3, seen
    assert seen[-1] == 100


@pytest.mark.parametrize("timeout", [0.5])
def test_timeout_fails_the_task(make_gateway: Callable[..., Gateway], timeout: float) -> None:
    gateway = make_gateway(emulator_latency="30", task_timeout=timeout, poll_interval=0.2)
    task_id = gateway.create({"model": FAST, "prompt": "never"}).json()["id"]
    final = gateway.wait(task_id, timeout=30)
    assert final["status"] == "failure" and "timed out" in final["fail_reason"]


def _most_in_progress_at_once(gateway: Gateway, count: int, **metadata: object) -> int:
    """Create `count` tasks, watch them to the end; how many were in progress together."""
    ids = [
        gateway.create(
            {"model": FAST, "prompt": f"task {i}", "metadata": {"durationSeconds": 4, **metadata}}
        ).json()["id"]
        for i in range(count)
    ]
    most = 0
    deadline = time.monotonic() + 90
    while True:
        states = [gateway.get(task_id).json()["status"] for task_id in ids]
        most = max(most, states.count("in_progress"))
        if all(state in ("completed", "failure") for state in states):
            assert states == ["completed"] * count
            return most
        assert time.monotonic() < deadline, f"tasks not finished in 90 s: {states}"
        time.sleep(0.05)


def test_many_tasks_run_upstream_at_once(make_gateway: Callable[..., Gateway]) -> None:
    # Ten tasks of 20 s each upstream: all ten must be in flight together, which a serial
    # worker (submit, wait, poll, next) could never show. 20 s leaves room for ten creates on a
    # loaded machine (parallel test workers): the overlap must not depend on how fast they are.
    gateway = make_gateway(emulator_latency="20", poll_interval=0.3)
    assert _most_in_progress_at_once(gateway, 10) == 10


def test_max_in_flight_holds_the_rest_queued(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(emulator_latency="1", poll_interval=0.2, max_in_flight=2)
    assert _most_in_progress_at_once(gateway, 5) == 2


def test_an_upstream_refusal_at_create_reaches_the_client(gateway: Gateway, tmp_path: Path) -> None:
    # Unknown metadata goes to Google untouched; the emulator refuses this one as Google would,
    # while the POST waits for its inline submission: Google's answer, and nothing kept.
    response = gateway.create({"model": FAST, "prompt": "p", "metadata": {"fps": 24}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "fps" in error["message"]
    assert gateway.db.scalar("select count(*) from tasks") == 0
    assert not any((gateway.settings.data_dir / "inputs").iterdir())


def test_a_later_upstream_refusal_fails_the_task_with_googles_message(
    make_gateway: Callable[..., Gateway],
) -> None:
    # One slot, taken by a slow task: the second create cannot be submitted inline, so Google's
    # refusal comes later and lands in fail_reason.
    gateway = make_gateway(emulator_latency="2", max_in_flight=1)
    slow = gateway.create({"model": FAST, "prompt": "slow", "metadata": {"durationSeconds": 4}})
    refused = gateway.create({"model": FAST, "prompt": "p", "metadata": {"fps": 24}})
    assert refused.status_code == 200
    final = gateway.wait(refused.json()["id"])
    assert final["status"] == "failure"
    assert "fps" in final["fail_reason"]
    assert gateway.wait(slow.json()["id"])["status"] == "completed"
