"""Gemini Omni through both dialects, end to end: the real app, its database and the emulator's
Interactions API, with only the model name changed from a Veo request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import KEY_A, Gateway
from tests.support.media import assert_length, data_uri, make_image
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.media.probe import probe_video

OMNI = "gemini-omni-1.2-flash"
SMALL = {"durationSeconds": 4, "resolution": "360p"}


def _content(gateway: Gateway, task_id: str, path: Path) -> Path:
    response = gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers())
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    path.write_bytes(response.content)
    return path


@pytest.mark.parametrize("images", [[], [data_uri(make_image())]], ids=["text", "image"])
def test_spec_dialect_makes_an_omni_video(
    gateway: Gateway, tmp_path: Path, images: list[str]
) -> None:
    body = {
        "model": OMNI,
        "prompt": "a lighthouse at dusk",
        "images": images,
        "metadata": {**SMALL, "aspectRatio": "9:16"},
    }
    created = gateway.create(body)
    assert created.status_code == 200, created.text
    done = gateway.wait(created.json()["id"])
    assert done["status"] == "completed", done
    info = probe_video(_content(gateway, done["id"], tmp_path / "omni.mp4"))
    assert (info.width, info.height) == (360, 640)
    assert_length(info, 4)


def test_openai_sdk_makes_an_omni_video(gateway: Gateway, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0)
    done = client.videos.create_and_poll(
        model=OMNI,
        prompt="a paper boat",
        seconds="4",  # type: ignore[arg-type]
        size="640x360",  # type: ignore[arg-type]
        poll_interval_ms=100,
    )
    assert done.status == "completed" and done.error is None
    assert (done.seconds, done.size) == ("4", "640x360")
    path = tmp_path / "boat.mp4"
    client.videos.download_content(done.id).write_to_file(path)
    info = probe_video(path)
    assert (info.width, info.height) == (640, 360)
    assert_length(info, 4)


REFUSED = [
    ({"seed": 3}, "metadata.seed", "Interactions API"),
    ({"negativePrompt": "rain"}, "metadata.negativePrompt", "Interactions API"),
    ({"durationSeconds": 5}, "metadata.durationSeconds", "4, 6, 8"),
    ({"resolution": "8k"}, "metadata.resolution", "360p, 720p, 1080p, 4k"),
]


@pytest.mark.parametrize(("metadata", "param", "words"), REFUSED)
def test_rules_omni_does_not_share_are_clear_400s(
    gateway: Gateway, metadata: dict[str, Any], param: str, words: str
) -> None:
    response = gateway.create({"model": OMNI, "prompt": "x", "metadata": metadata})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_a_last_frame_is_refused_and_360p_is_omnis_alone(gateway: Gateway) -> None:
    frames = [data_uri(make_image()), data_uri(make_image(color=(0, 0, 200)))]
    response = gateway.create({"model": OMNI, "prompt": "x", "images": frames})
    assert response.status_code == 400 and "last frame" in response.json()["error"]["message"]
    veo = gateway.client.post(
        "/v1/videos",
        json={"model": "veo-3.1-fast-generate-preview", "prompt": "x", "size": "640x360"},
        headers=gateway.headers(),
    )
    assert veo.status_code == 400 and "not available" in veo.json()["error"]["message"]


def test_models_list_omni_with_its_options(gateway: Gateway) -> None:
    models = gateway.client.get("/v1/models", headers=gateway.headers()).json()["data"]
    [row] = [m for m in models if m["id"] == OMNI]
    capabilities = row["capabilities"]
    assert capabilities["protocol"] == "interactions" and capabilities["upstream_extension"]
    assert capabilities["extension"] is False  # Omni extension is not served here
    assert capabilities["resolutions"] == ["360p", "720p", "1080p", "4k"]
    assert capabilities["modes"] == ["text", "image", "reference"]
    assert capabilities["options"] == {} and capabilities["max_samples"] == 1
    assert set(row["pricing"]["by_resolution"]) == {"360p", "720p", "1080p", "4k"}


@pytest.fixture
def slow_emulator(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(60.0, 60.0), api_keys=frozenset({"omni-key"}), storage_dir=tmp_path / "emu"
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def test_delete_cancels_the_interaction_at_google(
    make_gateway: Callable[..., Gateway], slow_emulator: str
) -> None:
    gateway = make_gateway(gemini_api_key="omni-key", gemini_base_url=slow_emulator)
    created = gateway.create({"model": OMNI, "prompt": "a long take", "metadata": SMALL})
    task_id = created.json()["id"]
    for _ in range(300):
        if gateway.get(task_id).json()["status"] == "in_progress":
            break
        time.sleep(0.05)
    assert gateway.get(task_id).json()["status"] == "in_progress"
    deleted = gateway.client.delete(f"/v1/videos/{task_id}", headers=gateway.headers())
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    stats = httpx.get(f"{slow_emulator}/_emulator/stats").json()
    assert stats["cancels"] == 1


def test_a_failed_cancel_does_not_fail_the_delete(
    make_gateway: Callable[..., Gateway], slow_emulator: str
) -> None:
    gateway = make_gateway(gemini_api_key="omni-key", gemini_base_url=slow_emulator)
    created = gateway.create({"model": OMNI, "prompt": "a long take", "metadata": SMALL})
    task_id = created.json()["id"]
    assert gateway.get(task_id).json()["status"] == "in_progress"
    # The interaction is cancelled behind the gateway's back: Google refuses a second cancel.
    operation = gateway.db.scalar("SELECT operation_name FROM tasks WHERE id = :id", id=task_id)
    refused = httpx.post(
        f"{slow_emulator}/v1beta/{operation}/cancel", headers={"x-goog-api-key": "omni-key"}
    )
    assert refused.status_code == 200
    deleted = gateway.client.delete(f"/v1/videos/{task_id}", headers=gateway.headers())
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
