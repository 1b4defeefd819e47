"""Credential state shared through the database: two pools on one database (as two workers
have, each with its own engine) hold a credential's caps together, and see each other's
cool-downs and out-of-service marks; a dead worker's slot is freed by its task's state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from veo_gateway.config import Target
from veo_gateway.providers.pool import BUSY_FOR, Credential, CredentialPool, NoRoute
from veo_gateway.store.claims import Claims
from veo_gateway.store.credentials import HANDOVER, CredentialStore
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tables import credential_requests, credential_slots
from veo_gateway.store.tasks import State, TaskStore

MODEL = "veo-3.1-fast-generate-preview"


class Upstream:
    """Stands in for an adapter: the pool never calls it."""

    name = "x"


@dataclass
class Worker:
    """What one worker process has: its own engine, store and pool."""

    store: TaskStore
    pool: CredentialPool


def pool_of(
    store: TaskStore, *, rpm: int, cap: int, keys: tuple[str, ...], pool_cap: int | None = None
) -> CredentialPool:
    credentials = [
        Credential(id=k, upstream="a", provider=Upstream(), rpm=rpm, max_in_flight=cap)  # type: ignore[arg-type]
        for k in keys
    ]
    routes = {MODEL: (Target("a", MODEL),)}
    return CredentialPool(credentials, routes, store=CredentialStore(store), max_in_flight=pool_cap)


@pytest.fixture
async def workers(database_url: str) -> AsyncIterator[list[Worker]]:
    """A factory's worth of two workers on one database: (rpm, cap, keys) set per test."""
    engine = create_engine(database_url)
    await migrate(engine)
    await engine.dispose()
    engines = [create_engine(database_url) for _ in range(2)]
    found: list[Worker] = []
    for engine in engines:
        store = TaskStore(engine)
        found.append(Worker(store, pool_of(store, rpm=1000, cap=3, keys=("k",))))
    yield found
    for worker in found:
        await worker.store.aclose()
    for engine in engines:
        await engine.dispose()


def repool(workers: list[Worker], **limits: object) -> None:
    for worker in workers:
        worker.pool = pool_of(worker.store, **limits)  # type: ignore[arg-type]


async def acquire_all(workers: list[Worker], per_worker: int) -> list[str]:
    """Many acquires at once from both workers; the holders that got a slot."""

    async def one(worker: Worker, holder: str) -> str | None:
        lease = await worker.pool.acquire(MODEL, holder)
        return holder if lease is not None else None

    jobs = [one(w, f"w{i}-t{n}") for i, w in enumerate(workers) for n in range(per_worker)]
    return [holder for holder in await asyncio.gather(*jobs) if holder is not None]


async def count(store: TaskStore, table: sa.Table) -> int:
    async with store.reading() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_two_pools_never_pass_a_credentials_in_flight_cap_together(
    workers: list[Worker],
) -> None:
    taken = await acquire_all(workers, per_worker=15)
    assert len(taken) == 3
    assert await count(workers[0].store, credential_slots) == 3
    # Both workers see the same three, whoever took them.
    for worker in workers:
        assert (await worker.pool.states())["k"].in_flight == 3
    # One given back by the worker that did not take it frees it for everyone.
    other = workers[1] if taken[0].startswith("w0") else workers[0]
    await other.pool.release("k", taken[0])
    assert len(await acquire_all(workers, per_worker=10)) == 1


async def test_two_pools_never_pass_the_pools_own_cap_together(workers: list[Worker]) -> None:
    # VEO_GATEWAY_MAX_IN_FLIGHT caps every credential of the pool together, for all workers.
    repool(workers, rpm=1000, cap=10, keys=("k1", "k2"), pool_cap=4)
    assert len(await acquire_all(workers, per_worker=15)) == 4
    states = await workers[0].pool.states()
    assert states["k1"].in_flight == states["k2"].in_flight == 2  # least loaded first


