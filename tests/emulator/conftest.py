"""Fixtures: an emulator app driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image, ImageDraw

from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app

KEY = "emulator-test-key"
HOST = "127.0.0.1:8123"
FAST = "veo-3.1-fast-generate-preview"
STANDARD = "veo-3.1-generate-preview"
VEO2 = "veo-2.0-generate-001"


def png(
    color: tuple[int, int, int] = (200, 80, 40),
    size: tuple[int, int] = (320, 180),
    fmt: str = "PNG",
) -> bytes:
    """A small test image with a shape on it."""
    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).ellipse(
        (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=(30, 120, 220)
    )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def inline(data: bytes, mime: str = "image/png") -> dict[str, str]:
    """An image as Google's JSON carries it."""
    return {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": mime}


@dataclass
class Emulator:
    """An emulator app and an authenticated client for it."""

    client: httpx.AsyncClient
    app: Any
    tmp_path: Path

    async def submit(
        self, model: str, instance: dict[str, Any], parameters: dict[str, Any] | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"instances": [instance]}
        if parameters is not None:
            body["parameters"] = parameters
        return await self.client.post(f"/v1beta/models/{model}:predictLongRunning", json=body)

    async def wait(self, name: str, timeout: float = 45.0) -> dict[str, Any]:
        """Poll the operation until it is done; returns the done operation."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            response = await self.client.get(f"/v1beta/{name}")
            assert response.status_code == 200, response.text
            operation: dict[str, Any] = response.json()
            if operation.get("done"):
                return operation
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} not done after {timeout} s")

    async def generate(
        self, model: str, instance: dict[str, Any], parameters: dict[str, Any] | None = None
    ) -> Path:
        """Submit, wait, download: the path of the MP4 the emulator served."""
        response = await self.submit(model, instance, parameters)
        assert response.status_code == 200, response.text
        operation = await self.wait(response.json()["name"])
        uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
        return await self.download(uri)

    async def download(self, uri: str) -> Path:
        """GET the sample's URI on this emulator (as the SDK does: same path, our base)."""
        parts = urlsplit(uri)
        response = await self.client.get(f"{parts.path}?{parts.query}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "video/mp4"
        assert int(response.headers["content-length"]) == len(response.content)
        path = self.tmp_path / f"{parts.path.rsplit('/', 1)[-1].split(':')[0]}.mp4"
        path.write_bytes(response.content)
        return path


@pytest.fixture
def make_emulator(tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[Emulator]]:
    """Build emulators with config overrides; each runs (lifespan included) inside `async with`."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Emulator]:
        values: dict[str, Any] = {
            "latency": (0.0, 0.0),
            "api_keys": frozenset({KEY}),
            "storage_dir": tmp_path / "videos",
        }
        values.update(overrides)
        app = create_emulator_app(EmulatorConfig(**values))
        # ASGITransport does not run the lifespan; entering it here makes shutdown stop renders.
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=f"http://{HOST}",
                headers={"x-goog-api-key": KEY},
                timeout=60,
            ) as client,
        ):
            yield Emulator(client, app, tmp_path)

    return make


@pytest.fixture
async def emulator(
    make_emulator: Callable[..., AbstractAsyncContextManager[Emulator]],
) -> AsyncIterator[Emulator]:
    """An emulator with no latency that accepts only KEY."""
    async with make_emulator() as running:
        yield running
