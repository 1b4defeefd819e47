"""google-genai 3.x against the emulator on the Vertex AI path, and the adapter against 3.x.

Run by `tests/emulator/test_sdk3.py` in a subprocess that has 3.x first on `sys.path` (see
`tests/support/genai3.py`); the project's own venv keeps 2.x. The SDK is used as its users use
it today: `vertexai=True` with a project and the `global` location (its default when no location
is set: the host without a region prefix), its default API version `v1beta1`,
`generate_videos(model=..., source=GenerateVideosSource(...), config=...)` and `operations.get`,
for every mode the emulator serves, several samples and video extension
(`GenerateVideosSource(video=...)`). Then, for each logical request, the body 3.x sends and the
body the gateway's Vertex adapter sends are captured at the emulator and must be the same JSON.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import google.oauth2.credentials
import httpx
import pytest
from google import genai
from google.genai import types

if int(genai.__version__.split(".")[0]) < 3:
    raise ImportError(
        f"this module drives google-genai 3.x, found {genai.__version__}: "
        "run tests/emulator/test_sdk3.py, which runs it beside the project's 2.x"
    )

from tests.emulator.conftest import FAST, KEY, STANDARD
from tests.emulator.sdk_cases import BLUE, GREEN, RED, VERTEX_CASES, Case, sdk_image
from tests.support.servers import serve_app
from veo_gateway.domain.request import SourceVideo, VideoRequest
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.emulator.render import RenderSpec, render_video
from veo_gateway.media.probe import probe_video
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.vertex import StaticToken, VertexProvider

TOKEN = "vertex-test-token"
PROJECT, LOCATION = "demo-project", "global"
VERTEX_STANDARD = "veo-3.1-generate-001"
PLACE = f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models"


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # One render per output shape, shared by the operations that ask for it, at a low frame
    # rate: the SDK's side of the protocol is under test here, not the pictures
    # (tests/emulator/test_render.py).
    config = EmulatorConfig(
        latency=(0.1, 0.1),
        api_keys=frozenset({KEY}),
        vertex_tokens=frozenset({TOKEN}),
        storage_dir=tmp_path_factory.mktemp("videos"),
        render="once",
        fps=6,
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


@pytest.fixture
def client(emulator_url: str) -> genai.Client:
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=google.oauth2.credentials.Credentials(token=TOKEN),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=emulator_url),
    )


def _wait(client: genai.Client, operation: types.GenerateVideosOperation) -> Any:
    deadline = time.monotonic() + 120
    while not operation.done:
        assert time.monotonic() < deadline, "the operation did not finish"
        time.sleep(0.1)
        operation = client.operations.get(operation)
    return operation


def _last_submissions(url: str, count: int) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = httpx.get(f"{url}/_emulator/requests", timeout=30).json()
    return log[-count:]


def test_sdk3_sends_no_video_generation_to_the_gemini_api(emulator_url: str) -> None:
    # Why the Gemini API path is compared with 2.x (tests/emulator/test_sdk.py) and not 3.x.
    gemini = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=emulator_url))
    with pytest.raises(ValueError, match="only supported in Gemini Enterprise Agent Platform"):
        gemini.models.generate_videos(
            model=FAST, source=types.GenerateVideosSource(prompt="a kite")
        )


MODES = [
    ("text", types.GenerateVideosSource(prompt="a red kite over hills"), None, 1),
    (
        "image",
        types.GenerateVideosSource(prompt="the picture comes alive", image=sdk_image(RED)),
        types.GenerateVideosConfig(duration_seconds=4, aspect_ratio="9:16"),
        1,
    ),
    (
        "first and last frame",
        types.GenerateVideosSource(prompt="from red to blue", image=sdk_image(RED)),
        types.GenerateVideosConfig(last_frame=sdk_image(BLUE)),
        1,
    ),
    (
        "reference images",
        types.GenerateVideosSource(prompt="a walk in the park"),
        types.GenerateVideosConfig(
            reference_images=[
                types.VideoGenerationReferenceImage(
                    image=sdk_image(data), reference_type=types.VideoGenerationReferenceType.ASSET
                )
                for data in (RED, GREEN)
            ]
        ),
        1,
    ),
    (
        "number of videos",
        types.GenerateVideosSource(prompt="three takes"),
        types.GenerateVideosConfig(number_of_videos=3, duration_seconds=4),
        3,
    ),
]


@pytest.mark.parametrize(
    ("source", "config", "videos"), [m[1:] for m in MODES], ids=[m[0] for m in MODES]
)
def test_sdk3_generates_every_mode_on_the_global_endpoint(
    client: genai.Client,
    emulator_url: str,
    source: types.GenerateVideosSource,
    config: types.GenerateVideosConfig | None,
    videos: int,
) -> None:
    operation = client.models.generate_videos(model=VERTEX_STANDARD, source=source, config=config)
    assert operation.name and operation.name.startswith(f"{PLACE}/{VERTEX_STANDARD}/operations/")
    [sent] = _last_submissions(emulator_url, 1)
    assert sent["path"] == f"/v1beta1/{PLACE}/{VERTEX_STANDARD}:predictLongRunning"
    operation = _wait(client, operation)
    assert operation.error is None and operation.response is not None
    generated = operation.response.generated_videos or []
    assert len(generated) == videos
    for sample in generated:
        assert sample.video is not None and sample.video.mime_type == "video/mp4"
        assert sample.video.video_bytes and sample.video.video_bytes[4:8] == b"ftyp"


def test_sdk3_gets_gcs_objects_and_errors(client: genai.Client, emulator_url: str) -> None:
    stored = _wait(
        client,
        client.models.generate_videos(
            model=STANDARD,
            source=types.GenerateVideosSource(prompt="waves on a pier"),
            config=types.GenerateVideosConfig(
                duration_seconds=4, number_of_videos=2, output_gcs_uri="gs://bucket/out"
            ),
        ),
    )
    uris = [sample.video.uri for sample in stored.response.generated_videos or []]
    assert len(uris) == 2 and len(set(uris)) == 2
    for uri in uris:
        assert uri.startswith("gs://bucket/out/") and uri.endswith(".mp4")
        obj = uri.removeprefix("gs://bucket/").replace("/", "%2F")
        media = httpx.get(
            f"{emulator_url}/storage/v1/b/bucket/o/{obj}?alt=media",
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert media.status_code == 200 and media.content[4:8] == b"ftyp"

    failed = _wait(
        client,
        client.models.generate_videos(
            model=VERTEX_STANDARD, source=types.GenerateVideosSource(prompt="x [emulator:fail]")
        ),
    )
    assert failed.error is not None and failed.error["code"] == 13


@pytest.mark.parametrize("storage_uri", [None, "gs://veo-out/gateway"])
@pytest.mark.parametrize("case", VERTEX_CASES, ids=[case.name for case in VERTEX_CASES])
def test_vertex_adapter_sends_what_sdk3_sends(
    client: genai.Client, emulator_url: str, case: Case, storage_uri: str | None
) -> None:
    extra = {} if storage_uri is None else {"output_gcs_uri": storage_uri}
    client.models.generate_videos(
        model=VERTEX_STANDARD,
        source=types.GenerateVideosSource(prompt=case.prompt, image=case.sdk_image()),
        config=case.sdk_config(**extra),
    )

    async def adapter() -> None:
        async with UpstreamHttp(timeout=30) as http:
            provider = VertexProvider(
                project=PROJECT,
                location=LOCATION,
                tokens=StaticToken(TOKEN),
                client=http,
                base_url=emulator_url,
                storage_uri=storage_uri,
            )
            await provider.submit(VERTEX_STANDARD, case.request(VERTEX_STANDARD))

    asyncio.run(adapter())
    sent, ours = _last_submissions(emulator_url, 2)
    # 3.x speaks v1beta1, the adapter the GA v1: the same resource, the same body.
    assert sent["path"] == f"/v1beta1/{PLACE}/{VERTEX_STANDARD}:predictLongRunning"
    assert ours["path"] == f"/v1/{PLACE}/{VERTEX_STANDARD}:predictLongRunning"
    assert ours["body"] == sent["body"]


def test_sdk3_extends_an_mp4_as_the_adapter_does(
    client: genai.Client, emulator_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A 1 s 24 fps clip (what Vertex AI asks of a source), not one of the emulator's 6 fps.
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    render_video(RenderSpec(prompt="c", width=320, height=180, seconds=1, fps=24), path)
    data = path.read_bytes()
    config = types.GenerateVideosConfig(duration_seconds=8, resolution="720p", aspect_ratio="16:9")
    source = types.GenerateVideosSource(
        prompt="and then", video=types.Video(video_bytes=data, mime_type="video/mp4")
    )
    operation = _wait(
        client, client.models.generate_videos(model=VERTEX_STANDARD, source=source, config=config)
    )
    assert operation.error is None, operation.error
    whole = path.with_name("whole.mp4")
    whole.write_bytes(operation.response.generated_videos[0].video.video_bytes)
    assert abs(probe_video(whole).duration - (1 + 7)) < 0.3

    request = VideoRequest[Any](
        model=VERTEX_STANDARD,
        prompt="and then",
        aspect_ratio="16:9",
        duration_seconds=8,
        resolution="720p",
        video=SourceVideo(data=data),
    )

    async def adapter() -> None:
        async with UpstreamHttp(timeout=30) as http:
            provider = VertexProvider(
                project=PROJECT,
                location=LOCATION,
                tokens=StaticToken(TOKEN),
                client=http,
                base_url=emulator_url,
            )
            await provider.submit(VERTEX_STANDARD, request)

    asyncio.run(adapter())
    sent, ours = _last_submissions(emulator_url, 2)
    assert set(sent["body"]["instances"][0]["video"]) == {"bytesBase64Encoded", "mimeType"}
    assert ours["body"] == sent["body"]
