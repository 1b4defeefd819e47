"""A disk error other than a full disk while a finished video is stored (the full disk itself is
in test_full_disk.py): the attempt is counted and retried, nothing half-written is kept, and the
task fails with the error once the attempts run out."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.worker.rig import Rig, emulator, rigs
from veo_gateway.emulator.core import EmulatorCore
from veo_gateway.store.tasks import State


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, EmulatorCore]]:
    with emulator(tmp_path) as found:
        yield found


@pytest.fixture
async def start(
    tmp_path: Path, database_url: str, upstream: tuple[str, EmulatorCore]
) -> AsyncIterator[Callable[..., Any]]:
    async with rigs(tmp_path, database_url, *upstream) as starter:
        yield starter


def break_videos_dir(rig: Rig) -> None:
    """Put a file where the videos directory is: every write there fails (an OSError that is
    not ENOSPC, as a failing disk's EIO is; root ignores permission bits, so not a chmod)."""
    shutil.rmtree(rig.storage.videos_dir)
    rig.storage.videos_dir.write_bytes(b"not a directory")


async def test_a_disk_error_while_storing_is_retried_and_the_video_kept_once_it_heals(
    start: Callable[..., Any],
) -> None:
    rig: Rig = await start(submit_attempts=5, retry_base=0.05)
    break_videos_dir(rig)
    task_id = await rig.add("stored once the disk heals")
    async with asyncio.timeout(20):  # until a store of the video has failed once
        while (task := await rig.store.get(task_id)) is None or task.attempts < 1:
            await asyncio.sleep(0.01)
    assert task.state is State.IN_PROGRESS  # waiting for its next try, not failed
    rig.storage.videos_dir.unlink()
    rig.storage.videos_dir.mkdir()
    done = await rig.settled(task_id)
    assert done.state is State.COMPLETED, done.fail_reason
    assert rig.videos() == [rig.storage.video_path(task_id)]
    assert await rig.slot_given_back(), rig.credential.holders


async def test_a_disk_error_that_persists_fails_the_task_with_the_error(
    start: Callable[..., Any],
) -> None:
    rig: Rig = await start(submit_attempts=3)
    break_videos_dir(rig)
    task = await rig.settled(await rig.add("never stored"))
    assert task.state is State.FAILED
    assert task.attempts == 3
    assert task.fail_reason is not None
    assert "FileExistsError" in task.fail_reason, task.fail_reason
    assert task.video_path is None
    assert rig.storage.videos_dir.read_bytes() == b"not a directory"  # nothing written around
    assert await rig.slot_given_back(), rig.credential.holders
