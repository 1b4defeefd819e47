"""Leases on a real SQLite file: a live one keeps a task from every other taker, one that ran
out hands the task back (a worker that stopped answering loses its work), and the start-up
recovery of the worker-lock holder lifts them all at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, Task, TaskStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TaskStore]:
    engine = create_engine(database_url)
    await migrate(engine)
    store = TaskStore(engine)
    try:
        yield store
    finally:
        await store.aclose()
        await engine.dispose()


async def add(store: TaskStore, task_id: str) -> None:
    await store.create(task_id=task_id, owner="alice", dialect="spec", model="m", request={})


async def running(store: TaskStore, task_id: str, **fields: object) -> None:
    """A task submitted upstream (its operation recorded), due for a poll now."""
    await add(store, task_id)
    assert await store.update(
        task_id,
        State.QUEUED,
        state=State.IN_PROGRESS.value,
        upstream="emu#1",
        operation_name=f"models/m/operations/{task_id}",
        **fields,
    )


async def until_passed(lease_until: float) -> None:
    """Sleep until the store's clock is past the lease."""
    while time.time() <= lease_until:
        await asyncio.sleep(max(0.0, lease_until - time.time()) + 0.005)


async def get(store: TaskStore, task_id: str) -> Task:
    task = await store.get(task_id)
    assert task is not None
    return task


async def test_a_poll_lease_keeps_the_task_until_it_runs_out_then_another_takes_it(
    store: TaskStore,
) -> None:
    await running(store, "t1")
    (first,) = await store.claim(State.IN_PROGRESS, limit=10, lease_seconds=0.2)
    assert first.id == "t1" and first.lease_until > time.time()
    # While the lease lives, no other worker (another claim) takes it.
    assert await store.claim(State.IN_PROGRESS, limit=10, lease_seconds=0.2) == []
    assert await store.next_due_at(State.IN_PROGRESS) == pytest.approx(first.lease_until)

    # The first taker stopped answering: once its lease ran out, the task is taken again.
    await until_passed(first.lease_until)
    (again,) = await store.claim(State.IN_PROGRESS, limit=10, lease_seconds=60)
    assert again.id == "t1"
    assert again.lease_until > first.lease_until
    assert again.operation_name == "models/m/operations/t1"  # polled, never resubmitted
    assert await store.claim(State.IN_PROGRESS, limit=10, lease_seconds=60) == []


async def test_a_submission_whose_lease_ran_out_is_requeued_and_taken_again(
    store: TaskStore,
) -> None:
    await add(store, "t1")
    claimed = await store.claim_task(
        "t1", State.QUEUED, State.SUBMITTING, lease_seconds=0.2, upstream="emu#1"
    )
    assert claimed is not None
    # A live submission lease: not abandoned, not claimable again.
    assert await store.requeue_abandoned_submissions() == []
    assert await store.claim_task("t1", State.QUEUED, State.SUBMITTING, lease_seconds=1) is None
    assert (await get(store, "t1")).state is State.SUBMITTING

    await until_passed(claimed.lease_until)
    assert await store.requeue_abandoned_submissions() == ["t1"]
    task = await get(store, "t1")
    assert (task.state, task.upstream, task.lease_until) == (State.QUEUED, None, 0.0)
    assert [t.id for t in await store.due_queued(limit=10)] == ["t1"]
    retaken = await store.claim_task(
        "t1", State.QUEUED, State.SUBMITTING, lease_seconds=60, upstream="emu#2"
    )
    assert retaken is not None and retaken.upstream == "emu#2"
    assert await store.requeue_abandoned_submissions() == []  # done once


async def test_recover_requeues_submissions_and_lifts_every_poll_lease_at_once(
    store: TaskStore,
) -> None:
    far = time.time() + 3600
    # Left by a process that was killed: a submission on the wire, a poll under way, a task
    # resting between polls, and one still queued.
    await add(store, "submitting")
    assert await store.claim_task(
        "submitting", State.QUEUED, State.SUBMITTING, lease_seconds=3600, upstream="emu#1"
    )
    await running(store, "polling")
    (polling,) = await store.claim(State.IN_PROGRESS, limit=1, lease_seconds=3600)
    await running(store, "resting", due_at=far)
    await add(store, "queued")
    assert await store.claim(State.IN_PROGRESS, limit=10, lease_seconds=60) == []

    assert await store.recover() == 1  # the one submission

    submitting = await get(store, "submitting")
    assert (submitting.state, submitting.upstream, submitting.lease_until) == (
        State.QUEUED,
        None,
        0.0,
    )
    assert submitting.due_at <= time.time()
    polled = await get(store, "polling")
    assert (polled.state, polled.lease_until) == (State.IN_PROGRESS, 0.0)
    assert polled.operation_name == polling.operation_name  # kept: polled, not resubmitted
    resting = await get(store, "resting")
    assert resting.due_at == far  # its schedule is its own: no lease to lift
    # Taken at once, without waiting an hour for the dead process's leases.
    assert [t.id for t in await store.claim(State.IN_PROGRESS, limit=10, lease_seconds=60)] == [
        "polling"
    ]
    assert {t.id for t in await store.due_queued(limit=10)} == {"submitting", "queued"}
    assert {k: sorted(v) for k, v in (await store.in_flight_by_upstream()).items()} == {
        "emu#1": ["polling", "resting"]
    }
