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
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.emulator.render import RenderSpec, render_video
from veo_gateway.media.probe import probe_video

FAST = "veo-3.1-fast-generate-preview"
LITE = "veo-3.1-lite-generate-preview"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    """Google on both protocols, rendering at 24 fps (what Vertex AI asks of a source)."""
    yield from start_emulator(tmp_path)


@pytest.fixture
def cheap(tmp_path: Path) -> Iterator[str]:
    """Google at 8 fps, for the Gemini API's tests (its rules say nothing of the frame rate)."""
    config = EmulatorConfig(
        latency=(0.2, 0.2),
        api_keys=frozenset({"good-key"}),
        storage_dir=tmp_path / "cheap",
        render="once",
        fps=8,
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


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
    make_gateway: Callable[..., Gateway], cheap: str
) -> None:
    gateway = gemini(make_gateway, cheap)
    original = source(gateway)
    created = gateway.create({"model": FAST, "prompt": "the kite flies off", "video": original})
    assert created.status_code == 200, created.text
    assert created.json()["extended_from_video_id"] == original
    done = gateway.wait(created.json()["id"])
    assert done["status"] == "completed", done
    assert done["extended_from_video_id"] == original

    # Google was sent the file URI of the video it made, and an extension's parameters.
    first, second = predicts(cheap)
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


