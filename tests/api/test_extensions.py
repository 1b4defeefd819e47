"""Video extension through the real app, a real database and the real emulator on both
protocols: the spec's `video` field, OpenAI's `POST /v1/videos/extensions` (JSON `{"id"}`, a
form's `video[id]`, the `openai` SDK's `videos.extend` with the downloaded MP4, a foreign MP4),
what Google is sent, what the new task is and costs, and every refusal before anything goes
upstream."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import openai
import pytest

from tests.api.test_google_env import start_emulator, vertex_env
from tests.conftest import KEY_A, KEY_B, Gateway
from tests.support.media import assert_length
from veo_gateway.emulator.render import RenderSpec, render_video
from veo_gateway.media.probe import probe_video

FAST = "veo-3.1-fast-generate-preview"
LITE = "veo-3.1-lite-generate-preview"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    yield from start_emulator(tmp_path)


def gemini(make_gateway: Callable[..., Gateway], emulator: str) -> Gateway:
    return make_gateway(gemini_api_key="good-key", gemini_base_url=emulator)


def predicts(emulator: str) -> list[dict[str, Any]]:
    """The predictLongRunning bodies the emulator received, in order."""
    log = httpx.get(f"{emulator}/_emulator/requests").json()
    return [entry["body"] for entry in log if entry["path"].endswith(":predictLongRunning")]


def source(gateway: Gateway, seconds: int = 4, **metadata: Any) -> str:
    """A completed task's id: the video to extend."""
    body = {"model": FAST, "prompt": "a red kite", "metadata": {"durationSeconds": seconds}}
    body["metadata"].update(metadata)
    created = gateway.create(body)
    assert created.status_code == 200, created.text
    done = gateway.wait(created.json()["id"])
    assert done["status"] == "completed", done
    return str(done["id"])


def content(gateway: Gateway, task_id: str, key: str = KEY_A) -> bytes:
    answer = gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers(key))
    assert answer.status_code == 200, answer.text
    return answer.content


def first_frames(data: bytes, count: int) -> list[Any]:
    """The first `count` frames of an MP4, as grey-scale pixel lists (small, to compare)."""
    frames = []
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            frames.append(list(frame.to_image().convert("L").resize((32, 18)).tobytes()))
            if len(frames) == count:
                break
    return frames


def difference(a: list[int], b: list[int]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def mp4(tmp_path: Path, width: int, height: int, seconds: int = 1, fps: int = 24) -> bytes:
    """A small MP4 this gateway never made."""
    path = tmp_path / f"foreign-{width}x{height}-{fps}.mp4"
    spec = RenderSpec(
        prompt="a foreign clip", width=width, height=height, seconds=seconds, fps=fps, audio=False
    )
    render_video(spec, path)
    return path.read_bytes()


def extend(gateway: Gateway, key: str = KEY_A, **kwargs: Any) -> httpx.Response:
    return gateway.client.post("/v1/videos/extensions", headers=gateway.headers(key), **kwargs)


def error(answer: httpx.Response, status: int = 400) -> str:
    assert answer.status_code == status, answer.text
    return str(answer.json()["error"]["message"])


def test_spec_extension_on_the_gemini_api_continues_its_source(
    make_gateway: Callable[..., Gateway], emulator: str
) -> None:
    gateway = gemini(make_gateway, emulator)
    original = source(gateway)
    created = gateway.create({"model": FAST, "prompt": "the kite flies off", "video": original})
    assert created.status_code == 200, created.text
    assert created.json()["extended_from_video_id"] == original
    done = gateway.wait(created.json()["id"])
    assert done["status"] == "completed", done
    assert done["extended_from_video_id"] == original

    # Google was sent the file URI of the video it made, and an extension's parameters.
    first, second = predicts(emulator)
    assert "video" not in first["instances"][0]
    (uri,) = gateway.db.rows("SELECT upstream_refs FROM tasks WHERE id = :id", id=original)
    assert second["instances"][0]["video"] == {"uri": _refs(uri)[0]}
    assert second["parameters"] == {
        "aspectRatio": "16:9",
        "durationSeconds": 8,
        "resolution": "720p",
    }

    # The new video is the whole: the source's 4 s, then 7 s more, starting with its frames.
    whole, before = content(gateway, done["id"]), content(gateway, original)
    path = Path(gateway.settings.data_dir) / "whole.mp4"
    path.write_bytes(whole)
    info = probe_video(path)
    assert (info.width, info.height) == (1280, 720)
    assert_length(info, 11)
    for mine, theirs in zip(first_frames(whole, 24), first_frames(before, 24), strict=True):
        assert difference(mine, theirs) < 8
    # Charged for the 7 s Google adds; the source's seconds were charged with the source.
    usage = gateway.client.get("/v1/usage", headers=gateway.headers()).json()
    assert usage["total"]["seconds"] == 4 + 7, usage


def _refs(value: Any) -> list[str]:
    import json

    refs = value["upstream_refs"]
    return list(json.loads(refs) if isinstance(refs, str) else refs)
