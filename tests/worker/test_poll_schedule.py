"""When the worker polls a running operation: no sooner than its model has been seen to finish.

A task submitted before any task of its model finished is first polled at the catalog's
shortest latency; once finished tasks have shown how long the model takes, its later polls wait
for that too, instead of asking every interval for a video that cannot be there yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.worker.rig import FAST, Rig, emulator, rigs
from veo_gateway.domain.catalog import BUILTIN_MODELS, Catalog
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.emulator.core import EmulatorCore
from veo_gateway.store.tasks import State

UPSTREAM_SECONDS = 30.0  # how long the emulator takes: longer than the test runs


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, EmulatorCore]]:
    with emulator(tmp_path, latency=UPSTREAM_SECONDS) as found:
        yield found


@pytest.fixture
async def start(
    tmp_path: Path, upstream: tuple[str, EmulatorCore], database_url: str
) -> AsyncIterator[Callable[..., Any]]:
    async with rigs(tmp_path, database_url, *upstream) as starter:
        yield starter


def learning() -> LatencyModel:
    """A latency model that has learned nothing yet, whose catalog says the fast model can
    finish a tenth of a second after its submission."""
    rows = [
        dataclasses.replace(row, min_latency=0.1) if row.name == FAST else row
        for row in BUILTIN_MODELS
    ]
    return LatencyModel(Catalog(rows))


async def test_polls_wait_for_the_latency_learned_after_the_task_was_submitted(
    start: Callable[..., Any],
) -> None:
    latency = learning()
    rig: Rig = await start(latency=latency)
    task_id = await rig.add("learned meanwhile")
    submitted = await rig.until(task_id, State.IN_PROGRESS)
    assert submitted.submitted_at is not None
    # Polled every interval (0.05 s) from the catalog's 0.1 s on, as nothing was learned yet.
    assert submitted.due_at - submitted.submitted_at < 1.0
    polls = rig.emulator_stats()["polls"]

    # Meanwhile three other tasks of the model finished, after 20 s each upstream.
    for _ in range(3):
        latency.observe(FAST, 20.0)
    floor = submitted.submitted_at + latency.first_poll_after(FAST)
    assert latency.first_poll_after(FAST) == pytest.approx(18.0)

    # The next poll finds the operation running and puts the one after it off to that floor.
    async with asyncio.timeout(10):
        while (task := await rig.store.get(task_id)) is not None and task.due_at < floor:
            await asyncio.sleep(0.01)
    assert task is not None and task.state is State.IN_PROGRESS
    assert task.due_at == pytest.approx(floor, abs=1e-3)
    assert rig.emulator_stats()["polls"] > polls
