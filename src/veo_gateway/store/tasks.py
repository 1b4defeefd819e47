"""Durable tasks: creation, reads, leases and compare-and-swap state changes.

Every state change is `UPDATE ... WHERE id = :id AND state = :expected`: whoever changes a state
first wins, so a charge, a webhook or a completion happens once even with several workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from veo_gateway.store.tables import tasks


class State(enum.StrEnum):
    """A task's state inside the gateway (each dialect renders it its own way)."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # deleted by its owner before it finished; never charged


FINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})

_GET_SQL = f"SELECT {', '.join(c.name for c in tasks.c)} FROM tasks WHERE id = ?"  # noqa: S608


@dataclass(frozen=True)
class Task:
    """One row of the tasks table."""

    id: str
    owner: str
    dialect: str
    model: str
    state: State
    request: dict[str, Any]
    created_at: float
    updated_at: float
    upstream: str | None = None
    upstream_model: str | None = None
    operation_name: str | None = None
    attempts: int = 0
    submitted_at: float | None = None
    completed_at: float | None = None
    due_at: float = 0.0
    lease_until: float = 0.0
    expected_seconds: float | None = None
    fail_reason: str | None = None
    video_path: str | None = None
    video_bytes: int | None = None
    notified_at: float | None = None
    deleted_at: float | None = None

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> Task:
        """Build a Task from a database row."""
        values: dict[str, Any] = dict(row)
        values["state"] = State(values["state"])
        return cls(**values)


