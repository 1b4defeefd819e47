"""Queued tasks come out oldest first, taking turns between owners (real SQLite file)."""

from __future__ import annotations

import time

from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, TaskStore


async def test_one_owners_burst_does_not_starve_the_others(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    store = TaskStore(engine)
    try:
        for i in range(5):
            await store.create(
                task_id=f"a{i}", owner="alice", dialect="spec", model="m", request={}
            )
        for i in range(2):
            await store.create(task_id=f"b{i}", owner="bob", dialect="spec", model="m", request={})
        await store.create(task_id="c0", owner="carol", dialect="spec", model="m", request={})
        order = [task.id for task in await store.due_queued(limit=10)]
        assert order == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]
        assert [t.id for t in await store.due_queued(limit=3)] == ["a0", "b0", "c0"]

        claimed = await store.claim_task(
            "a0", State.QUEUED, State.SUBMITTING, lease_seconds=60, upstream="gemini#1"
        )
        assert claimed is not None and claimed.upstream == "gemini#1"
        # Taken once only: a second claim of the same task loses.
        assert (
            await store.claim_task("a0", State.QUEUED, State.SUBMITTING, lease_seconds=60) is None
        )
        assert "a0" not in [t.id for t in await store.due_queued(limit=10)]
        assert await store.transition("a0", State.SUBMITTING, State.IN_PROGRESS)
        assert await store.in_flight_by_upstream() == {"gemini#1": ["a0"]}
        # alice has one running now: bob's and carol's first turns come before her next one.
        assert [t.id for t in await store.due_queued(limit=4)] == ["b0", "c0", "a1", "b1"]
        # Once alice's task is done, turns tie: the owner served longest ago (bob: never) wins.
        assert await store.transition(
            "a0", State.IN_PROGRESS, State.COMPLETED, submitted_at=time.time()
        )
        assert [t.id for t in await store.due_queued(limit=2)] == ["b0", "c0"]
        assert await store.delete("b1") and await store.get("b1") is None
    finally:
        await store.aclose()
        await engine.dispose()