async def test_two_pools_never_pass_a_credentials_rate_together(workers: list[Worker]) -> None:
    repool(workers, rpm=5, cap=100, keys=("k",))
    assert len(await acquire_all(workers, per_worker=20)) == 5
    assert await count(workers[0].store, credential_requests) == 5
    # Both know when the window lets the next one through: a minute after the first.
    oldest = (await workers[0].pool.states())["k"].oldest_request
    assert oldest is not None
    for worker in workers:
        assert await worker.pool.next_free_at() == pytest.approx(oldest + 60.0)


async def test_a_cool_down_recorded_by_one_pool_is_seen_by_the_other(
    workers: list[Worker],
) -> None:
    repool(workers, rpm=1000, cap=10, keys=("k1", "k2"))
    first, second = workers
    await first.pool.cool_down("k1", seconds=1000)
    for n in range(4):
        lease = await second.pool.acquire(MODEL, f"t{n}")
        assert lease is not None and lease.credential.id == "k2"
    await first.pool.cool_down("k2", seconds=1000)
    assert await second.pool.acquire(MODEL, "t-late") is None
    state = (await second.pool.states())["k1"]
    assert state.cool_until > time.time() + 900 and state.out_of_service is None
    assert await second.pool.next_free_at() == pytest.approx(state.cool_until, abs=1.0)


async def test_out_of_service_recorded_by_one_pool_is_seen_by_the_other(
    workers: list[Worker],
) -> None:
    repool(workers, rpm=1000, cap=10, keys=("k1", "k2"))
    first, second = workers
    await first.pool.disable("k1", "HTTP 403: the key was revoked")
    lease = await second.pool.acquire(MODEL, "t1")
    assert lease is not None and lease.credential.id == "k2"
    await first.pool.disable("k2", "HTTP 401: bad token")
    with pytest.raises(NoRoute, match="the key was revoked"):
        await second.pool.acquire(MODEL, "t2")
    assert not await second.pool.can_take_work()
    state = (await second.pool.states())["k1"]
    assert state.out_of_service == "HTTP 403: the key was revoked"
    assert state.out_since is not None and state.out_since <= time.time()
    # A worker starting tries them again, for every process.
    await first.pool.restore_in_flight({})
    assert await second.pool.can_take_work()


async def _claimed(worker: Worker, task_id: str, lease_seconds: float) -> None:
    """A task created, given a slot by `worker`, and claimed for submission."""
    await worker.store.create(
        task_id=task_id, owner="o", dialect="spec", model=MODEL, request={"prompt": "p"}
    )
    lease = await worker.pool.acquire(MODEL, task_id)
    assert lease is not None
    claimed = await Claims(worker.store, f"worker-{id(worker)}").claim_task(
        task_id, State.QUEUED, State.SUBMITTING, lease_seconds=lease_seconds, upstream="k"
    )
    assert claimed is not None


async def test_a_dead_workers_slot_is_freed_by_its_tasks_state_not_by_its_worker(
    workers: list[Worker],
) -> None:
    repool(workers, rpm=1000, cap=1, keys=("k",))
    dead, alive = workers
    # The dead worker took the one slot and never gives it back.
    await _claimed(dead, "held", lease_seconds=30.0)
    await alive.store.create(
        task_id="waiting", owner="o", dialect="spec", model=MODEL, request={"prompt": "p"}
    )
    assert await alive.pool.acquire(MODEL, "waiting") is None
    # Once its submission lease has run out, the slot no longer counts.
    assert await alive.pool.acquire(MODEL, "waiting", now=time.time() + 31.0) is not None
    await alive.pool.release("k", "waiting")

    # A slot whose task left the in-flight states (here: failed by another worker) is free.
    await _claimed(alive, "running", lease_seconds=600.0)
    assert await alive.pool.acquire(MODEL, "other") is None
    assert await alive.store.transition("running", State.SUBMITTING, State.FAILED)
    assert (await alive.pool.states())["k"].in_flight == 0
    another = pool_of(alive.store, rpm=1000, cap=1, keys=("k",))
    assert await another.acquire(MODEL, "other") is not None


