"""The emulator's Interactions API (Gemini Omni) on both protocols, over its real HTTP routes."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import KEY, Emulator, png
from tests.support.media import assert_length
from veo_gateway.emulator.faults import Faults
from veo_gateway.media.probe import probe_video

OMNI = "gemini-omni-1.2-flash"
TOKEN = "vertex-token"
PLACE = "projects/demo/locations/global/interactions"
VERTEX = {"authorization": f"Bearer {TOKEN}"}
Make = Callable[..., AbstractAsyncContextManager[Emulator]]


def create_body(prompt: str = "a red kite", **fmt: Any) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    return {
        "model": OMNI,
        "background": True,
        "input": [{"type": "user_input", "content": content}],
        "response_modalities": ["video"],
        "response_format": {"type": "video", "resolution": "360p", "duration": "4s", **fmt},
    }


async def wait(emulator: Emulator, path: str, **headers: str) -> dict[str, Any]:
    for _ in range(600):
        response = await emulator.client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != "in_progress":
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} still in progress")


def video_of(interaction: dict[str, Any]) -> dict[str, Any]:
    """The last video block of the last model_output step, as the SDK's output_video."""
    outputs = [s for s in interaction["steps"] if s["type"] == "model_output"]
    block: dict[str, Any] = [c for c in outputs[-1]["content"] if c["type"] == "video"][-1]
    return block


@pytest.mark.parametrize("version", ["v1", "v1beta"])
async def test_gemini_api_text_to_video_by_uri(
    make_emulator: Make, tmp_path: Path, version: str
) -> None:
    async with make_emulator(fps=6, render="once") as emulator:
        body = create_body(aspect_ratio="9:16", delivery="uri")
        created = await emulator.client.post(f"/{version}/interactions", json=body)
        assert created.status_code == 200, created.text
        assert created.json()["status"] == "in_progress"
        done = await wait(emulator, f"/{version}/interactions/{created.json()['id']}")
        assert done["status"] == "completed" and done["model"] == OMNI
        block = video_of(done)
        assert block["mime_type"] == "video/mp4"
        assert block["uri"].startswith("https://") and ":download?alt=media" in block["uri"]
        path = await emulator.download(block["uri"])
        info = probe_video(path)
        assert (info.width, info.height) == (360, 640)
        assert_length(info, 4)


async def test_vertex_image_to_video_inline(make_emulator: Make) -> None:
    async with make_emulator(fps=6, vertex_tokens=frozenset({TOKEN})) as emulator:
        body = create_body("the picture moves", aspect_ratio="16:9")
        image = {
            "type": "image",
            "data": base64.b64encode(png()).decode(),
            "mime_type": "image/png",
        }
        body["input"][0]["content"].append(image)
        body["generation_config"] = {"video_config": {"task": "image_to_video"}}
        created = await emulator.client.post(f"/v1beta1/{PLACE}", json=body, headers=VERTEX)
        assert created.status_code == 200, created.text
        done = await wait(emulator, f"/v1beta1/{PLACE}/{created.json()['id']}", **VERTEX)
        assert done["status"] == "completed"
        path = emulator.tmp_path / "inline.mp4"
        path.write_bytes(base64.b64decode(video_of(done)["data"]))
        info = probe_video(path)
        assert (info.width, info.height) == (640, 360)
        assert_length(info, 4)
        # The request log keeps a digest of the image, never its bytes.
        [logged] = (await emulator.client.get("/_emulator/requests")).json()
        assert logged["path"] == f"/v1beta1/{PLACE}"
        assert logged["body"]["input"][0]["content"][1]["data"].startswith("<")


async def test_vertex_uri_delivery_writes_to_cloud_storage(make_emulator: Make) -> None:
    async with make_emulator(fps=6, render="once", vertex_tokens=frozenset({TOKEN})) as emulator:
        body = create_body(delivery="uri", gcs_uri="gs://bucket/omni")
        created = await emulator.client.post(f"/v1/{PLACE}", json=body, headers=VERTEX)
        done = await wait(emulator, f"/v1/{PLACE}/{created.json()['id']}", **VERTEX)
        uri = video_of(done)["uri"]
        assert uri.startswith("gs://bucket/omni/")
        obj = uri.removeprefix("gs://bucket/").replace("/", "%2F")
        media = await emulator.client.get(f"/storage/v1/b/bucket/o/{obj}?alt=media", headers=VERTEX)
        assert media.status_code == 200 and media.content[4:8] == b"ftyp"


