"""Leases on a real SQLite file and a real PostgreSQL database: a live one keeps a task from
every other taker, one that ran out hands the task back (a worker that stopped answering loses
its work), the start-up recovery of the sole worker (SQLite's worker-lock holder) lifts them all
at once, and that of one worker among several takes only the expired ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from veo_gateway.store.claims import Claims
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, Task, TaskStore


def no_render(model: str) -> float:
    """Cut-off submissions hold no slot (tests/store/test_credentials.py tests the hold)."""
    return 0.0


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TaskStore]:
    url = database_url
    engine = create_engine(url)
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
    one, two = Claims(store, "worker-1"), Claims(store, "worker-2")
    await running(store, "t1")
    (first,) = await one.claim(State.IN_PROGRESS, limit=10, lease_seconds=1.0)
    assert first.id == "t1" and first.lease_until > time.time()
    assert first.lease_owner == "worker-1"
    # While the lease lives, no other worker (nor the same one) takes it.
    assert await two.claim(State.IN_PROGRESS, limit=10, lease_seconds=1.0) == []
    assert await one.claim(State.IN_PROGRESS, limit=10, lease_seconds=1.0) == []
    assert await store.next_due_at(State.IN_PROGRESS) == pytest.approx(first.lease_until)

    # The first taker stopped answering: once its lease ran out, the task is taken again.
    await until_passed(first.lease_until)
    (again,) = await two.claim(State.IN_PROGRESS, limit=10, lease_seconds=60)
    assert (again.id, again.lease_owner) == ("t1", "worker-2")
    assert again.lease_until > first.lease_until
    assert again.operation_name == "models/m/operations/t1"  # polled, never resubmitted
    assert await one.claim(State.IN_PROGRESS, limit=10, lease_seconds=60) == []

    # The first taker comes back: its lease is gone, so it can neither renew nor change it.
    assert await one.renew(["t1"], lease_seconds=60) == set()
    assert not await one.update("t1", State.IN_PROGRESS, due_at=0.0, lease_until=0.0)
    assert not await one.transition("t1", State.IN_PROGRESS, State.COMPLETED)
    task = await get(store, "t1")
    assert (task.state, task.lease_owner, task.lease_until) == (
        State.IN_PROGRESS,
        "worker-2",
        again.lease_until,
    )
    # The holder renews and finishes it; the finish gives the lease up.
    assert await two.renew(["t1", "unknown"], lease_seconds=120) == {"t1"}
    assert (await get(store, "t1")).lease_until > again.lease_until
    assert await two.transition("t1", State.IN_PROGRESS, State.COMPLETED, lease_until=0.0)
    done = await get(store, "t1")
    assert (done.state, done.lease_owner, done.lease_until) == (State.COMPLETED, None, 0.0)
    assert await two.renew(["t1"], lease_seconds=60) == set()


async def test_a_renewed_lease_is_never_taken_over(store: TaskStore) -> None:
    holder, other = Claims(store, "worker-1"), Claims(store, "worker-2")
    await running(store, "slow")
    (claimed,) = await holder.claim(State.IN_PROGRESS, limit=1, lease_seconds=1.0)
    # A slow download: its worker renews the lease before it runs out.
    assert await holder.renew(["slow"], lease_seconds=60) == {"slow"}
    assert (await get(store, "slow")).lease_until > claimed.lease_until + 30
    await until_passed(claimed.lease_until)  # the first lease alone would have run out
    assert await other.claim(State.IN_PROGRESS, limit=1, lease_seconds=60) == []
    assert await other.take_over_expired(no_render) == []
    assert await holder.transition(
        "slow", State.IN_PROGRESS, State.COMPLETED, lease_until=0.0, video_bytes=1
    )


async def test_a_submission_whose_lease_ran_out_is_requeued_and_taken_again(
    store: TaskStore,
) -> None:
    dead, alive = Claims(store, "worker-1"), Claims(store, "worker-2")
    await add(store, "t1")
    # Long enough for the checks of a live lease below on a loaded machine (the test waits it out).
    claimed = await dead.claim_task(
        "t1", State.QUEUED, State.SUBMITTING, lease_seconds=1.5, upstream="emu#1"
    )
    assert claimed is not None and claimed.lease_owner == "worker-1"
    # A live submission lease: not abandoned, not claimable again.
    assert await alive.take_over_expired(no_render) == []
    assert await alive.claim_task("t1", State.QUEUED, State.SUBMITTING, lease_seconds=1) is None
    assert (await get(store, "t1")).state is State.SUBMITTING

    await until_passed(claimed.lease_until)
    assert await alive.take_over_expired(no_render) == ["t1"]
    task = await get(store, "t1")
    assert (task.state, task.upstream, task.lease_until, task.lease_owner) == (
        State.QUEUED,
        None,
        0.0,
        None,
    )
    assert [t.id for t in await store.due_queued(limit=10)] == ["t1"]
    retaken = await alive.claim_task(
        "t1", State.QUEUED, State.SUBMITTING, lease_seconds=60, upstream="emu#2"
    )
    assert retaken is not None and retaken.upstream == "emu#2"
    assert await alive.take_over_expired(no_render) == []  # done once
    # The first submission's answer comes back late: it cannot record its operation.
    assert not await dead.transition(
        "t1", State.SUBMITTING, State.IN_PROGRESS, operation_name="models/m/operations/late"
    )
    assert await alive.transition(
        "t1", State.SUBMITTING, State.IN_PROGRESS, operation_name="models/m/operations/t1"
    )
    assert (await get(store, "t1")).operation_name == "models/m/operations/t1"


async def leases_of(store: TaskStore, owner: str) -> tuple[Claims, float]:
    """A submission on the wire, a poll under way, a task resting between polls, and one still
    queued, as a worker leaves them (its leases an hour long) when it is killed."""
    far = time.time() + 3600
    worker = Claims(store, owner)
    await add(store, "submitting")
    assert await worker.claim_task(
        "submitting", State.QUEUED, State.SUBMITTING, lease_seconds=3600, upstream="emu#1"
    )
    await running(store, "polling")
    assert await worker.claim(State.IN_PROGRESS, limit=1, lease_seconds=3600)
    await running(store, "resting", due_at=far)
    await add(store, "queued")
    assert await worker.claim(State.IN_PROGRESS, limit=10, lease_seconds=60) == []
    return worker, far


async def test_the_sole_worker_requeues_submissions_and_lifts_every_poll_lease_at_once(
    store: TaskStore,
) -> None:
    dead, far = await leases_of(store, "dead")
    polling = await get(store, "polling")
    new = Claims(store, "new")

    assert await new.recover(sole=True, render_time=no_render) == 1  # the one submission

    submitting = await get(store, "submitting")
    assert (submitting.state, submitting.upstream, submitting.lease_until) == (
        State.QUEUED,
        None,
        0.0,
    )
    assert submitting.lease_owner is None
    assert submitting.due_at <= time.time()
    polled = await get(store, "polling")
    assert (polled.state, polled.lease_until, polled.lease_owner) == (State.IN_PROGRESS, 0.0, None)
    assert polled.operation_name == polling.operation_name  # kept: polled, not resubmitted
    resting = await get(store, "resting")
    assert resting.due_at == far  # its schedule is its own: no lease to lift
    # Taken at once, without waiting an hour for the dead process's leases.
    assert [t.id for t in await new.claim(State.IN_PROGRESS, limit=10, lease_seconds=60)] == [
        "polling"
    ]
    assert {t.id for t in await store.due_queued(limit=10)} == {"submitting", "queued"}
    assert {k: sorted(v) for k, v in (await store.in_flight_by_upstream()).items()} == {
        "emu#1": ["polling", "resting"]
    }
    assert not await dead.update("polling", State.IN_PROGRESS, due_at=0.0)


async def test_one_worker_among_several_takes_over_only_expired_leases_at_start(
    store: TaskStore,
) -> None:
    live, _ = await leases_of(store, "live")  # hour-long leases: a live worker's
    stopped = Claims(store, "stopped")
    short = await stopped.claim_task(
        "queued", State.QUEUED, State.SUBMITTING, lease_seconds=0.3, upstream="emu#1"
    )
    assert short is not None
    new = Claims(store, "new")

    # Every lease is live: a worker starting beside them takes nothing.
    assert await new.recover(sole=False, render_time=no_render) == 0
    assert [(await get(store, t)).state for t in ("submitting", "queued")] == [
        State.SUBMITTING,
        State.SUBMITTING,
    ]
    assert await new.claim(State.IN_PROGRESS, limit=10, lease_seconds=60) == []

    # One lease runs out (its worker stopped renewing it): that one, and only it, is taken.
    await until_passed(short.lease_until)
    assert await new.recover(sole=False, render_time=no_render) == 1
    queued = await get(store, "queued")
    assert (queued.state, queued.lease_owner, queued.upstream) == (State.QUEUED, None, None)
    submitting = await get(store, "submitting")
    assert (submitting.state, submitting.lease_owner) == (State.SUBMITTING, "live")
    assert (await get(store, "polling")).lease_owner == "live"
    assert await live.update("polling", State.IN_PROGRESS, due_at=0.0)  # still its holder's
    assert not await stopped.transition("queued", State.SUBMITTING, State.IN_PROGRESS)
