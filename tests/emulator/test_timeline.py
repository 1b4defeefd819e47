"""/_emulator/operations: when each operation was created and when it became done."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.emulator.conftest import FAST, Emulator
from veo_gateway.emulator.operations import OperationBook


async def _timeline(emulator: Emulator) -> dict[str, dict[str, Any]]:
    response = await emulator.client.get("/_emulator/operations", headers={"x-goog-api-key": ""})
    assert response.status_code == 200
    return {entry["name"]: entry for entry in response.json()}


async def test_done_at_is_null_while_running_then_when_it_became_done(make_emulator: Any) -> None:
    async with make_emulator(latency=(0.5, 0.5)) as emulator:
        before = time.time()
        failed = (await emulator.submit(FAST, {"prompt": "x [emulator:fail]"})).json()["name"]
        video = (await emulator.submit(FAST, {"prompt": "x"}, {"durationSeconds": 4})).json()
        timeline = await _timeline(emulator)
        assert list(timeline) == [failed, video["name"]]
        for entry in timeline.values():
            # Converted from the monotonic clock: equal to the wall clock within a millisecond.
            assert before - 0.001 <= entry["created_at"] <= time.time() + 0.001
            assert entry["done_at"] is None

        await asyncio.sleep(0.6)
        # The failed operation has no render: done exactly when its latency has passed.
        entry = (await _timeline(emulator))[failed]
        assert abs(entry["done_at"] - (entry["created_at"] + 0.5)) < 0.01

        await emulator.wait(video["name"])
        seen_done = time.time()
        entry = (await _timeline(emulator))[video["name"]]
        # Done once both the latency has passed and the render has ended, before a poll saw it.
        assert entry["created_at"] + 0.5 <= entry["done_at"] <= seen_done


async def test_render_slower_than_the_latency_sets_done_at(emulator: Emulator) -> None:
    # Latency 0: an 8 s 1080p render is what the operation waits for.
    name = (await emulator.submit(FAST, {"prompt": "x"}, {"resolution": "1080p"})).json()["name"]
    assert (await _timeline(emulator))[name]["done_at"] is None
    await emulator.wait(name)
    entry = (await _timeline(emulator))[name]
    assert entry["done_at"] - entry["created_at"] > 0.05


async def test_an_operation_is_ready_exactly_its_latency_after_its_creation(
    make_emulator: Any,
) -> None:
    # Both times come from one reading of the clock: with two readings, ready_at came first and
    # an operation was ready (and done, with a fast render) before its latency had passed.
    async with make_emulator(latency=(0.5, 0.5)) as emulator:
        names = [
            (await emulator.submit(FAST, {"prompt": f"x{i} [emulator:fail]"})).json()["name"]
            for i in range(20)
        ]
        operations = [_book(emulator).get(name.rsplit("/", 1)[1]) for name in names]
        assert all(op is not None and op.ready_at - op.created_at == 0.5 for op in operations)


def _book(emulator: Emulator) -> OperationBook:
    book: OperationBook = emulator.app.state.core.book
    return book
