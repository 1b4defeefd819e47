"""When the worker next has work: the soonest of the due times of tasks not under a lease and
the ends of the leases (a leased task is ready again when its lease runs out)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, TaskStore


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


async def running(store: TaskStore, task_id: str, *, due_at: float, lease_until: float) -> None:
    await store.create(task_id=task_id, owner="alice", dialect="spec", model="m", request={})
    assert await store.update(
        task_id,
        State.QUEUED,
        state=State.IN_PROGRESS.value,
        upstream="emu#1",
        operation_name=f"models/m/operations/{task_id}",
        due_at=due_at,
        lease_until=lease_until,
    )


async def test_nothing_in_the_state_is_no_time(store: TaskStore) -> None:
    assert await store.next_due_at(State.IN_PROGRESS) is None


async def test_a_lease_ending_before_the_next_due_task_is_the_next_time(store: TaskStore) -> None:
    now = time.time()
    await running(store, "later", due_at=now + 300, lease_until=0.0)
    await running(store, "leased", due_at=now - 10, lease_until=now + 100)
    await running(store, "leased-long", due_at=now - 10, lease_until=now + 900)
    assert await store.next_due_at(State.IN_PROGRESS) == pytest.approx(now + 100)
    # Nothing else in another state counts.
    assert await store.next_due_at(State.QUEUED) is None


async def test_the_soonest_due_task_not_under_a_lease_is_the_next_time(store: TaskStore) -> None:
    now = time.time()
    await running(store, "leased", due_at=now - 50, lease_until=now + 100)
    await running(store, "due", due_at=now - 5, lease_until=0.0)
    await running(store, "soon", due_at=now + 30, lease_until=now - 1)
    assert await store.next_due_at(State.IN_PROGRESS) == pytest.approx(now - 5)


async def test_a_due_time_after_its_lease_counts_as_the_due_time(store: TaskStore) -> None:
    now = time.time()
    # Rescheduled past its lease (a backoff longer than the lease): ready at due_at.
    await running(store, "backoff", due_at=now + 40, lease_until=now + 20)
    await running(store, "leased", due_at=now - 1, lease_until=now + 60)
    assert await store.next_due_at(State.IN_PROGRESS) == pytest.approx(now + 40)