class TaskStore:
    """Tasks in a SQL database (SQLite or PostgreSQL) through SQLAlchemy Core.

    On SQLite, single-task reads (the status poll, the hottest path) use a plain read-only
    sqlite3 connection on the event loop instead of the async engine: a primary-key read takes
    tens of microseconds and, in WAL mode, never waits for writers, while a hop to aiosqlite's
    thread and back costs several times that (see docs/benchmarks.md).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader: sqlite3.Connection | None = None
        # SQLite has one writer at a time, and a blocked writer waits in its busy handler, which
        # sleeps in steps of up to 100 ms. Queueing this process's writers here instead turns
        # those sleeps into an ordered, immediate hand-over.
        self._write_lock: asyncio.Lock | None = None
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._reader = sqlite3.connect(url.database, check_same_thread=False)
            self._reader.row_factory = sqlite3.Row
            self._reader.execute("PRAGMA query_only=1")
            self._reader.execute("PRAGMA busy_timeout=1000")
            self._write_lock = asyncio.Lock()

    def transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction on this store's database, queued like the store's own writes
        (for the parts that keep tables of their own beside the tasks: webhooks, usage)."""
        return self._write()

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (queued behind this process's other writers on SQLite)."""
        if self._write_lock is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self._engine.begin() as conn:
            yield conn

    def close(self) -> None:
        """Close the direct reader (the engine is disposed by its owner)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def create(
        self, *, task_id: str, owner: str, dialect: str, model: str, request: dict[str, Any]
    ) -> Task:
        """Insert a new queued task, due for submission now."""
        now = time.time()
        values = {
            "id": task_id,
            "owner": owner,
            "dialect": dialect,
            "model": model,
            "state": State.QUEUED.value,
            "request": request,
            "created_at": now,
            "updated_at": now,
            "due_at": now,
            "lease_until": 0.0,
            "attempts": 0,
        }
        async with self._write() as conn:
            await conn.execute(tasks.insert().values(**values))
        return Task(**{**values, "state": State.QUEUED})  # type: ignore[arg-type]

    async def get(self, task_id: str, owner: str | None = None) -> Task | None:
        """The task, or None; with `owner`, only when that owner created it and has not
        deleted it."""
        if self._reader is not None:
            return self._read_one(task_id, owner)
        query = tasks.select().where(tasks.c.id == task_id)
        if owner is not None:
            query = query.where(tasks.c.owner == owner, tasks.c.deleted_at.is_(None))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return Task.from_row(row) if row else None

    def _read_one(self, task_id: str, owner: str | None) -> Task | None:
        assert self._reader is not None
        row = self._reader.execute(_GET_SQL, (task_id,)).fetchone()
        if row is None or (
            owner is not None and (row["owner"] != owner or row["deleted_at"] is not None)
        ):
            return None
        values: dict[str, Any] = dict(row)
        values["state"] = State(values["state"])
        values["request"] = json.loads(values["request"])
        return Task(**values)

    async def ping(self) -> None:
        """One round trip to the database (readiness)."""
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def count_in_flight(self) -> int:
        """Tasks being submitted or running upstream."""
        query = sa.select(sa.func.count()).where(
            tasks.c.state.in_([State.SUBMITTING.value, State.IN_PROGRESS.value])
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def next_due_at(self, state: State) -> float | None:
        """The earliest time a task in `state` is due, or None when none is pending."""
        ready_at = sa.case(
            (tasks.c.due_at > tasks.c.lease_until, tasks.c.due_at), else_=tasks.c.lease_until
        )
        query = sa.select(sa.func.min(ready_at)).where(tasks.c.state == state.value)
        async with self._engine.connect() as conn:
            value = (await conn.execute(query)).scalar_one_or_none()
        return float(value) if value is not None else None

    async def claim(
        self,
        state: State,
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[Task]:
        """Lease up to `limit` due tasks in `state`, oldest due first.

        A task is due when `due_at` has passed and no live lease is on it. Each row is taken with
        its own compare-and-swap, so two workers never take the same task.
        """
        if limit <= 0:
            return []
        now = time.time()
        candidates = (
            sa.select(tasks.c.id)
            .where(tasks.c.state == state.value, tasks.c.due_at <= now, tasks.c.lease_until <= now)
            .order_by(tasks.c.due_at, tasks.c.created_at)
            .limit(limit)
        )
        claimed: list[Task] = []
        async with self._write() as conn:
            ids = (await conn.execute(candidates)).scalars().all()
            for task_id in ids:
                values = {"lease_until": now + lease_seconds, "updated_at": now}
                if (task := await _leased_update(conn, task_id, state, now, values)) is not None:
                    claimed.append(task)
        return claimed

    async def due_queued(self, limit: int) -> list[Task]:
        """Queued tasks due for submission: oldest first, taking turns between owners.

        A task's turn is its place in its owner's queue plus the owner's tasks already running
        upstream, and lower turns go first: the first of every owner comes before the second of
        any, and an owner with work in flight waits behind those with none. Between equal turns,
        the owner served longest ago (or never) goes first. So one client's burst cannot starve
        the others.
        """
        if limit <= 0:
            return []
        now = time.time()
        rank = (
            sa.func.row_number()
            .over(partition_by=tasks.c.owner, order_by=(tasks.c.created_at, tasks.c.id))
            .label("rank")
        )
        ranked = (
            sa.select(tasks.c.id, tasks.c.owner, tasks.c.created_at, rank)
            .where(
                tasks.c.state == State.QUEUED.value,
                tasks.c.due_at <= now,
                tasks.c.lease_until <= now,
            )
            .subquery()
        )
        in_flight = tasks.c.state.in_([State.SUBMITTING.value, State.IN_PROGRESS.value])
        served = (
            sa.select(
                tasks.c.owner,
                sa.func.count().filter(in_flight).label("running"),
                sa.func.max(tasks.c.submitted_at).label("last_served"),
            )
            # Recent history is enough to take turns; older rows need not be read.
            .where(sa.or_(in_flight, tasks.c.submitted_at > now - 3600))
            .group_by(tasks.c.owner)
            .subquery()
        )
        turn = ranked.c.rank + sa.func.coalesce(served.c.running, 0)
        query = (
            tasks.select()
            .join(ranked, ranked.c.id == tasks.c.id)
            .outerjoin(served, served.c.owner == ranked.c.owner)
            .order_by(
                turn,
                sa.nulls_first(served.c.last_served.asc()),
                ranked.c.created_at,
                ranked.c.id,
            )
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Task.from_row(row) for row in rows]

    async def claim_task(
        self, task_id: str, expected: State, new: State, *, lease_seconds: float, **fields: Any
    ) -> Task | None:
        """Compare-and-swap one task into `new` under a lease; the updated task, or None."""
        now = time.time()
        values = {
            **fields,
            "state": new.value,
            "lease_until": now + lease_seconds,
            "updated_at": now,
        }
        async with self._write() as conn:
            return await _leased_update(conn, task_id, expected, now, values)

    async def in_flight_by_upstream(self) -> dict[str, int]:
        """Running operations per credential (to restore the pool after a restart)."""
        query = (
            sa.select(tasks.c.upstream, sa.func.count())
            .where(tasks.c.state == State.IN_PROGRESS.value, tasks.c.upstream.is_not(None))
            .group_by(tasks.c.upstream)
        )
        async with self._engine.connect() as conn:
            return {str(k): int(v) for k, v in (await conn.execute(query)).all()}

    async def delete(self, task_id: str) -> bool:
        """Remove a task row (a create the upstream refused at once leaves nothing behind)."""
        async with self._write() as conn:
            result = await conn.execute(tasks.delete().where(tasks.c.id == task_id))
        return bool(result.rowcount == 1)

    async def transition(self, task_id: str, expected: State, new: State, **fields: Any) -> bool:
        """Compare-and-swap `expected` -> `new`, setting `fields`; True when this call won."""
        return await self.update(task_id, expected, **fields, state=new.value)

    async def update(self, task_id: str, expected: State, **fields: Any) -> bool:
        """Set `fields` only while the task is still in `expected`; True when it was."""
        values = {**fields, "updated_at": time.time()}
        async with self._write() as conn:
            result = await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.state == expected.value)
                .values(**values)
            )
        return bool(result.rowcount == 1)

    async def recover(self) -> int:
        """Release every lease and requeue interrupted submissions; run by the only worker.

        A submission cut off by a crash cannot be told apart from one that never left: Google
        offers no idempotency key, so it is submitted again (see docs/architecture.md).
        """
        now = time.time()
        async with self._write() as conn:
            requeued = await conn.execute(
                tasks.update()
                .where(tasks.c.state == State.SUBMITTING.value)
                .values(state=State.QUEUED.value, lease_until=0.0, due_at=now, updated_at=now)
            )
            await conn.execute(
                tasks.update()
                .where(tasks.c.state == State.IN_PROGRESS.value, tasks.c.lease_until > 0)
                .values(lease_until=0.0, due_at=now)
            )
        return int(requeued.rowcount)

    async def list_for_owner(self, owner: str, *, limit: int = 100) -> Sequence[Task]:
        """The owner's tasks, newest first."""
        query = (
            tasks.select()
            .where(tasks.c.owner == owner)
            .order_by(tasks.c.created_at.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Task.from_row(row) for row in rows]

    async def recent_latencies(self, model: str, *, limit: int = 50) -> list[float]:
        """Seconds from submission to completion of the model's last completed tasks."""
        query = (
            sa.select(tasks.c.completed_at - tasks.c.submitted_at)
            .where(
                tasks.c.model == model,
                tasks.c.state == State.COMPLETED.value,
                tasks.c.submitted_at.is_not(None),
            )
            .order_by(tasks.c.completed_at.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [float(v) for v in (await conn.execute(query)).scalars().all() if v]


async def _leased_update(
    conn: AsyncConnection, task_id: str, expected: State, now: float, values: dict[str, Any]
) -> Task | None:
    """Set `values` on a task still in `expected` with no live lease; the row, or None."""
    row = (
        (
            await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    tasks.c.state == expected.value,
                    tasks.c.lease_until <= now,
                )
                .values(**values)
                .returning(*tasks.c)
            )
        )
        .mappings()
        .first()
    )
    return Task.from_row(row) if row else None
