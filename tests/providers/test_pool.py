"""The credential pool's rules: limits, cool-down, out of service, route order (on each
backend: the pool's state lives in the database)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from veo_gateway.config import Target
from veo_gateway.errors import UpstreamError
from veo_gateway.providers.pool import Credential, CredentialPool, NoRoute, rejects_credential
from veo_gateway.store.credentials import CredentialStore
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import TaskStore

MODEL = "veo-3.1-fast-generate-preview"


class Upstream:
    """Stands in for an adapter: the pool never calls it, it only hands it out."""

    name = "x"


def credential(cid: str, upstream: str = "a", rpm: int = 100, cap: int = 100) -> Credential:
    return Credential(
        id=cid,
        upstream=upstream,
        provider=Upstream(),  # type: ignore[arg-type]
        rpm=rpm,
        max_in_flight=cap,
    )


PoolFactory = Callable[..., CredentialPool]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[PoolFactory]:
    """Pools over one migrated database (of each backend in turn)."""
    engine = create_engine(database_url)
    await migrate(engine)
    store = CredentialStore(TaskStore(engine))

    def make(
        *creds: Credential,
        targets: tuple[Target, ...] = (Target("a", MODEL),),
        cap: int | None = None,
    ) -> CredentialPool:
        return CredentialPool(creds, {MODEL: targets}, store=store, max_in_flight=cap)

    yield make
    await engine.dispose()


async def test_requests_per_minute(pool: PoolFactory) -> None:
    p = pool(credential("k", rpm=2))
    assert await p.acquire(MODEL, "t1", now=0) and await p.acquire(MODEL, "t2", now=1)
    assert await p.acquire(MODEL, "t3", now=2) is None
    assert await p.next_free_at(now=2) == 60  # the first of the two leaves the window
    assert await p.acquire(MODEL, "t4", now=60.5) is not None


async def test_in_flight_cap_and_release(pool: PoolFactory) -> None:
    p = pool(credential("k", cap=1))
    lease = await p.acquire(MODEL, "t5", now=0)
    assert lease is not None and await p.acquire(MODEL, "t6", now=0) is None
    await p.release(lease.credential.id, "t5")
    assert await p.acquire(MODEL, "t7", now=0) is not None


async def test_global_cap(pool: PoolFactory) -> None:
    p = pool(credential("k1"), credential("k2"), cap=1)
    assert await p.acquire(MODEL, "t8", now=0) is not None
    assert await p.acquire(MODEL, "t9", now=0) is None


async def test_least_loaded_key_first(pool: PoolFactory) -> None:
    p = pool(credential("k1"), credential("k2"))
    first, second = await p.acquire(MODEL, "t10", now=0), await p.acquire(MODEL, "t11", now=0)
    assert first and second and {first.credential.id, second.credential.id} == {"k1", "k2"}


async def test_cool_down_moves_work_to_another_key(pool: PoolFactory) -> None:
    p = pool(credential("k1"), credential("k2"))
    await p.cool_down("k1", seconds=1000)
    for i in range(3):
        lease = await p.acquire(MODEL, f"t12-{i}")
        assert lease and lease.credential.id == "k2"
    await p.cool_down("k2", seconds=1000)
    assert await p.acquire(MODEL, "t13") is None
    # A shorter rest reported later does not cut the running one short.
    await p.cool_down("k2", seconds=1)
    assert (await p.states())["k2"].cool_until > time.time() + 900


async def test_route_order_and_upstream_model_ids(pool: PoolFactory) -> None:
    targets = (Target("vertex", "veo-3.1-fast-generate-001"), Target("gemini", MODEL))
    p = pool(credential("v", "vertex", cap=1), credential("g", "gemini"), targets=targets)
    first = await p.acquire(MODEL, "t14", now=0)
    assert first and first.credential.id == "v"
    assert first.upstream_model == "veo-3.1-fast-generate-001"
    second = await p.acquire(MODEL, "t15", now=0)
    assert second and second.credential.id == "g" and second.upstream_model == MODEL


async def test_out_of_service_and_no_route(pool: PoolFactory) -> None:
    p = pool(credential("k1"), credential("k2"))
    await p.disable("k1", "HTTP 403: denied")
    lease = await p.acquire(MODEL, "t16")
    assert lease and lease.credential.id == "k2"
    await p.disable("k2", "HTTP 401: bad token")
    with pytest.raises(NoRoute, match="403: denied"):
        await p.acquire(MODEL, "t17")
    assert not await p.can_take_work()
    with pytest.raises(NoRoute):
        await p.acquire("veo-unrouted", "t18")
    # The first reason stays; a worker starting puts both back in service.
    await p.disable("k1", "HTTP 401: another")
    assert (await p.states())["k1"].out_of_service == "HTTP 403: denied"
    await p.restore_in_flight({})
    assert await p.can_take_work()


async def test_release_is_idempotent_and_a_task_holds_one_slot(pool: PoolFactory) -> None:
    p = pool(credential("k", cap=2))
    first = await p.acquire(MODEL, "a", now=0)
    assert first is not None
    # A task holding a slot cannot take a second one (a create's inline submission and the
    # worker's round may ask for it at once).
    assert await p.acquire(MODEL, "a", now=1) is None
    # A give-back that names another slot of the task (an earlier job's) leaves this one.
    await p.release("k", "a", taken_at=0.5)
    assert (await p.states(now=1))["k"].in_flight == 1
    assert await p.acquire(MODEL, "b", now=1) is not None
    assert await p.acquire(MODEL, "c", now=1) is None  # the cap: a and b
    # Several paths may give a task's slot back (its job, a DELETE): only its own goes.
    await p.release("k", "a")
    await p.release("k", "a")
    await p.release("k", "never-held")
    assert first.credential.in_flight == 1 and first.credential.holders == {"b"}
    assert (await p.states(now=1))["k"].in_flight == 1
    assert await p.acquire(MODEL, "a", now=1) is not None


async def test_restore_in_flight_after_restart(pool: PoolFactory) -> None:
    p = pool(credential("k", cap=2))
    await p.restore_in_flight({"k": ["a", "b"], "gone": ["c"]})
    assert await p.acquire(MODEL, "t19") is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (UpstreamError("denied", code=403, status="PERMISSION_DENIED"), True),
        (UpstreamError("no", code=401, status="UNAUTHENTICATED"), True),
        (
            UpstreamError(
                "API key not valid. Please pass a valid API key.",
                code=400,
                status="INVALID_ARGUMENT",
            ),
            True,
        ),
        (
            UpstreamError(
                "Your use case is currently not supported.", code=400, status="INVALID_ARGUMENT"
            ),
            False,
        ),
        (UpstreamError("busy", code=429, status="RESOURCE_EXHAUSTED"), False),
    ],
)
def test_which_errors_reject_the_credential(error: UpstreamError, expected: bool) -> None:
    assert rejects_credential(error) is expected
