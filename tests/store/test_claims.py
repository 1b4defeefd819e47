"""Claims by two workers at once, each with an engine (a pool of connections) of its own as two
processes have, on a SQLite file and on a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from veo_gateway.store.claims import Claims
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tables import tasks
from veo_gateway.store.tasks import State, TaskStore


@pytest.fixture
async def url(database_url: str) -> AsyncIterator[str]:
    found = database_url
    engine = create_engine(found)
    await migrate(engine)
    await engine.dispose()
    yield found


async def running(store: TaskStore, count: int) -> list[str]:
    """`count` tasks submitted upstream, all due for a poll now."""
    ids = [f"t{i:03}" for i in range(count)]
    for task_id in ids:
        await store.create(task_id=task_id, owner="alice", dialect="spec", model="m", request={})
        assert await store.update(
            task_id,
            State.QUEUED,
            state=State.IN_PROGRESS.value,
            upstream="emu#1",
            operation_name=f"models/m/operations/{task_id}",
        )
    return ids


async def test_two_workers_claiming_at_once_never_take_the_same_task(url: str) -> None:
    engines = [create_engine(url), create_engine(url)]
    stores = [TaskStore(engine) for engine in engines]
    try:
        ids = await running(stores[0], 120)

        async def worker(claims: Claims) -> list[str]:
            taken: list[str] = []
            while batch := await claims.claim(State.IN_PROGRESS, limit=7, lease_seconds=60):
                assert all(task.lease_owner == claims.owner for task in batch)
                taken += [task.id for task in batch]
                await asyncio.sleep(0)  # let the other in between batches
            return taken

        one, two = await asyncio.gather(
            worker(Claims(stores[0], "worker-1")), worker(Claims(stores[1], "worker-2"))
        )
        assert not set(one) & set(two)
        assert sorted(one + two) == ids
        assert len(one) + len(two) == len(ids)
        owners = {task_id: "worker-1" for task_id in one} | {t: "worker-2" for t in two}
        for task_id in ids:
            task = await stores[1].get(task_id)
            assert task is not None and task.lease_owner == owners[task_id]
    finally:
        for store in stores:
            await store.aclose()
        for engine in engines:
            await engine.dispose()


@pytest.mark.postgresql
async def test_a_claim_passes_over_a_row_another_transaction_holds_on_postgresql(
    url: str,
) -> None:
    """FOR UPDATE SKIP LOCKED: a worker does not queue behind another's claim in progress."""
    engine = create_engine(url)
    await migrate(engine)
    # Without SKIP LOCKED the claim below would wait for the lock, and give up after 2 s.
    waiting = create_async_engine(url, connect_args={"server_settings": {"lock_timeout": "2000"}})
    store, claimer = TaskStore(engine), TaskStore(waiting)
    try:
        first, second = await running(store, 2)
        async with engine.connect() as holder, holder.begin():
            await holder.execute(sa.select(tasks.c.id).where(tasks.c.id == first).with_for_update())
            claims = Claims(claimer, "worker-2")
            (taken,) = await claims.claim(State.IN_PROGRESS, limit=10, lease_seconds=60)
            assert taken.id == second
            assert (
                await claims.claim_task(
                    first, State.IN_PROGRESS, State.IN_PROGRESS, lease_seconds=60
                )
                is None
            )
        # Once the other transaction ends, the row is there to take.
        (later,) = await claims.claim(State.IN_PROGRESS, limit=10, lease_seconds=60)
        assert later.id == first
    finally:
        await store.aclose()
        await claimer.aclose()
        await waiting.dispose()
        await engine.dispose()
