"""google-genai 3.x's Interactions client against the emulator's Gemini Omni, and the gateway's
Omni adapter against 3.x.

Run by `tests/emulator/test_omni_sdk3.py` in a subprocess that has 3.x first on `sys.path` (see
`tests/support/genai3.py`). The SDK is used as its users use it: `client.interactions.create(...,
background=True)` then `client.interactions.get(id)` until the interaction ends, on the Gemini
API (an API key, the SDK's default `v1`) and on Vertex AI (`v1beta1`, a project and the global
location), for text and image inputs; `interaction.output_video` must decode to an MP4 of the
shape asked for. Then, for each logical request, the body 3.x sends and the body the gateway's
adapter sends are captured at the emulator and must be the same JSON.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.oauth2.credentials
import httpx
import pytest
from google import genai
from google.genai import types

if int(genai.__version__.split(".")[0]) < 3:
    raise ImportError(f"this module drives google-genai 3.x, found {genai.__version__}")

from tests.emulator.conftest import KEY, png
from tests.support.servers import serve_app
from veo_gateway.domain.request import Image, ReferenceImage, VideoRequest
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.media.probe import probe_video
from veo_gateway.providers.gemini import GeminiProvider
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.omni import GEMINI_VERSION, VERTEX_VERSION, OmniProvider
from veo_gateway.providers.vertex import StaticToken, VertexProvider

TOKEN = "vertex-test-token"
PROJECT, LOCATION = "demo-project", "global"
OMNI = "gemini-omni-1.2-flash"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}/interactions"
RED, BLUE = png((220, 30, 30)), png((30, 30, 220))


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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


def _client(url: str, vertex: bool) -> genai.Client:
    options = types.HttpOptions(base_url=url)
    if not vertex:
        return genai.Client(api_key=KEY, http_options=options)
    credentials = google.oauth2.credentials.Credentials(token=TOKEN)  # type: ignore[no-untyped-call]
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        http_options=options,
    )


def _block(data: bytes) -> dict[str, str]:
    return {"type": "image", "data": base64.b64encode(data).decode(), "mime_type": "image/png"}


def _logged(url: str, count: int) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = httpx.get(f"{url}/_emulator/requests", timeout=30).json()
    return log[-count:]


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini-api", "vertex"])
@pytest.mark.parametrize("images", [[], [RED]], ids=["text", "image"])
def test_sdk3_creates_and_gets_an_omni_video(
    emulator_url: str, tmp_path: Path, vertex: bool, images: list[bytes]
) -> None:
    client = _client(emulator_url, vertex)
    interaction = client.interactions.create(
        model=OMNI,
        input=[{"type": "text", "text": "a lighthouse"}, *(_block(i) for i in images)],
        response_modalities=["video"],
        response_format={
            "type": "video",
            "aspect_ratio": "9:16",
            "resolution": "360p",
            "duration": "4s",
            "delivery": "inline",
        },
        background=True,
    )
    assert interaction.status == "in_progress" and interaction.id
    [sent] = _logged(emulator_url, 1)
    version = "v1beta1/" + PARENT if vertex else "v1/interactions"
    assert sent["path"] == f"/{version}"
    deadline = time.monotonic() + 120
    while interaction.status == "in_progress":
        assert time.monotonic() < deadline, "the interaction did not finish"
        time.sleep(0.1)
        interaction = client.interactions.get(interaction.id)
    assert interaction.status == "completed"
    video = interaction.output_video
    assert video is not None and video.mime_type == "video/mp4" and video.data
    data = video.data if isinstance(video.data, bytes) else base64.b64decode(video.data)
    path = tmp_path / "omni.mp4"
    path.write_bytes(data)
    info = probe_video(path)
    assert (info.width, info.height) == (360, 640)
    assert abs(info.duration - 4) < 0.2


CASES = [
    ("text", VideoRequest[Image](model=OMNI, prompt="a kite over hills")),
    (
        "image",
        VideoRequest[Image](
            model=OMNI,
            prompt="the picture comes alive",
            image=Image(RED, "image/png", "images[0]"),
            aspect_ratio="9:16",
            resolution="1080p",
            duration_seconds=6,
        ),
    ),
    (
        "reference images",
        VideoRequest[Image](
            model=OMNI,
            prompt="a walk in the park",
            reference_images=tuple(
                ReferenceImage(Image(data, "image/png", "ref")) for data in (RED, BLUE)
            ),
            resolution="360p",
            duration_seconds=4,
        ),
    ),
]


def _sdk_call(client: genai.Client, request: VideoRequest[Image], fmt: dict[str, Any]) -> None:
    """The same logical request as a user of the SDK writes it."""
    response_format: dict[str, Any] = {"type": "video"}
    if request.aspect_ratio:
        response_format["aspect_ratio"] = request.aspect_ratio
    if request.resolution:
        response_format["resolution"] = request.resolution
    if request.duration_seconds:
        response_format["duration"] = f"{request.duration_seconds}s"
    response_format.update(fmt)
    task = {"text": "text_to_video", "image": "image_to_video", "reference": "reference_to_video"}
    client.interactions.create(
        model=OMNI,
        input=[
            {"type": "text", "text": request.prompt},
            *(_block(image.data) for image in request.images()),
        ],
        response_modalities=["video"],
        response_format=response_format,
        generation_config={"video_config": {"task": task[request.mode]}},
        background=True,
    )


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini-api", "vertex"])
@pytest.mark.parametrize("case", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_omni_adapter_sends_what_sdk3_sends(
    emulator_url: str, case: VideoRequest[Image], vertex: bool
) -> None:
    fmt = {"delivery": "inline"} if vertex else {"delivery": "uri"}
    _sdk_call(_client(emulator_url, vertex), case, fmt)

    async def adapter() -> None:
        async with UpstreamHttp(timeout=30) as http:
            files: Any
            if vertex:
                tokens = StaticToken(TOKEN)
                files = VertexProvider(
                    project=PROJECT,
                    location=LOCATION,
                    tokens=tokens,
                    client=http,
                    base_url=emulator_url,
                )

                async def headers() -> dict[str, str]:
                    return {"Authorization": f"Bearer {TOKEN}"}

                root, parent, delivery = f"{emulator_url}/{VERTEX_VERSION}", PARENT, "inline"
            else:
                files = GeminiProvider(api_key=KEY, base_url=emulator_url, client=http)

                async def headers() -> dict[str, str]:
                    return {"x-goog-api-key": KEY}

                root, parent = f"{emulator_url}/{GEMINI_VERSION}", "interactions"
                delivery = "uri"
            omni = OmniProvider(
                root=root,
                parent=parent,
                headers=headers,
                client=http,
                files=files,
                delivery=delivery,
            )
            await omni.submit(OMNI, case)

    asyncio.run(adapter())
    sent, ours = _logged(emulator_url, 2)
    assert sent["path"].endswith("/interactions") and ours["path"].endswith("/interactions")
    assert ours["body"] == sent["body"]
