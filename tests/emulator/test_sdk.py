"""Google's own client reads the emulator: the google-genai SDK polls and downloads over HTTP.

The installed SDK (3.x) no longer submits Gemini API video jobs, so the submission below is the
body the 2.x SDK sends (URL-safe base64, referenceType "ASSET"); polling and download are the
SDK's own code, which is what checks the operation and URI shapes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import types

from tests.emulator.conftest import KEY, STANDARD, png
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.2, 0.2), api_keys=frozenset({KEY}), storage_dir=tmp_path / "videos"
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def _submit(url: str, prompt: str) -> str:
    image = {
        "bytesBase64Encoded": base64.urlsafe_b64encode(png()).decode(),
        "mimeType": "image/png",
    }
    response = httpx.post(
        f"{url}/v1beta/models/{STANDARD}:predictLongRunning",
        headers={"x-goog-api-key": KEY},
        json={
            "instances": [
                {"prompt": prompt, "referenceImages": [{"image": image, "referenceType": "ASSET"}]}
            ],
            "parameters": {"durationSeconds": 8, "aspectRatio": "16:9", "sampleCount": 1},
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


def _wait(client: genai.Client, name: str) -> types.GenerateVideosOperation:
    operation = types.GenerateVideosOperation(name=name)
    deadline = time.monotonic() + 60
    while not operation.done:
        assert time.monotonic() < deadline, "the operation did not finish"
        time.sleep(0.2)
        operation = client.operations.get(operation)
    return operation


def test_sdk_polls_and_downloads_over_http(emulator_url: str) -> None:
    client = genai.Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=emulator_url, api_version="v1beta")
    )
    operation = _wait(client, _submit(emulator_url, "a cat"))
    assert operation.error is None and operation.response is not None
    videos = operation.response.generated_videos or []
    assert len(videos) == 1 and videos[0].video is not None
    video = videos[0].video
    assert video.uri and video.uri.startswith("https://127.0.0.1:")
    # The SDK takes the file id out of the https URI and fetches it from its own (http) base.
    data = client.files.download(file=video)
    assert data[4:8] == b"ftyp" and len(data) > 10_000

    blocked = _wait(client, _submit(emulator_url, "a cat [emulator:blocked]"))
    assert blocked.response is not None
    assert blocked.response.rai_media_filtered_count == 1
    assert not blocked.response.generated_videos
