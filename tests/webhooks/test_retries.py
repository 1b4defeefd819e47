"""How hard a delivery is tried: the backoff between attempts, its cap, giving up once the retry
period is over, and what a receiver that never answers or refuses the connection leaves.

The schedule is tested on the real dispatcher, store and sender (a real SQLite file, a real
receiver on loopback) with a clock of the test's, moved to each attempt's due time, so the
attempts are exactly those the rules give and no test waits for a backoff. The failing
receivers are tested through a running gateway.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import Callable

from tests.conftest import Gateway
from tests.webhooks.conftest import SECRET, Outbox, ReceiverServer, wait_until
from tests.webhooks.test_delivery import create
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, TaskStore
from veo_gateway.webhooks.dispatcher import DispatchConfig, WebhookDispatcher
from veo_gateway.webhooks.sender import WebhookSender
from veo_gateway.webhooks.store import WebhookStore

FAST = "veo-3.1-fast-generate-preview"
START = 1_800_000_000.0
SEED = 7


class Clock:
    """Unix seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def schedule(base: float, cap: float, retry_for: float) -> list[float]:
    """The attempt times the documented rule gives, from START: after the n-th failure wait
    base * 2^(n-1), times a jitter drawn from [0.8, 1.2], at most `cap`; stop once the next
    attempt would fall more than `retry_for` after the event."""
    rng = random.Random(SEED)
    times, at = [START], START
    while True:
        at += min(base * 2 ** (len(times) - 1) * rng.uniform(0.8, 1.2), cap)
        if at > START + retry_for:
            return times
        times.append(at)


async def test_a_receiver_that_keeps_failing_is_given_up_with_every_attempt_recorded(
    database_url: str, receiver: ReceiverServer
) -> None:
    receiver.app.default = 503
    base, cap, retry_for = 10.0, 40.0, 300.0
    expected = schedule(base, cap, retry_for)
    delays = [later - earlier for earlier, later in itertools.pairwise(expected)]
    # The rule's shape, so the test means something: doubling, then flat at the cap.
    assert 8 <= delays[0] <= 12 and 16 <= delays[1] <= 24
    assert delays[3:] == [cap] * len(delays[3:]) and len(delays) >= 6

    engine = create_engine(database_url)
    await migrate(engine)
    tasks = TaskStore(engine)
    sender = WebhookSender(timeout=5.0, allow_private=True)
    try:
        await tasks.create(
            task_id="task-1", owner="o", dialect="spec", model=FAST, request={"prompt": "p"}
        )
        assert await tasks.transition(
            "task-1", State.QUEUED, State.FAILED, fail_reason="no", completed_at=START
        )
        store = WebhookStore(tasks, engine, retention_seconds=0)
        clock = Clock()
        dispatcher = WebhookDispatcher(
            store=store,
            sender=sender,
            config=DispatchConfig(
                endpoints=(f"{receiver.url}/hook",),
                secrets=(SECRET,),
                retry_base=base,
                retry_cap=cap,
                retry_for=retry_for,
            ),
            rng=random.Random(SEED),
            clock=clock,
        )
        for attempt in range(1, len(expected) + 1):
            await dispatcher.run_once()  # the first round also queues the event
            async with asyncio.timeout(10):
                while True:
                    (delivery,) = await store.deliveries("task-1")
                    if delivery["attempts"] == attempt and delivery["lease_until"] == 0:
                        break
                    await asyncio.sleep(0.01)
            if attempt < len(expected):
                assert delivery["state"] == "pending"
                assert delivery["next_attempt_at"] == expected[attempt]
                # Not due a moment before its time; due at it.
                clock.now = expected[attempt] - 0.001
                assert await store.claim_due(clock.now, 10, 1.0) == []
                clock.now = expected[attempt]

        assert delivery["state"] == "failed"
        assert delivery["last_status"] == 503 and delivery["last_error"] == "HTTP 503"
        attempts = await store.attempts(delivery["id"])
        assert [a["at"] for a in attempts] == expected
        assert {(a["status"], a["error"]) for a in attempts} == {(503, "HTTP 503")}
        assert len(receiver.app.requests) == len(expected)
        # Given up for good: nothing is due any more, however late it gets.
        clock.now = START + 10 * retry_for
        await dispatcher.run_once()
        assert await store.claim_due(clock.now, 10, 1.0) == []
        assert len(receiver.app.requests) == len(expected)
    finally:
        await sender.aclose()
        await tasks.aclose()
        await engine.dispose()


def test_the_backoff_is_capped_without_overflowing() -> None:
    dispatcher = WebhookDispatcher(
        store=None,  # type: ignore[arg-type]  # backoff() touches neither
        sender=None,  # type: ignore[arg-type]
        config=DispatchConfig(retry_base=5.0, retry_cap=3600.0),
        rng=random.Random(SEED),
    )
    assert 4.0 <= dispatcher.backoff(1) <= 6.0
    assert 8.0 <= dispatcher.backoff(2) <= 12.0
    # 5 s * 2^10 is past the hour: every later delay is the hour, even after years of retries.
    assert [dispatcher.backoff(n) for n in (11, 12, 31, 32, 1000, 10**6)] == [3600.0] * 6


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_receiver_that_never_answers_and_one_that_refuses_are_retried_later(
    make_gateway: Callable[..., Gateway], receiver: ReceiverServer, outbox: Outbox
) -> None:
    receiver.app.hang = True
    refusing = f"http://127.0.0.1:{closed_port()}/hook"
    gateway = make_gateway(
        webhook_urls=f"{receiver.url}/hook,{refusing}",
        webhook_secret=SECRET,
        allow_private_webhook_urls=True,
        webhook_timeout=0.5,
        webhook_retry_base=600,  # one attempt each in this test
    )
    task_id = create(gateway, "a quiet harbour")
    deliveries = wait_until(
        lambda: (
            (found := outbox.deliveries(task_id))
            and all(d["attempts"] == 1 for d in found)
            and found
        )
    )
    by_url = {d["url"]: d for d in deliveries}
    assert set(by_url) == {f"{receiver.url}/hook", refusing}

    hung = by_url[f"{receiver.url}/hook"]
    (attempt,) = outbox.attempts(hung["id"])
    assert (attempt["status"], attempt["error"]) == (None, "timed out after 0.5 s")
    assert 0.5 <= attempt["duration"] < 5
    assert len(receiver.app.requests) == 1  # it got the request, and never answered

    refused = by_url[refusing]
    (attempt,) = outbox.attempts(refused["id"])
    assert attempt["status"] is None
    assert attempt["error"].startswith("could not connect to 127.0.0.1: ")

    # Both wait for their next attempt (600 s, ±20 %), neither is given up.
    for delivery in (hung, refused):
        assert delivery["state"] == "pending" and delivery["last_status"] is None
        assert delivery["next_attempt_at"] - delivery["created_at"] >= 480
    # The gateway itself is unaffected.
    assert gateway.get(task_id).json()["status"] == "completed"