async def test_a_busy_model_is_asked_again_after_a_release_here_or_soon_after_one_elsewhere(
    workers: list[Worker],
) -> None:
    repool(workers, rpm=1000, cap=1, keys=("k",))
    first, second = workers
    start = time.time()
    assert await first.pool.acquire(MODEL, "a", now=start) is not None
    assert await second.pool.acquire(MODEL, "b", now=start) is None
    assert await first.pool.acquire(MODEL, "c", now=start) is None
    # Given back here: this pool asks the database again at once.
    await first.pool.release("k", "a")
    assert await first.pool.acquire(MODEL, "c", now=start) is not None
    await first.pool.release("k", "c")
    # Given back elsewhere: the other pool still takes the model as busy, for BUSY_FOR.
    assert await second.pool.acquire(MODEL, "b", now=start + BUSY_FOR / 2) is None
    assert await second.pool.acquire(MODEL, "b", now=start + BUSY_FOR) is not None


async def test_a_requeued_task_takes_a_slot_again_though_its_dead_worker_kept_one(
    workers: list[Worker],
) -> None:
    repool(workers, rpm=1000, cap=1, keys=("k",))
    dead, alive = workers
    await _claimed(dead, "t", lease_seconds=600.0)
    # The one worker's start-up recovery requeues it (no render time known: nothing held).
    assert await Claims(alive.store, "new").recover(sole=True, render_time=lambda m: 0.0) == 1
    # At once, not HANDOVER seconds later: the requeue deleted the dead worker's slot.
    assert HANDOVER > 10
    lease = await alive.pool.acquire(MODEL, "t")
    assert lease is not None
    assert await count(alive.store, credential_slots) == 1


async def test_a_submission_cut_off_on_the_wire_keeps_its_slot_for_a_render_time(
    workers: list[Worker],
) -> None:
    """A worker died mid-submission: Google may be rendering it all the same, and counts it.
    The requeue keeps its slot as a cut-off slot for the model's render time, so the
    resubmission (or another task) cannot take the credential past its cap at Google."""
    repool(workers, rpm=1000, cap=1, keys=("k",))
    dead, alive = workers
    await _claimed(dead, "t", lease_seconds=0.2)
    await alive.store.create(
        task_id="other", owner="o", dialect="spec", model=MODEL, request={"prompt": "p"}
    )
    while time.time() <= (await alive.store.get("t")).lease_until:  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
    renders: list[str] = []

    def render_time(model: str) -> float:
        renders.append(model)
        return 30.0

    assert await Claims(alive.store, "alive").take_over_expired(render_time) == ["t"]
    assert renders == [MODEL]
    task = await alive.store.get("t")
    assert task is not None and task.state is State.QUEUED and task.upstream is None
    # The slot is held: neither the task's resubmission nor another task gets the credential.
    assert (await alive.pool.states())["k"].in_flight == 1
    assert await alive.pool.acquire(MODEL, "t") is None
    assert await dead.pool.acquire(MODEL, "other") is None
    # Once the render would be over, it counts no more, and the resubmission goes out.
    assert await alive.pool.acquire(MODEL, "t", now=time.time() + 31.0) is not None
    assert await count(alive.store, credential_slots) == 1  # the held slot was pruned


async def test_a_shutdown_or_a_sole_workers_recovery_holds_cut_off_slots_too(
    workers: list[Worker],
) -> None:
    repool(workers, rpm=1000, cap=2, keys=("k",))
    first, second = workers
    await _claimed(first, "cut", lease_seconds=600.0)
    claims = Claims(first.store, f"worker-{id(first)}")
    assert await claims.give_up(["cut"], lambda model: 30.0) == ["cut"]
    await _claimed(second, "on-the-wire", lease_seconds=600.0)
    # A sole worker starting (SQLite's lock holder) requeues every submission it finds.
    assert await Claims(second.store, "new").recover(sole=True, render_time=lambda m: 30.0) == 1
    states = await second.pool.states()
    assert states["k"].in_flight == 2  # both cut-off slots count
    await second.store.create(
        task_id="third", owner="o", dialect="spec", model=MODEL, request={"prompt": "p"}
    )
    assert await second.pool.acquire(MODEL, "third") is None
    assert await second.pool.acquire(MODEL, "third", now=time.time() + 31.0) is not None
