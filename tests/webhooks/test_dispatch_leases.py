"""A delivery under way holds a lease. A dispatcher starting as the only one (SQLite's worker
lock) lifts every lease at once; one starting beside others (PostgreSQL) leaves their live
leases alone. A real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import time

from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, TaskStore
from veo_gateway.webhooks.store import WebhookStore


async def test_a_starting_dispatcher_lifts_live_leases_only_when_it_is_the_only_one(
    database_url: str, db_backend: str
) -> None:
    url = database_url
    engine = create_engine(url)
    await migrate(engine)
    tasks = TaskStore(engine)
    try:
        await tasks.create(task_id="t1", owner="o", dialect="spec", model="m", request={})
        assert await tasks.transition(
            "t1", State.QUEUED, State.FAILED, fail_reason="no", completed_at=time.time()
        )
        store = WebhookStore(tasks, engine, retention_seconds=0)
        assert await store.queue_events(["http://127.0.0.1:9/hook"], time.time()) == 1
        (delivery,) = await store.claim_due(time.time(), 10, 3600.0)  # under way
        assert await store.claim_due(time.time(), 10, 3600.0) == []

        await WebhookStore(tasks, engine, retention_seconds=0).recover()  # a new dispatcher

        again = await store.claim_due(time.time(), 10, 3600.0)
        if db_backend == "sqlite":
            # The only dispatcher: the lease it found was a dead process's.
            assert [d.id for d in again] == [delivery.id]
        else:
            assert again == []  # another dispatcher's attempt is still under way
    finally:
        await tasks.aclose()
        await engine.dispose()
