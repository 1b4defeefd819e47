"""Google's own client against the emulator, and the gateway's adapters against Google's client.

The official google-genai SDK (a 2.x release: the last line that still sends `generate_videos`
to the Gemini API) drives the emulator unchanged over HTTP: `generate_videos`, `operations.get`
and `files.download` on the Gemini API path, and `generate_videos` and `operations.get` on the
Vertex AI path (inline bytes and `gs://` results). Then, for the same logical requests, the
bodies the SDK sends and the bodies the gateway's adapters send are captured at the emulator and
compared: they must be the same JSON, images included (the log keeps a digest of the base64
text as sent).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.oauth2.credentials
import httpx
import pytest
from google import genai
from google.genai import types

from tests.emulator.conftest import FAST, KEY, png
from tests.emulator.sdk_cases import CASES, VERTEX_CASES, Case, sdk_image
from tests.support.media import assert_length
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.media.probe import probe_video
from veo_gateway.providers.gemini import GeminiProvider
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.vertex import StaticToken, VertexProvider

TOKEN = "vertex-test-token"
PROJECT, LOCATION = "demo-project", "us-central1"
VERTEX_STANDARD = "veo-3.1-generate-001"


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.2, 0.2),
        api_keys=frozenset({KEY}),
        vertex_tokens=frozenset({TOKEN}),
        storage_dir=tmp_path / "videos",
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def gemini_client(url: str) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=url))


def vertex_client(url: str) -> genai.Client:
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=google.oauth2.credentials.Credentials(token=TOKEN),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=url),
    )


def _wait(client: genai.Client, operation: types.GenerateVideosOperation) -> Any:
    deadline = time.monotonic() + 60
    while not operation.done:
        assert time.monotonic() < deadline, "the operation did not finish"
        time.sleep(0.2)
        operation = client.operations.get(operation)
    return operation


def test_sdk_generates_polls_and_downloads_on_the_gemini_api(
    emulator_url: str, tmp_path: Path
) -> None:
    client = gemini_client(emulator_url)
    operation = client.models.generate_videos(
        model=FAST,
        prompt="a lighthouse at dusk",
        image=sdk_image(png()),
        config=types.GenerateVideosConfig(duration_seconds=4, aspect_ratio="9:16"),
    )
    assert operation.name and operation.name.startswith(f"models/{FAST}/operations/")
    operation = _wait(client, operation)
    assert operation.error is None and operation.response is not None
    videos = operation.response.generated_videos or []
    assert len(videos) == 1 and videos[0].video is not None
    video = videos[0].video
    assert video.uri and video.uri.startswith("https://127.0.0.1:")
    # The SDK takes the file id out of the https URI and fetches it from its own (http) base.
    data = client.files.download(file=video)
    path = tmp_path / "sdk.mp4"
    path.write_bytes(data)
    info = probe_video(path)
    assert (info.width, info.height) == (720, 1280)
    assert_length(info, 4)

    blocked = _wait(
        client, client.models.generate_videos(model=FAST, prompt="a cat [emulator:blocked]")
    )
    assert blocked.response is not None
    assert blocked.response.rai_media_filtered_count == 1
    assert not blocked.response.generated_videos


def test_sdk_on_vertex_gets_inline_bytes_and_gcs_objects(emulator_url: str, tmp_path: Path) -> None:
    client = vertex_client(emulator_url)
    operation = client.models.generate_videos(
        model=VERTEX_STANDARD,
        prompt="waves on a pier",
        config=types.GenerateVideosConfig(duration_seconds=4),
    )
    assert operation.name and operation.name.startswith(
        f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{VERTEX_STANDARD}/"
    )
    operation = _wait(client, operation)
    assert operation.error is None and operation.response is not None
    video = (operation.response.generated_videos or [])[0].video
    assert video is not None and video.mime_type == "video/mp4"
    assert video.video_bytes and video.video_bytes[4:8] == b"ftyp"

    stored = _wait(
        client,
        client.models.generate_videos(
            model=VERTEX_STANDARD,
            prompt="waves on a pier",
            config=types.GenerateVideosConfig(duration_seconds=4, output_gcs_uri="gs://bucket/out"),
        ),
    )
    uri = (stored.response.generated_videos or [])[0].video.uri
    assert uri.startswith("gs://bucket/out/") and uri.endswith(".mp4")
    obj = uri.removeprefix("gs://bucket/").replace("/", "%2F")
    url = f"{emulator_url}/storage/v1/b/bucket/o/{obj}?alt=media"
    assert httpx.get(url, timeout=30).status_code == 401  # the stand-in wants the token too
    media = httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert media.status_code == 200 and media.content[4:8] == b"ftyp"

    failed = _wait(
        client, client.models.generate_videos(model=VERTEX_STANDARD, prompt="x [emulator:fail]")
    )
    assert failed.error is not None and failed.error["code"] == 13


# -- conformance: the same logical request, sent by the SDK and by the gateway's adapter ------


def _captured(url: str) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = httpx.get(f"{url}/_emulator/requests", timeout=30).json()
    return log


async def _adapter_submit(
    provider: GeminiProvider | VertexProvider, model: str, case: Case
) -> None:
    await provider.submit(model, case.request(model))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_gemini_adapter_sends_what_the_sdk_sends(emulator_url: str, case: Case) -> None:
    sdk = gemini_client(emulator_url)  # held: a dropped Client closes its connection pool
    sdk.models.generate_videos(
        model=case.model, prompt=case.prompt, image=case.sdk_image(), config=case.sdk_config()
    )

    async def adapter() -> None:
        async with UpstreamHttp(timeout=30) as client:
            provider = GeminiProvider(api_key=KEY, base_url=emulator_url, client=client)
            await _adapter_submit(provider, case.model, case)

    asyncio.run(adapter())
    sent, ours = _captured(emulator_url)
    assert ours["path"] == sent["path"] == f"/v1beta/models/{case.model}:predictLongRunning"
    assert ours["body"] == sent["body"]


@pytest.mark.parametrize("storage_uri", [None, "gs://veo-out/gateway"])
@pytest.mark.parametrize("case", VERTEX_CASES, ids=[case.name for case in VERTEX_CASES])
def test_vertex_adapter_sends_what_the_sdk_sends(
    emulator_url: str, case: Case, storage_uri: str | None
) -> None:
    extra = {} if storage_uri is None else {"output_gcs_uri": storage_uri}
    sdk = vertex_client(emulator_url)
    sdk.models.generate_videos(
        model=VERTEX_STANDARD,
        prompt=case.prompt,
        image=case.sdk_image(),
        config=case.sdk_config(**extra),
    )

    async def adapter() -> None:
        async with UpstreamHttp(timeout=30) as client:
            provider = VertexProvider(
                project=PROJECT,
                location=LOCATION,
                tokens=StaticToken(TOKEN),
                client=client,
                base_url=emulator_url,
                storage_uri=storage_uri,
            )
            await _adapter_submit(provider, VERTEX_STANDARD, case)

    asyncio.run(adapter())
    sent, ours = _captured(emulator_url)
    place = f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{VERTEX_STANDARD}"
    # The SDK speaks v1beta1, the adapter the GA v1: the same resource, the same body.
    assert sent["path"] == f"/v1beta1/{place}:predictLongRunning"
    assert ours["path"] == f"/v1/{place}:predictLongRunning"
    assert ours["body"] == sent["body"]
