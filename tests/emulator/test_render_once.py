"""render="once": one video per output shape, shared by every operation of that shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.emulator.conftest import FAST, KEY, Emulator, inline, png
from veo_gateway.media.probe import probe_video


async def _video(emulator: Emulator, name: str) -> Path:
    operation = await emulator.wait(name)
    uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    return await emulator.download(uri)


async def _submit(emulator: Emulator, instance: dict[str, Any], **parameters: Any) -> str:
    response = await emulator.submit(FAST, instance, {"durationSeconds": 4, **parameters})
    assert response.status_code == 200, response.text
    name: str = response.json()["name"]
    return name


async def test_one_render_serves_every_operation_of_a_shape(make_emulator: Any) -> None:
    async with make_emulator(render="once") as emulator:
        first = await _submit(emulator, {"prompt": "a fox"})
        second = await _submit(emulator, {"prompt": "a different prompt entirely"})
        with_image = await _submit(emulator, {"prompt": "push in", "image": inline(png())})
        portrait = await _submit(emulator, {"prompt": "a fox"}, aspectRatio="9:16")
        videos = [
            (await _video(emulator, name)).read_bytes() for name in (first, second, with_image)
        ]
        tall = probe_video(await _video(emulator, portrait))
        stats = (await emulator.client.get("/_emulator/stats")).json()

    assert videos[0] == videos[1] == videos[2]
    assert (tall.width, tall.height) == (720, 1280)
    # Two shapes (16:9 and 9:16 at 4 s), four operations: two renders.
    assert stats["renders"] == 2 and stats["submissions"] == 4


async def test_each_renders_every_operation(make_emulator: Any) -> None:
    async with make_emulator() as emulator:
        names = [await _submit(emulator, {"prompt": "a fox"}) for _ in range(2)]
        for name in names:
            await _video(emulator, name)
        stats = (await emulator.client.get("/_emulator/stats")).json()
    assert stats["renders"] == 2


async def test_a_shared_video_keeps_each_credential_to_its_own_files(make_emulator: Any) -> None:
    async with make_emulator(render="once", api_keys=frozenset({KEY, "other-key"})) as emulator:
        name = await _submit(emulator, {"prompt": "a fox"})
        operation = await emulator.wait(name)
        uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
        path = uri.split("://", 1)[1].split("/", 1)[1]
        response = await emulator.client.get(f"/{path}", headers={"x-goog-api-key": "other-key"})
    assert response.status_code == 404


def test_the_emulator_command_checks_render() -> None:
    from typer.testing import CliRunner

    from veo_gateway.cli import app

    result = CliRunner().invoke(app, ["emulator", "--render", "sometimes"])
    assert result.exit_code == 2
    assert "'each' or 'once'" in result.output
