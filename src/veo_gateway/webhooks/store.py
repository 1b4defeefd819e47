"""The webhook outbox: deliveries queued with the task's `notified_at`, and their attempts.

Queueing is exactly once: the transaction that inserts a finished task's deliveries is the one
that sets its `notified_at`, guarded by `notified_at IS NULL`, so a crash before the commit
leaves the task to be announced again and a crash after it leaves the deliveries in the outbox.
Delivery is at least once: an attempt cut short by a crash is made again after the restart.
"""

from __future__ import annotations

import datetime
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from veo_gateway.api.render import render_task
from veo_gateway.store.tables import tasks, webhook_attempts, webhook_callbacks, webhook_deliveries
from veo_gateway.store.tasks import State, Task, TaskStore

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
EVENTS = {State.COMPLETED: "video.completed", State.FAILED: "video.failed"}
_FINAL = (State.COMPLETED.value, State.FAILED.value, State.CANCELLED.value)


def new_message_id() -> str:
    """A `webhook-id`: unique per event and endpoint, the same on every retry."""
    return "msg_" + secrets.token_hex(16)


def isoformat(timestamp: float) -> str:
    """Unix seconds as an ISO 8601 UTC time (`2026-11-25T08:52:05.123Z`)."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_payload(task: Task, now: float, retention_seconds: float) -> str:
    """The JSON body of a task's final event (the exact text signed and sent on every try)."""
    event = {
        "type": EVENTS[task.state],
        "timestamp": isoformat(task.completed_at or task.updated_at),
        "data": render_task(task, now, retention_seconds),
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Delivery:
    """One event for one endpoint."""

    id: str
    task_id: str
    url: str
    event: str
    payload: str
    attempts: int
    created_at: float


class WebhookStore:
    """Deliveries and attempts in the gateway's database (writes go through the task store's
    queued transactions)."""

    def __init__(self, tasks: TaskStore, engine: AsyncEngine, *, retention_seconds: float) -> None:
        self._tasks = tasks
        self._engine = engine
        self._retention_seconds = retention_seconds  # dates `expires_at` in the events

    async def queue_events(self, endpoints: Sequence[str], now: float, limit: int = 100) -> int:
        """Queue the final events of up to `limit` finished, unannounced tasks (one delivery
        per endpoint plus the task's callback URL); returns how many tasks were announced."""
        announced = 0
        async with self._tasks.transaction() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(tasks)
                        .where(tasks.c.notified_at.is_(None), tasks.c.state.in_(_FINAL))
                        .order_by(tasks.c.updated_at)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
            for row in rows:
                claimed = await conn.execute(
                    tasks.update()
                    .where(tasks.c.id == row["id"], tasks.c.notified_at.is_(None))
                    .values(notified_at=now)
                )
                if claimed.rowcount != 1:
                    continue
                announced += 1
                task = Task.from_row(row)
                if task.state in EVENTS:
                    await self._insert_deliveries(conn, task, endpoints, now)
        return announced

    async def _insert_deliveries(
        self, conn: AsyncConnection, task: Task, endpoints: Sequence[str], now: float
    ) -> None:
        callback = await conn.scalar(
            sa.select(webhook_callbacks.c.url).where(webhook_callbacks.c.task_id == task.id)
        )
        urls = list(dict.fromkeys([*endpoints, *([callback] if callback else [])]))
        if not urls:
            return
        payload = event_payload(task, now, self._retention_seconds)
        await conn.execute(
            webhook_deliveries.insert(),
            [
                {
                    "id": new_message_id(),
                    "task_id": task.id,
                    "url": url,
                    "event": EVENTS[task.state],
                    "payload": payload,
                    "state": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "lease_until": 0.0,
                    "created_at": now,
                }
                for url in urls
            ],
        )

    async def recover(self) -> None:
        """Release every lease at start-up, when this is the one process that delivers (SQLite's
        worker-lock holder); beside other dispatchers, their live leases stay theirs (an
        attempt is bounded by its timeout, and an expired lease is due by itself)."""
        if not self._tasks.dialect.single_worker:
            return
        async with self._tasks.transaction() as conn:
            await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.lease_until > 0)
                .values(lease_until=0.0)
            )

    async def claim_due(self, now: float, limit: int, lease: float) -> list[Delivery]:
        """Up to `limit` pending deliveries whose time has come, leased for `lease` seconds."""
        d = webhook_deliveries.c
        claimed: list[Delivery] = []
        async with self._tasks.transaction() as conn:
            rows = (
                await conn.execute(
                    sa.select(d.id, d.task_id, d.url, d.event, d.payload, d.attempts, d.created_at)
                    .where(d.state == PENDING, d.next_attempt_at <= now, d.lease_until <= now)
                    .order_by(d.next_attempt_at)
                    .limit(limit)
                )
            ).all()
            for row in rows:
                result = await conn.execute(
                    webhook_deliveries.update()
                    .where(d.id == row.id, d.state == PENDING, d.lease_until <= now)
                    .values(lease_until=now + lease)
                )
                if result.rowcount == 1:
                    claimed.append(Delivery(**row._asdict()))
        return claimed

    async def record(
        self,
        delivery: Delivery,
        *,
        at: float,
        duration: float,
        status: int | None,
        error: str | None,
        state: str,
        next_attempt_at: float,
    ) -> None:
        """Record one attempt and its consequence for the delivery, in one transaction."""
        async with self._tasks.transaction() as conn:
            await conn.execute(
                webhook_attempts.insert().values(
                    delivery_id=delivery.id, at=at, status=status, error=error, duration=duration
                )
            )
            await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == delivery.id)
                .values(
                    state=state,
                    attempts=webhook_deliveries.c.attempts + 1,
                    next_attempt_at=next_attempt_at,
                    lease_until=0.0,
                    last_status=status,
                    last_error=error,
                    delivered_at=at + duration if state == DELIVERED else None,
                )
            )

    async def deliveries(self, task_id: str) -> list[dict[str, Any]]:
        """The deliveries of a task's event, oldest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(webhook_deliveries)
                .where(webhook_deliveries.c.task_id == task_id)
                .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.url)
            )
            return [dict(row) for row in rows.mappings()]

    async def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        """The attempts of one delivery, oldest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(webhook_attempts)
                .where(webhook_attempts.c.delivery_id == delivery_id)
                .order_by(webhook_attempts.c.at, webhook_attempts.c.id)
            )
            return [dict(row) for row in rows.mappings()]
