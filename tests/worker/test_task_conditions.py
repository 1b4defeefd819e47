"""Tasks whose own conditions went wrong between create and submission or between two polls:
stored inputs that cannot be read, and a credential that is no longer configured."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.media import make_image
from tests.worker.rig import Rig, emulator, rigs, stored_request
from veo_gateway.emulator.core import EmulatorCore
from veo_gateway.store.tasks import State


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, EmulatorCore]]:
    # Slow enough upstream that a task is still running when its worker is replaced.
    with emulator(tmp_path, latency=1.5) as found:
        yield found


@pytest.fixture
async def start(
    tmp_path: Path, database_url: str, upstream: tuple[str, EmulatorCore]
) -> AsyncIterator[Callable[..., Any]]:
    async with rigs(tmp_path, database_url, *upstream) as starter:
        yield starter


IMAGE = {"blob": "image.png", "mime_type": "image/png", "field": "image"}


@pytest.mark.parametrize("damage", ["deleted", "a directory"])
async def test_stored_inputs_that_cannot_be_read_fail_the_task_unsubmitted(
    start: Callable[..., Any], damage: str
) -> None:
    rig: Rig = await start()
    task_id = "video_with_lost_input"
    await rig.storage.save_input(task_id, "image.png", make_image())
    stored = rig.storage.inputs_dir / task_id / "image.png"
    stored.unlink()
    if damage == "a directory":
        stored.mkdir()
    await rig.store.create(
        task_id=task_id,
        owner="alice",
        dialect="spec",
        model="veo-3.1-fast-generate-preview",
        request={**stored_request("lost input"), "image": IMAGE},
    )
    rig.worker.wake()
    task = await rig.settled(task_id)
    assert task.state is State.FAILED
    assert task.fail_reason is not None
    assert task.fail_reason.startswith("the task's stored inputs are unreadable"), task.fail_reason
    assert "image.png" in task.fail_reason  # which file
    assert task.operation_name is None
    assert rig.emulator_stats()["submissions"] == 0
    assert await rig.slot_given_back(), rig.credential.holders


async def test_stored_inputs_that_are_not_an_image_are_refused_by_the_upstream_once(
    start: Callable[..., Any],
) -> None:
    rig: Rig = await start()
    task_id = "video_with_garbled_input"
    await rig.storage.save_input(task_id, "image.png", b"\x89PNG not really")
    await rig.store.create(
        task_id=task_id,
        owner="alice",
        dialect="spec",
        model="veo-3.1-fast-generate-preview",
        request={**stored_request("garbled input"), "image": IMAGE},
    )
    rig.worker.wake()
    task = await rig.settled(task_id)
    assert task.state is State.FAILED
    assert task.attempts == 1  # a 4xx: not tried again
    assert task.fail_reason and "image" in task.fail_reason.lower(), task.fail_reason
    assert rig.emulator_stats()["submissions"] == 0
    assert await rig.slot_given_back(), rig.credential.holders


async def test_a_task_whose_credential_is_no_longer_configured_fails_with_why(
    start: Callable[..., Any],
) -> None:
    first: Rig = await start(key="k1", credential_id="emu#old")
    task_id = await first.add("outlives its key")
    running = await first.until(task_id, State.IN_PROGRESS)
    assert running.upstream == "emu#old"
    await first.stop()
    polls = first.emulator_stats()["polls"]

    # A restart with another key only: the task's own credential is gone.
    second: Rig = await start(key="k2", credential_id="emu#new")
    task = await second.settled(task_id)
    assert task.state is State.FAILED
    assert task.fail_reason == (
        "the credential 'emu#old' that submitted this task is no longer configured"
    )
    assert second.emulator_stats()["polls"] == polls  # never asked with another key
    assert second.credential.in_flight == 0  # nor did it take the new key's slot
    again = await second.add("the new key works")
    assert (await second.settled(again)).state is State.COMPLETED
