"""Several samples and Veo's other options through the real app, a real database and the real
emulator, on both protocols: what each upstream kind takes, every sample stored, served with
`content?index=N` and charged, a withheld one not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.api.test_google_env import TOKEN, start_emulator, vertex_env
from tests.conftest import KEY_A, Gateway
from tests.support.s3 import Bucket
from veo_gateway.client import Client, ClientError
from veo_gateway.media.probe import check_whole

FAST = "veo-3.1-fast-generate-preview"
STANDARD = "veo-3.1-generate-preview"
FAST_GA = "veo-3.1-fast-generate-001"
VEO2 = "veo-2.0-generate-001"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    yield from start_emulator(tmp_path)


def sent(emulator: str) -> list[dict[str, Any]]:
    """The predictLongRunning bodies the emulator received."""
    log = httpx.get(f"{emulator}/_emulator/requests").json()
    return [entry["body"] for entry in log if entry["path"].endswith(":predictLongRunning")]


def content(gateway: Gateway, task_id: str, **params: Any) -> httpx.Response:
    return gateway.client.get(
        f"/v1/videos/{task_id}/content", params=params, headers=gateway.headers()
    )


def usage_total(gateway: Gateway) -> dict[str, Any]:
    body: dict[str, Any] = gateway.client.get("/v1/usage", headers=gateway.headers()).json()
    return dict(body["total"])


def test_vertex_makes_every_sample_asked_for_and_each_is_served_and_charged(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    gateway = make_gateway(**vertex_env(emulator))
    metadata = {
        "durationSeconds": 4,
        "sampleCount": 3,
        "generateAudio": False,
        "seed": 7,
        "enhancePrompt": True,
        "compressionQuality": "lossless",
    }
    created = gateway.create({"model": STANDARD, "prompt": "three foxes", "metadata": metadata})
    assert created.status_code == 200, created.text
    assert created.json()["sample_count"] == 3
    final = gateway.wait(created.json()["id"])
    assert final["status"] == "completed" and final["sample_count"] == 3, final
    assert "samples_filtered" not in final
    # Google's JSON, in the spelling its SDK sends.
    (body,) = sent(emulator)
    assert body["parameters"] == {**metadata, "compressionQuality": "LOSSLESS"}

    task_id = final["id"]
    stored = sorted(p.name for p in (gateway.settings.data_dir / "videos").glob(f"{task_id}*"))
    assert stored == [f"{task_id}.1.mp4", f"{task_id}.2.mp4", f"{task_id}.mp4"]
    for index in range(3):
        video = content(gateway, task_id, index=index)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        (tmp_path / f"{index}.mp4").write_bytes(video.content)
        check_whole(tmp_path / f"{index}.mp4")
    assert content(gateway, task_id).content == content(gateway, task_id, index=0).content
    thumbnail = content(gateway, task_id, index=2, variant="thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert f'filename="{task_id}.2.thumbnail.jpg"' in thumbnail.headers["content-disposition"]

    past = content(gateway, task_id, index=3)
    assert past.status_code == 400, past.text
    error = past.json()["error"]
    assert error["param"] == "index" and error["status"] == "OUT_OF_RANGE"
    assert "3 sample(s), index 0 to 2" in error["message"]
    assert content(gateway, task_id, index="one").json()["error"]["param"] == "index"

    # Three 4-second videos without sound, at Vertex's audio-off rate of the standard tier.
    total = usage_total(gateway)
    assert total["videos"] == 3 and total["seconds"] == 12
    assert total["cost_usd"] == pytest.approx(3 * 4 * 0.20)


def test_a_sample_the_filters_withheld_is_not_charged(
    make_gateway: Callable[..., Gateway], emulator: str
) -> None:
    gateway = make_gateway(**vertex_env(emulator))
    body = {
        "model": FAST,
        "prompt": "two boats [emulator:filter-one]",
        "metadata": {"durationSeconds": 4, "sampleCount": 2},
    }
    final = gateway.wait(gateway.create(body).json()["id"])
    assert final["status"] == "completed", final
    assert final["sample_count"] == 1 and final["samples_filtered"] == 1
    assert content(gateway, final["id"], index=0).status_code == 200
    assert content(gateway, final["id"], index=1).status_code == 400
    total = usage_total(gateway)
    assert total["videos"] == 1 and total["seconds"] == 4
    assert total["cost_usd"] == pytest.approx(4 * 0.10)


def two_kinds(tmp_path: Path, emulator: str) -> Path:
    """A Gemini API upstream serving the previews and Veo 2, and Vertex AI serving a GA id."""
    path = tmp_path / "veo.toml"
    path.write_text(
        f'[[upstreams]]\nname = "emu"\nkind = "gemini"\napi_keys = ["good-key"]\n'
        f'base_url = "{emulator}"\n\n'
        f'[[upstreams]]\nname = "vx"\nkind = "vertex"\nproject = "proj-1"\n'
        f'location = "global"\naccess_token = "{TOKEN}"\nbase_url = "{emulator}"\n\n'
        f'[[routes]]\nmodel = "{FAST}"\ntargets = [{{ upstream = "emu" }}]\n'
        f'[[routes]]\nmodel = "{VEO2}"\ntargets = [{{ upstream = "emu" }}]\n'
        f'[[routes]]\nmodel = "{FAST_GA}"\ntargets = [{{ upstream = "vx" }}]\n'
    )
    return path


def test_the_gemini_api_takes_what_googles_sdk_sends_there(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    # One video per request for Veo 3.x there, and none of Vertex's options: each refusal
    # says so, names a model served by Vertex AI here, and comes before anything goes upstream.
    gateway = make_gateway(config=two_kinds(tmp_path, emulator))
    refusals = {
        "sampleCount": ({"sampleCount": 2}, f"sampleCount must be 1 for {FAST} on the Gemini API"),
        "seed": ({"seed": 3}, "seed isn't supported by the Gemini API"),
        "generateAudio": ({"generateAudio": False}, "Vertex AI takes it"),
        "resizeMode": ({"resizeMode": "pad"}, "resizeMode isn't supported"),
        "compressionQuality": ({"compressionQuality": "optimized"}, "Gemini API"),
    }
    for key, (metadata, expected) in refusals.items():
        response = gateway.create({"model": FAST, "prompt": "p", "metadata": metadata})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == f"metadata.{key}" and expected in error["message"], error
        assert FAST_GA in error["message"]
    bad = gateway.create({"model": FAST, "prompt": "p", "metadata": {"enhancePrompt": "yes"}})
    assert bad.json()["error"]["param"] == "metadata.enhancePrompt"
    assert sent(emulator) == []
    assert gateway.db.scalar("select count(*) from tasks") == 0

    # Veo 2 makes two there: both stored and served.
    metadata = {"durationSeconds": 5, "sampleCount": 2, "enhancePrompt": False}
    created = gateway.create({"model": VEO2, "prompt": "two", "metadata": metadata})
    assert created.status_code == 200, created.text
    final = gateway.wait(created.json()["id"])
    assert final["status"] == "completed" and final["sample_count"] == 2, final
    first, second = (content(gateway, final["id"], index=i) for i in (0, 1))
    assert first.status_code == second.status_code == 200
    assert first.content[4:8] == second.content[4:8] == b"ftyp"
    (body,) = sent(emulator)
    assert body["parameters"]["sampleCount"] == 2 and body["parameters"]["enhancePrompt"] is False
    too_many = gateway.create({"model": VEO2, "prompt": "p", "metadata": {"sampleCount": 3}})
    assert "from 1 to 2" in too_many.json()["error"]["message"]
    # GET /v1/models says all of it, per model and route.
    listed = gateway.client.get("/v1/models", headers=gateway.headers()).json()
    models = {entry["id"]: entry for entry in listed["data"]}
    fast, veo2, ga = models[FAST], models[VEO2], models[FAST_GA]
    assert fast["capabilities"]["upstreams"] == ["gemini"]
    assert fast["capabilities"]["max_samples"] == 1 and veo2["capabilities"]["max_samples"] == 2
    assert list(fast["capabilities"]["options"]) == ["sampleCount", "enhancePrompt"]
    assert ga["capabilities"]["upstreams"] == ["vertex"]
    assert ga["capabilities"]["options"]["sampleCount"] == {"min": 1, "max": 4, "default": 1}
    assert ga["capabilities"]["options"]["compressionQuality"]["values"] == [
        "optimized",
        "lossless",
    ]
    assert ga["pricing"]["by_resolution"]["720p"] == {
        "per_second": 0.10,
        "per_second_without_audio": 0.08,
    }
    assert fast["pricing"]["by_resolution"]["720p"] == {"per_second": 0.10}
    assert "generateAudio" not in veo2["capabilities"]["options"]
    # On Vertex AI the same options are taken (and resizeMode needs an image to fit).
    vertex = gateway.create({"model": FAST_GA, "prompt": "p", "metadata": {"resizeMode": "pad"}})
    assert "needs an image" in vertex.json()["error"]["message"]


def test_the_clients_read_the_sample_count_and_download_each(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    gateway = make_gateway(**vertex_env(emulator))
    body = {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4, "sampleCount": 2}}
    task_id = gateway.wait(gateway.create(body).json()["id"])["id"]
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0)
    video = client.videos.retrieve(task_id)
    assert video.status == "completed" and (video.model_extra or {})["sample_count"] == 2
    second = client.videos.download_content(task_id, extra_query={"index": 1})
    assert second.read()[4:8] == b"ftyp"
    with pytest.raises(openai.BadRequestError) as refused:
        client.videos.download_content(task_id, extra_query={"index": 2})
    assert "index 0 to 1" in str(refused.value)
    # The gateway's own client too.
    with Client(gateway.url, KEY_A) as ours:
        assert ours.get(task_id).sample_count == 2
        path = ours.download(task_id, tmp_path / "second.mp4", index=1)
        check_whole(path)
        with pytest.raises(ClientError, match="index 0 to 1"):
            ours.download(task_id, tmp_path / "third.mp4", index=2)


def test_openais_remix_edit_and_characters_are_refused_with_what_to_do(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0)
    mp4 = ("clip.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    calls: dict[str, Callable[[], object]] = {
        "no remix operation": lambda: client.videos.remix("video_123", prompt="bluer"),
        "no edit operation": lambda: client.videos.edit(prompt="bluer", video=mp4),
        "no characters": lambda: client.videos.create_character(name="Ada", video=mp4),
        "no characters ": lambda: client.videos.get_character("char_1"),
    }
    for expected, call in calls.items():
        with pytest.raises(openai.BadRequestError) as refused:
            call()
        body = refused.value.response.json()["error"]
        assert body["status"] == "INVALID_ARGUMENT" and body["type"] == "invalid_request_error"
        assert f"Veo has {expected.strip()}" in body["message"]
        assert "POST /v1/videos" in body["message"]
    # The key is checked first, as everywhere.
    assert gateway.client.post("/v1/videos/edits").status_code == 401


def test_every_sample_lands_in_the_bucket(
    make_gateway: Callable[..., Gateway], emulator: str, s3_bucket: Bucket
) -> None:
    gateway = make_gateway(storage_url=s3_bucket.url, **vertex_env(emulator))
    body = {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4, "sampleCount": 3}}
    final = gateway.wait(gateway.create(body).json()["id"])
    assert final["status"] == "completed" and final["sample_count"] == 3, final
    task_id = final["id"]
    keys = [f"videos/{task_id}/video.mp4", f"videos/{task_id}/video-1.mp4"]
    keys.append(f"videos/{task_id}/video-2.mp4")
    assert s3_bucket.keys() == sorted(keys)
    assert s3_bucket.pending_uploads() == []
    for index, key in enumerate(keys):
        served = content(gateway, task_id, index=index)
        assert served.status_code == 200 and served.content == s3_bucket.read(key)
    # DELETE takes every sample with it.
    assert gateway.client.delete(f"/v1/videos/{task_id}", headers=gateway.headers()).is_success
    assert s3_bucket.keys() == []
