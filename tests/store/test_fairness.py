"""Queued tasks come out oldest first, taking turns between owners, whichever worker takes
them (a real SQLite file and a real PostgreSQL database)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from veo_gateway.store.claims import Claims
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, TaskStore


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    url = database_url
    engine = create_engine(url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def burst_and_singles(store: TaskStore) -> None:
    """Five tasks of alice's, then two of bob's, then one of carol's."""
    for i in range(5):
        await store.create(task_id=f"a{i}", owner="alice", dialect="spec", model="m", request={})
    for i in range(2):
        await store.create(task_id=f"b{i}", owner="bob", dialect="spec", model="m", request={})
    await store.create(task_id="c0", owner="carol", dialect="spec", model="m", request={})


async def test_one_owners_burst_does_not_starve_the_others(engine: AsyncEngine) -> None:
    store = TaskStore(engine)
    claims = Claims(store, "worker-1")
    try:
        await burst_and_singles(store)
        order = [task.id for task in await store.due_queued(limit=10)]
        assert order == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]
        assert [t.id for t in await store.due_queued(limit=3)] == ["a0", "b0", "c0"]

        claimed = await claims.claim_task(
            "a0", State.QUEUED, State.SUBMITTING, lease_seconds=60, upstream="gemini#1"
        )
        assert claimed is not None and claimed.upstream == "gemini#1"
        # Taken once only: a second claim of the same task loses.
        assert (
            await claims.claim_task("a0", State.QUEUED, State.SUBMITTING, lease_seconds=60) is None
        )
        assert "a0" not in [t.id for t in await store.due_queued(limit=10)]
        assert await claims.transition("a0", State.SUBMITTING, State.IN_PROGRESS)
        assert await store.in_flight_by_upstream() == {"gemini#1": ["a0"]}
        # alice has one running now: bob's and carol's first turns come before her next one.
        assert [t.id for t in await store.due_queued(limit=4)] == ["b0", "c0", "a1", "b1"]
        # Once alice's task is done, turns tie: the owner served longest ago (bob: never) wins.
        assert await claims.transition(
            "a0", State.IN_PROGRESS, State.COMPLETED, submitted_at=time.time()
        )
        assert [t.id for t in await store.due_queued(limit=2)] == ["b0", "c0"]
        assert await store.delete("b1") and await store.get("b1") is None
    finally:
        await store.aclose()


async def test_two_workers_claiming_side_by_side_keep_the_fair_order(engine: AsyncEngine) -> None:
    """Two workers read the fair order at the same moment and claim from it: the one that loses
    a task to the other takes the next in the order, so together they submit in the order a
    single worker would."""
    one, two = TaskStore(engine), TaskStore(engine)
    workers = [(one, Claims(one, "worker-1")), (two, Claims(two, "worker-2"))]
    try:
        await burst_and_singles(one)
        taken: list[str] = []
        while len(taken) < 8:
            # Both read before either claims: each sees the tasks the other is about to take.
            orders = [[t.id for t in await store.due_queued(limit=10)] for store, _ in workers]
            assert orders[0] == orders[1]
            for (_, claims), order in zip(workers, orders, strict=True):
                for task_id in order:
                    if await claims.claim_task(
                        task_id, State.QUEUED, State.SUBMITTING, lease_seconds=60
                    ):
                        taken.append(task_id)
                        break
        assert taken == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]
        # Each was claimed by exactly one of them.
        owners = [(await one.get(task_id)) for task_id in taken]
        assert [t.lease_owner for t in owners if t] == ["worker-1", "worker-2"] * 4
    finally:
        await one.aclose()
        await two.aclose()
