"""The webhook dispatcher: announces finished tasks and delivers their events, with retries.

Run in the lifespan beside the worker, by the process holding the worker lock; the worker wakes
it as each task finishes (on PostgreSQL, whichever process finished it or cancelled it), and it
looks again every `idle_poll` seconds anyway, or sooner when a retry it scheduled is due. Each
round it
queues the events of tasks that finished since the last one (`WebhookStore.queue_events`), then
starts the deliveries that are due, at most `concurrency` at once. A delivery is tried until a
receiver answers 2xx; after each failure it waits `retry_base` seconds doubled per attempt
(±20 % jitter, at most `retry_cap`), and once the next try would fall more than `retry_for`
seconds after the event it is given up (state `failed`). Every attempt is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from veo_gateway.webhooks.sender import WebhookSender
from veo_gateway.webhooks.signing import signed_headers
from veo_gateway.webhooks.store import DELIVERED, FAILED, PENDING, Delivery, WebhookStore

log = logging.getLogger("veo_gateway.webhooks")

QUEUE_BATCH = 100  # finished tasks announced per transaction


@dataclass(frozen=True)
class DispatchConfig:
    """Where events go, how they are signed, and how hard delivery is tried."""

    endpoints: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    timeout: float = 10.0
    retry_base: float = 5.0
    retry_cap: float = 3600.0
    retry_for: float = 24 * 3600.0
    concurrency: int = 8
    idle_poll: float = 1.0


class WebhookDispatcher:
    """Queues and delivers webhook events until cancelled."""

    def __init__(
        self,
        *,
        store: WebhookStore,
        sender: WebhookSender,
        config: DispatchConfig,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sender = sender
        self._config = config
        self._rng = rng or random.Random()
        self._clock = clock  # Unix seconds: when events are queued, attempted and due
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._next_retry = math.inf  # the soonest retry this process scheduled

    def wake(self) -> None:
        """Look for finished tasks and due deliveries now rather than at the next poll."""
        self._wakeup.set()

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        config = self._config
        delay = config.retry_base * 2 ** min(attempts - 1, 30)
        return float(min(delay * self._rng.uniform(0.8, 1.2), config.retry_cap))

    async def run(self) -> None:
        """Dispatch until cancelled; deliveries under way are cut short (and retried later)."""
        await self._store.recover()
        try:
            while True:
                self._wakeup.clear()
                try:
                    await self.run_once()
                except (sa.exc.SQLAlchemyError, OSError):
                    log.exception("webhook dispatch round failed; trying again")
                # asyncio.timeout, not wait_for, which can lose a cancel on Python 3.11.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._sleep_seconds()):
                        await self._wakeup.wait()
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    def _sleep_seconds(self) -> float:
        """Until the next look: `idle_poll`, or less when a retry of ours is due before."""
        return max(0.0, min(self._config.idle_poll, self._next_retry - self._clock()))

    async def run_once(self) -> None:
        """One round: queue new events, start the due deliveries there is room for."""
        config = self._config
        now = self._clock()
        if now >= self._next_retry:
            self._next_retry = math.inf  # due now: this round's claim takes it
        if await self._store.queue_events(config.endpoints, now, QUEUE_BATCH) == QUEUE_BATCH:
            self.wake()  # more finished tasks are waiting: another round at once
        room = config.concurrency - len(self._running)
        if room <= 0 or not config.secrets:
            return  # without a secret nothing is sent: events wait, unsigned is never an option
        lease = config.timeout + 30.0
        for delivery in await self._store.claim_due(now, room, lease):
            task = asyncio.create_task(self._deliver(delivery), name=f"webhook-{delivery.id}")
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("webhook delivery failed to record", exc_info=error)
        self.wake()  # room for another delivery

    async def _deliver(self, delivery: Delivery) -> None:
        body = delivery.payload.encode("utf-8")
        at = self._clock()
        headers = signed_headers(self._config.secrets, delivery.id, int(at), body)
        started = time.monotonic()
        outcome = await self._sender.post(delivery.url, headers, body)
        duration = time.monotonic() - started
        attempts = delivery.attempts + 1
        now = self._clock()
        if outcome.delivered:
            state, next_at = DELIVERED, now
        else:
            next_at = now + self.backoff(attempts)
            gave_up = next_at > delivery.created_at + self._config.retry_for
            state = FAILED if gave_up else PENDING
            if not gave_up:
                self._next_retry = min(self._next_retry, next_at)
        await self._store.record(
            delivery,
            at=at,
            duration=duration,
            status=outcome.status,
            error=outcome.error,
            state=state,
            next_attempt_at=next_at,
        )
        if state == DELIVERED:
            log.info("webhook %s %s delivered to %s", delivery.id, delivery.event, delivery.url)
        else:
            log.warning(
                "webhook %s %s to %s: attempt %d failed (%s)%s",
                delivery.id,
                delivery.event,
                delivery.url,
                attempts,
                outcome.error,
                "; giving up" if state == FAILED else "",
            )