def sdk(gateway: Gateway, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_openai_extension_by_id_in_json_and_in_a_form(
    make_gateway: Callable[..., Gateway], cheap: str
) -> None:
    gateway = gemini(make_gateway, cheap)
    original = source(gateway)
    body = {"prompt": "further", "seconds": "8", "video": {"id": original}}
    keyed = {**gateway.headers(), "Idempotency-Key": "extend-1"}
    by_json = gateway.client.post("/v1/videos/extensions", json=body, headers=keyed)
    assert by_json.status_code == 200, by_json.text
    # A retry with the same key is the same task; another request with it, a 409.
    replay = gateway.client.post("/v1/videos/extensions", json=body, headers=keyed)
    assert replay.json()["id"] == by_json.json()["id"]
    assert replay.headers["idempotent-replayed"] == "true"
    other = {**body, "prompt": "elsewhere"}
    assert (
        gateway.client.post("/v1/videos/extensions", json=other, headers=keyed).status_code == 409
    )
    video = by_json.json()
    assert video["object"] == "video" and video["status"] == "queued", video
    assert (video["model"], video["seconds"], video["size"]) == (FAST, "11", "1280x720")
    assert video["extended_from_video_id"] == original and video["remixed_from_video_id"] is None
    by_form = extend(gateway, data={"prompt": "further", "seconds": "7", "video[id]": original})
    assert by_form.status_code == 200, by_form.text
    assert by_form.json()["extended_from_video_id"] == original
    for task in (video["id"], by_form.json()["id"]):
        assert gateway.wait(task)["status"] == "completed"
    sent = predicts(cheap)[1:]
    assert [body["instances"][0]["video"] for body in sent] == [
        sent[0]["instances"][0]["video"]
    ] * 2
    assert all(body["instances"][0]["prompt"] == "further" for body in sent)


def test_the_openai_sdk_extends_the_mp4_it_downloaded(
    make_gateway: Callable[..., Gateway], cheap: str, tmp_path: Path
) -> None:
    gateway = gemini(make_gateway, cheap)
    client = sdk(gateway)
    made = client.videos.create_and_poll(
        model=FAST, prompt="a paper boat", seconds="4", poll_interval_ms=100
    )
    assert made.status == "completed"
    path = tmp_path / "boat.mp4"
    client.videos.download_content(made.id).write_to_file(path)
    # The SDK sends the file in a multipart form: the gateway knows it by its digest.
    extended = client.videos.extend(prompt="the boat sails on", seconds="8", video=path.open("rb"))
    assert extended.status == "queued" and extended.seconds == "11"
    assert getattr(extended, "extended_from_video_id", None) == made.id
    done = client.videos.poll(extended.id, poll_interval_ms=100)
    assert done.status == "completed", done.error
    (body,) = predicts(cheap)[1:]
    assert set(body["instances"][0]["video"]) == {"uri"}
    # Another client's key does not know the file: to it, it is a foreign MP4.
    refused = sdk(gateway, KEY_B)
    with pytest.raises(openai.BadRequestError) as caught:
        refused.videos.extend(prompt="mine now", seconds="8", video=path.open("rb"))
    assert "extends only videos Veo generated" in str(caught.value)


FORM = {"prompt": "carry on", "seconds": "8"}


def test_a_foreign_mp4_is_refused_on_the_gemini_api(
    make_gateway: Callable[..., Gateway], cheap: str, tmp_path: Path
) -> None:
    files = {"video": ("clip.mp4", mp4(tmp_path, 320, 180), "video/mp4")}
    message = error(extend(gemini(make_gateway, cheap), data=FORM, files=files))
    assert "the uploaded video is not a video this gateway made there" in message
    assert "Vertex AI takes any MP4" in message
    assert predicts(cheap) == []


def test_a_foreign_mp4_is_extended_on_vertex_inline(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    files = {"video": ("clip.mp4", mp4(tmp_path, 320, 180), "video/mp4")}
    form = FORM
    on_vertex = make_gateway(**vertex_env(emulator))
    created = extend(on_vertex, data=form, files=files)
    assert created.status_code == 200, created.text
    assert created.json()["extended_from_video_id"] is None
    done = on_vertex.wait(created.json()["id"])
    assert done["status"] == "completed", done
    (body,) = predicts(emulator)
    video = body["instances"][0]["video"]
    assert video["mimeType"] == "video/mp4" and video["bytesBase64Encoded"].startswith("<")
    path = tmp_path / "extended.mp4"
    path.write_bytes(content(on_vertex, done["id"]))
    assert_length(probe_video(path), 1 + 7)
    # Uploaded again, it is known for the task that made it, and sent inline once more.
    again = extend(on_vertex, data=form, files={"video": ("x.mp4", path.read_bytes(), "video/mp4")})
    assert again.status_code == 200, again.text
    assert again.json()["extended_from_video_id"] == done["id"]
    assert again.json()["seconds"] == str(1 + 7 + 7)


def test_every_refusal_is_a_clear_4xx_before_anything_goes_upstream(
    make_gateway: Callable[..., Gateway], cheap: str, tmp_path: Path
) -> None:
    gateway = gemini(make_gateway, cheap)
    original = source(gateway)
    high = source(gateway, 8, resolution="1080p")
    failed = gateway.create({"model": FAST, "prompt": "[emulator:fail] a kite"}).json()["id"]
    assert gateway.wait(failed)["status"] == "failure"
    before = len(predicts(cheap))

    def spec(body: dict[str, Any], status: int = 400, key: str = KEY_A) -> str:
        answer = gateway.create({"model": FAST, "prompt": "on", **body}, key)
        return error(answer, status)

    assert "no video task with id" in spec({"video": original}, 404, KEY_B)
    assert "no video task with id" in spec({"video": "video_nope"}, 404)
    assert "no video task with id" in error(
        extend(gateway, KEY_B, json={"prompt": "on", "video": {"id": original}}), 404
    )
    assert "failed, there is nothing to extend" in spec({"video": failed})
    assert "cannot extend videos" in spec({"model": LITE, "video": original})
    assert "Veo 3.1 Fast" in spec({"model": LITE, "video": original})
    assert "exclude each other" in spec({"video": original, "images": ["https://x.test/a.png"]})
    assert "is 1080p" in spec({"video": high})
    assert "durationSeconds 8" in spec({"video": original, "metadata": {"durationSeconds": 4}})
    assert "seconds=8" in error(
        extend(gateway, json={"prompt": "on", "seconds": "4", "video": {"id": original}})
    )
    assert "video is required" in error(extend(gateway, json={"prompt": "on"}))
    not_mp4 = {"video": ("clip.mp4", b"GIF89a" + b"\0" * 64, "video/mp4")}
    assert "must be an MP4" in error(extend(gateway, data=FORM, files=not_mp4))
    # Google keeps a Gemini API video 2 days: past that, its URI names nothing.
    gateway.db.execute(
        "UPDATE tasks SET completed_at = completed_at - 3 * 86400 WHERE id = :id", id=original
    )
    assert "gone upstream" in spec({"video": original})
    assert len(predicts(cheap)) == before


def test_a_source_still_running_is_refused(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    from tests.support.servers import serve_app
    from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app

    config = EmulatorConfig(
        latency=(60.0, 60.0), api_keys=frozenset({"good-key"}), storage_dir=tmp_path / "slow"
    )
    with serve_app(create_emulator_app(config)) as url:
        gateway = gemini(make_gateway, url)
        running = gateway.create({"model": FAST, "prompt": "slow"}).json()["id"]
        message = error(gateway.create({"model": FAST, "prompt": "on", "video": running}))
        assert "is not completed yet" in message
        assert len(predicts(url)) == 1


@pytest.mark.parametrize(
    ("width", "height", "seconds", "fps", "words"),
    [
        (320, 240, 1, 24, "Google extends 16:9 or 9:16 videos only"),
        (320, 180, 1, 30, "extends 24 fps videos only"),
        (64, 36, 31, 24, "extends videos of 1 to 30 s"),
    ],
)
def test_vertex_refuses_an_upload_outside_its_rules(
    make_gateway: Callable[..., Gateway],
    emulator: str,
    tmp_path: Path,
    width: int,
    height: int,
    seconds: int,
    fps: int,
    words: str,
) -> None:
    gateway = make_gateway(**vertex_env(emulator))
    files = {"video": ("clip.mp4", mp4(tmp_path, width, height, seconds, fps), "video/mp4")}
    assert words in error(extend(gateway, data=FORM, files=files))
    assert predicts(emulator) == []
