"""The credential pool's rules: limits, cool-down, out of service, route order."""

from __future__ import annotations

import pytest

from veo_gateway.config import Target
from veo_gateway.errors import UpstreamError
from veo_gateway.providers.pool import Credential, CredentialPool, NoRoute, rejects_credential

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


def pool(
    *creds: Credential, targets: tuple[Target, ...] = (Target("a", MODEL),), cap: int | None = None
) -> CredentialPool:
    return CredentialPool(creds, {MODEL: targets}, max_in_flight=cap)


def test_requests_per_minute() -> None:
    p = pool(credential("k", rpm=2))
    assert p.acquire(MODEL, "t1", now=0) and p.acquire(MODEL, "t2", now=1)
    assert p.acquire(MODEL, "t3", now=2) is None
    assert p.next_free_at(now=2) == 60  # the first of the two leaves the window
    assert p.acquire(MODEL, "t4", now=60.5) is not None


def test_in_flight_cap_and_release() -> None:
    p = pool(credential("k", cap=1))
    lease = p.acquire(MODEL, "t5", now=0)
    assert lease is not None and p.acquire(MODEL, "t6", now=0) is None
    p.release(lease.credential.id, "t5")
    assert p.acquire(MODEL, "t7", now=0) is not None


def test_global_cap() -> None:
    p = pool(credential("k1"), credential("k2"), cap=1)
    assert p.acquire(MODEL, "t8", now=0) is not None
    assert p.acquire(MODEL, "t9", now=0) is None


def test_least_loaded_key_first() -> None:
    p = pool(credential("k1"), credential("k2"))
    first, second = p.acquire(MODEL, "t10", now=0), p.acquire(MODEL, "t11", now=0)
    assert first and second and {first.credential.id, second.credential.id} == {"k1", "k2"}


def test_cool_down_moves_work_to_another_key() -> None:
    p = pool(credential("k1"), credential("k2"))
    p.cool_down("k1", seconds=1000)
    for i in range(3):
        lease = p.acquire(MODEL, f"t12-{i}")
        assert lease and lease.credential.id == "k2"
    p.cool_down("k2", seconds=1000)
    assert p.acquire(MODEL, "t13") is None


def test_route_order_and_upstream_model_ids() -> None:
    targets = (Target("vertex", "veo-3.1-fast-generate-001"), Target("gemini", MODEL))
    p = pool(credential("v", "vertex", cap=1), credential("g", "gemini"), targets=targets)
    first = p.acquire(MODEL, "t14", now=0)
    assert first and first.credential.id == "v"
    assert first.upstream_model == "veo-3.1-fast-generate-001"
    second = p.acquire(MODEL, "t15", now=0)
    assert second and second.credential.id == "g" and second.upstream_model == MODEL


def test_out_of_service_and_no_route() -> None:
    p = pool(credential("k1"), credential("k2"))
    p.disable("k1", "HTTP 403: denied")
    lease = p.acquire(MODEL, "t16")
    assert lease and lease.credential.id == "k2"
    p.disable("k2", "HTTP 401: bad token")
    with pytest.raises(NoRoute, match="403: denied"):
        p.acquire(MODEL, "t17")
    assert not p.can_take_work()
    with pytest.raises(NoRoute):
        p.acquire("veo-unrouted", "t18")


def test_release_is_idempotent_and_a_task_holds_one_slot() -> None:
    p = pool(credential("k", cap=2))
    first = p.acquire(MODEL, "a", now=0)
    assert first is not None
    # A task whose last job still holds its slot cannot take a second one.
    assert p.acquire(MODEL, "a", now=0) is None
    assert p.acquire(MODEL, "b", now=0) is not None
    # Several paths may give a task's slot back (its job, a DELETE): only its own goes.
    p.release("k", "a")
    p.release("k", "a")
    p.release("k", "never-held")
    assert first.credential.in_flight == 1 and first.credential.holders == {"b"}
    assert p.acquire(MODEL, "a", now=0) is not None


def test_restore_in_flight_after_restart() -> None:
    p = pool(credential("k", cap=2))
    p.restore_in_flight({"k": ["a", "b"], "gone": ["c"]})
    assert p.acquire(MODEL, "t19", now=0) is None


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
