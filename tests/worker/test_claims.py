"""Two workers on one database (a SQLite file, and a real PostgreSQL database), against the real
emulator: each task is taken by one of them, a live worker's slow download keeps its lease, and
a worker that stops renewing, or stops, has its tasks taken over and finished by the other."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.worker.rig import FAST, Rig, emulator, rigs, set_faults
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.emulator.core import EmulatorCore
from veo_gateway.media.probe import check_whole
from veo_gateway.store.tasks import State


async def worker(start: Callable[..., Any], **config: Any) -> Rig:
    """A worker that knows others may be alive (as on PostgreSQL), so it takes no live lease at
    start, and renews often (giving back the slots of its tasks others finished)."""
    rig: Rig = await start(**({"sole_worker": False, "renew_interval": 0.2} | config))
    return rig


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, EmulatorCore]]:
    with emulator(tmp_path, latency=0.1) as found:
        yield found


@pytest.fixture
async def start(
    tmp_path: Path, upstream: tuple[str, EmulatorCore], database_url: str
) -> AsyncIterator[Callable[..., Any]]:
    async with rigs(tmp_path, database_url, *upstream) as starter:
        yield starter


async def downloads_started(core: EmulatorCore, count: int) -> None:
    """Until the emulator has begun serving `count` downloads."""
    async with asyncio.timeout(20):
        while core.stats()["downloads"] < count:
            await asyncio.sleep(0.01)


async def test_two_workers_side_by_side_take_each_task_once(
    start: Callable[..., Any], upstream: tuple[str, EmulatorCore]
) -> None:
    _, core = upstream
    one = await worker(start)
    two = await worker(start)
    created = [await (one, two)[i % 2].add(f"shared {i}") for i in range(8)]
    for task_id in created:
        task = await one.settled(task_id, timeout=60)
        assert task.state is State.COMPLETED, task.fail_reason
        assert task.lease_owner is None
    stats = core.stats()
    # Each task submitted once, its video downloaded once: never by both workers.
    assert stats["submissions"] == len(created)
    assert stats["downloads"] == len(created)
    assert await one.slot_given_back() and await two.slot_given_back()


async def test_a_live_workers_slow_download_is_not_taken_over(
    start: Callable[..., Any], upstream: tuple[str, EmulatorCore]
) -> None:
    _, core = upstream
    set_faults(core, "download.slow=1,slow_seconds=4")
    # A lease far shorter than the download: only its renewals keep the task.
    holder = await worker(start, lease_seconds=1.5, renew_interval=0.1)
    task_id = await holder.add("slow but alive")
    await downloads_started(core, 1)
    leased = await holder.store.get(task_id)
    assert leased is not None and leased.lease_owner == holder.worker.identity.id
    other = await worker(start, lease_seconds=1.5, renew_interval=0.1)
    other.worker.wake()
    task = await holder.settled(task_id)
    assert task.state is State.COMPLETED, task.fail_reason
    stats = core.stats()
    assert (stats["submissions"], stats["downloads"]) == (1, 1)  # the other never took it
    # The other counted it among the credential's tasks in flight when it started, until it
    # saw the task end.
    assert await other.slot_given_back() and await holder.slot_given_back()


async def test_a_worker_that_stops_renewing_loses_its_task_to_another_which_completes_it(
    start: Callable[..., Any],
    upstream: tuple[str, EmulatorCore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="veo_gateway.worker")
    _, core = upstream
    # (A download far longer than the lease: the margin a loaded machine needs.)
    set_faults(core, "download.slow=1,slow_seconds=6")
    # Its heartbeat never beats: as a worker hung, or cut off from the database, would be.
    # (One poll at a time: while it downloads, it claims nothing, not even its own task back.)
    stalled = await worker(start, lease_seconds=0.5, renew_interval=3600, poll_concurrency=1)
    task_id = await stalled.add("taken over")
    await downloads_started(core, 1)
    taker = await worker(start, lease_seconds=30, renew_interval=0.1)
    # The lease runs out mid-download: the other worker polls and downloads it again.
    await downloads_started(core, 2)
    task = await taker.settled(task_id)
    assert task.state is State.COMPLETED, task.fail_reason
    assert task.lease_owner is None
    # The stalled worker's download ends too, but its compare-and-swap fails: it drops the
    # task, changes nothing, and leaves the video (the same one) in place.
    dropped = f"task {task_id}: no longer in_progress under this worker's lease"
    async with asyncio.timeout(20):
        while not any(dropped in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.02)
    after = await taker.store.get(task_id)
    assert after == task
    assert task.video_path is not None
    check_whole(Path(task.video_path))
    stats = core.stats()
    assert stats["submissions"] == 1  # submitted once: only the poll and download were redone
    assert stats["downloads"] == 2
    assert await stalled.slot_given_back() and await taker.slot_given_back()


async def test_a_submission_whose_lease_ran_out_mid_call_is_submitted_again_once(
    start: Callable[..., Any], upstream: tuple[str, EmulatorCore]
) -> None:
    """The documented double: a submission whose worker stopped renewing while the call was
    out is requeued and submitted again; the late answer to the first cannot be recorded."""
    _, core = upstream
    set_faults(core, "submit.stall=1,stall_seconds=4")
    stalled = await worker(start, lease_seconds=0.5, renew_interval=3600)
    task_id = await stalled.add("submitted twice")
    await stalled.until(task_id, State.SUBMITTING)
    # Renders take a second here: the requeue keeps the first call's slot that long (it may
    # be running upstream), then the task is submitted again.
    latency = LatencyModel(Catalog(), first_poll=0.05)
    for _ in range(3):
        latency.observe(FAST, 1.0)
    taker = await worker(start, lease_seconds=30, renew_interval=0.1, latency=latency)
    task = await taker.settled(task_id)
    assert task.state is State.COMPLETED, task.fail_reason
    stats = core.stats()
    assert stats["submissions"] == 2
    assert len(stats["operations"]) == 2
    # The task follows the operation of the worker that held it when the answer came.
    assert task.operation_name is not None
    assert task.operation_name.rsplit("/", 1)[-1] == list(stats["operations"])[-1]
    assert await stalled.slot_given_back() and await taker.slot_given_back()


async def test_a_worker_that_stops_hands_its_tasks_over_at_once(
    start: Callable[..., Any], upstream: tuple[str, EmulatorCore]
) -> None:
    _, core = upstream
    set_faults(core, "download.slow=1,slow_seconds=3")
    # Leases of an hour: the other worker can only take the task because the first gave it up.
    leaving = await worker(start, lease_seconds=3600)
    task_id = await leaving.add("handed over")
    await downloads_started(core, 1)
    await leaving.stop()  # the download is cancelled and the lease lifted
    lifted = await leaving.store.get(task_id)
    assert lifted is not None
    assert (lifted.state, lifted.lease_owner, lifted.lease_until) == (State.IN_PROGRESS, None, 0)
    taker = await worker(start, lease_seconds=3600)
    task = await taker.settled(task_id)
    assert task.state is State.COMPLETED, task.fail_reason
    assert core.stats()["submissions"] == 1