async def test_interactions_belong_to_their_key_and_cancel(make_emulator: Make) -> None:
    async with make_emulator(latency=(60.0, 60.0), api_keys=frozenset({KEY, "other"})) as emulator:
        created = await emulator.client.post("/v1/interactions", json=create_body())
        path = f"/v1/interactions/{created.json()['id']}"
        other = {"x-goog-api-key": "other"}
        assert (await emulator.client.get(path, headers=other)).status_code == 404
        assert (await emulator.client.post(f"{path}/cancel", headers=other)).status_code == 404
        assert (await emulator.client.get(path)).json()["status"] == "in_progress"
        cancelled = await emulator.client.post(f"{path}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert (await emulator.client.get(path)).json()["status"] == "cancelled"
        again = await emulator.client.post(f"{path}/cancel")
        assert again.status_code == 400 and again.json()["error"]["status"] == "FAILED_PRECONDITION"
        assert (await emulator.client.get("/_emulator/stats")).json()["cancels"] == 1


async def test_a_cancel_survives_a_restart(make_emulator: Make) -> None:
    async with make_emulator(latency=(60.0, 60.0), persist=True) as emulator:
        created = await emulator.client.post("/v1/interactions", json=create_body())
        path = f"/v1/interactions/{created.json()['id']}"
        await emulator.client.post(f"{path}/cancel")
    async with make_emulator(latency=(60.0, 60.0), persist=True) as emulator:
        assert (await emulator.client.get(path)).json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [
        ("x [emulator:blocked]", "failed", "safety"),
        ("x [emulator:fail]", "failed", "internal"),
        ("x [emulator:incomplete]", "incomplete", "incomplete"),
    ],
)
async def test_endings_carry_googles_reason(
    make_emulator: Make, prompt: str, status: str, code: str
) -> None:
    async with make_emulator(fps=6, render="once") as emulator:
        created = await emulator.client.post("/v1/interactions", json=create_body(prompt))
        done = await wait(emulator, f"/v1/interactions/{created.json()['id']}")
        assert done["status"] == status
        assert done["errors"][0]["code"] == code and done["errors"][0]["message"]
        assert "steps" not in done or all("content" not in s for s in done["steps"])


async def test_injected_outcome_faults_fail_interactions(make_emulator: Make) -> None:
    async with make_emulator(faults=Faults.parse("operation.blocked=1")) as emulator:
        created = await emulator.client.post("/v1/interactions", json=create_body())
        done = await wait(emulator, f"/v1/interactions/{created.json()['id']}")
        assert done["status"] == "failed" and done["errors"][0]["code"] == "safety"


async def test_quota_and_request_log(make_emulator: Make, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    async with make_emulator(latency=(60.0, 60.0), quota_rpm=1, request_log=log) as emulator:
        first = await emulator.client.post("/v1/interactions", json=create_body("one"))
        assert first.status_code == 200
        second = await emulator.client.post("/v1/interactions", json=create_body("two"))
        assert second.status_code == 429
        assert second.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["prompt"], e["status"]) for e in entries] == [("one", 200), ("two", 429)]
    assert entries[0]["operation"] == f"interactions/{first.json()['id']}"


REFUSALS = [
    ({"background": False}, "background"),
    ({"response_format": {"type": "video", "duration": "5s"}}, "duration"),
    ({"response_format": {"type": "video", "duration": "8"}}, "duration"),
    ({"response_format": {"type": "video", "resolution": "8k"}}, "resolution"),
    ({"response_format": {"type": "video", "aspect_ratio": "1:1"}}, "aspect_ratio"),
    ({"response_format": {"type": "video", "gcs_uri": "gs://b/x"}}, "gcs_uri"),
    ({"response_modalities": ["text"]}, "response_modalities"),
    ({"temperature": 1}, "temperature"),
    ({"generation_config": {"video_config": {"task": "extend"}}}, "extend"),
    ({"input": "   "}, "prompt"),
]


@pytest.mark.parametrize(("change", "word"), REFUSALS, ids=[word for _, word in REFUSALS])
async def test_refusals_are_googles_400(
    emulator: Emulator, change: dict[str, Any], word: str
) -> None:
    response = await emulator.client.post("/v1/interactions", json={**create_body(), **change})
    assert response.status_code == 400, response.text
    assert word in response.json()["error"]["message"]


async def test_vertex_uri_needs_a_bucket_and_unknown_models_are_404(make_emulator: Make) -> None:
    async with make_emulator() as emulator:
        body = create_body(delivery="uri")
        response = await emulator.client.post(f"/v1beta1/{PLACE}", json=body, headers=VERTEX)
        assert response.status_code == 400 and "gcs_uri" in response.json()["error"]["message"]
        unknown = {**create_body(), "model": "gemini-omni-flash-preview"}
        assert (await emulator.client.post("/v1/interactions", json=unknown)).status_code == 404
        anonymous = await emulator.client.post(
            "/v1/interactions", json=create_body(), headers={"x-goog-api-key": ""}
        )
        assert anonymous.status_code == 403
        unauthenticated = await emulator.client.post(f"/v1beta1/{PLACE}", json=create_body())
        assert unauthenticated.status_code == 401
