"""persist=True: an emulator restarted on the same storage carries on with the operations of the
one before, as Google's do when a client restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.emulator.conftest import FAST, KEY, inline, png
from veo_gateway.media.probe import probe_video


def _uri(operation: dict[str, Any]) -> str:
    uri: str = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    return uri


async def test_a_restart_finishes_and_serves_every_operation(
    make_emulator: Any, tmp_path: Path
) -> None:
    async with make_emulator(persist=True, latency=(1.0, 1.0)) as emulator:
        done = (await emulator.submit(FAST, {"prompt": "done"}, {"durationSeconds": 4})).json()
        finished = await emulator.wait(done["name"])
        before = (await emulator.download(_uri(finished))).read_bytes()
        # Stopped mid-render (an 8 s 1080p render takes seconds), its image still to draw.
        running = (
            await emulator.submit(
                FAST, {"prompt": "push in", "image": inline(png())}, {"resolution": "1080p"}
            )
        ).json()
        failing = (await emulator.submit(FAST, {"prompt": "x [emulator:fail]"})).json()
        await asyncio.sleep(0.2)
        assert "done" not in (await emulator.client.get(f"/v1beta/{running['name']}")).json()
        timeline = (await emulator.client.get("/_emulator/operations")).json()
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 1  # the second was not finished

    keys = frozenset({KEY, "another-key"})
    async with make_emulator(persist=True, latency=(0.0, 0.0), api_keys=keys) as emulator:
        again = await emulator.wait(done["name"])
        assert (await emulator.download(_uri(again))).read_bytes() == before
        info = probe_video(await emulator.download(_uri(await emulator.wait(running["name"]))))
        assert (info.width, info.height) == (1920, 1080)
        assert (await emulator.wait(failing["name"]))["error"]["code"] == 13
        # Another key still gets a 404: ownership survives, though only a digest is stored.
        other = await emulator.client.get(
            f"/v1beta/{done['name']}", headers={"x-goog-api-key": "another-key"}
        )
        assert other.status_code == 404
        stats = (await emulator.client.get("/_emulator/stats")).json()
        restored = (await emulator.client.get("/_emulator/operations")).json()

    # Three submissions in all, and only the unfinished render was made again.
    assert stats["submissions"] == 3 and stats["renders"] == 1
    # Each operation keeps its original timeline: created when it was, done after its latency.
    created = {entry["name"]: entry["created_at"] for entry in timeline}
    for entry in restored:
        assert abs(entry["created_at"] - created[entry["name"]]) < 1e-3
        assert entry["done_at"] >= entry["created_at"] + 1.0 - 1e-3
    records = tmp_path / "videos" / "operations"
    # Inputs are dropped once rendered; the key itself is never written down.
    assert sorted(path.suffix for path in records.iterdir()) == [".json"] * 3
    assert all(KEY not in path.read_text() for path in records.iterdir())


async def test_without_persist_a_restart_forgets(make_emulator: Any) -> None:
    async with make_emulator() as emulator:
        name = (await emulator.submit(FAST, {"prompt": "x"}, {"durationSeconds": 4})).json()["name"]
        await emulator.wait(name)
    async with make_emulator() as emulator:
        assert (await emulator.client.get(f"/v1beta/{name}")).status_code == 404


async def test_unreadable_records_are_dropped_not_fatal(make_emulator: Any, tmp_path: Path) -> None:
    records = tmp_path / "videos" / "operations"
    records.mkdir(parents=True)
    (records / "broken.json").write_text("{not json")
    (records / "missing.json").write_text('{"id": "missing"}')
    (records / ".tmp-half.json.1234").write_text("{")
    async with make_emulator(persist=True) as emulator:
        name = (await emulator.submit(FAST, {"prompt": "x"}, {"durationSeconds": 4})).json()["name"]
        assert (await emulator.wait(name))["done"] is True
    assert not (records / "broken.json").exists()
    assert not (records / ".tmp-half.json.1234").exists()
