"""Durable tasks: creation, reads and compare-and-swap state changes (a worker's leases on
them are in store/claims.py).

Every state change is `UPDATE ... WHERE id = :id AND state = :expected`: whoever changes a state
first wins, so a charge, a webhook or a completion happens once even with several workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from veo_gateway.store import usage as ledger
from veo_gateway.store.database import disk_full_errors
from veo_gateway.store.dialect import Dialect, dialect_of
from veo_gateway.store.reader import Reader
from veo_gateway.store.tables import idempotency_keys, tasks, video_digests, webhook_callbacks
from veo_gateway.store.usage import Charge, Limits

# An Idempotency-Key is remembered this long (seconds).
IDEMPOTENCY_TTL = 24 * 3600


class State(enum.StrEnum):
    """A task's state inside the gateway (each dialect renders it its own way)."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # deleted by its owner before it finished; never charged


FINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})
_FINAL_VALUES = frozenset(state.value for state in FINAL_STATES)


class IdempotencyConflict(Exception):
    """The owner already used this Idempotency-Key: here is what it created, and from what."""

    def __init__(self, *, task_id: str, request_hash: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id
        self.request_hash = request_hash


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
    lease_owner: str | None = None
    expected_seconds: float | None = None
    fail_reason: str | None = None
    video_path: str | None = None
    video_bytes: int | None = None
    sample_paths: list[str] | None = None
    samples_filtered: int | None = None
    upstream_refs: list[str | None] | None = None
    notified_at: float | None = None
    deleted_at: float | None = None
    expired_at: float | None = None

    @property
    def samples(self) -> list[str]:
        """Every delivered sample's reference, in Google's order (empty until completed)."""
        if self.sample_paths:
            return list(self.sample_paths)
        return [self.video_path] if self.video_path else []

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> Task:
        """Build a Task from a database row."""
        values: dict[str, Any] = dict(row)
        values["state"] = State(values["state"])
        return cls(**values)


def _task_from_columns(values: dict[str, Any]) -> Task:
    """A Task from a row's raw columns (the JSON column still text, the state a string)."""
    values["state"] = State(values["state"])
    values["request"] = json.loads(values["request"])
    if values.get("sample_paths") is not None:
        values["sample_paths"] = json.loads(values["sample_paths"])
    if values.get("upstream_refs") is not None:
        values["upstream_refs"] = json.loads(values["upstream_refs"])
    return Task(**values)


class TaskStore:
    """Tasks in a SQL database (SQLite or PostgreSQL) through SQLAlchemy Core.

    Single-task reads (the status poll, the hottest path) go through a `Reader`
    (store/reader.py), each database's leanest path for a primary-key select.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.dialect: Dialect = dialect_of(engine)
        self._reader: Reader[Task] = self.dialect.reader(
            engine, tasks, tasks.c.id, _task_from_columns
        )
        # SQLite has one writer at a time, and a blocked writer waits in its busy handler, which
        # sleeps in steps of up to 100 ms. Queueing this process's writers here instead turns
        # those sleeps into an ordered, immediate hand-over.
        self._write_lock = asyncio.Lock() if self.dialect.serial_writes else None

    def reading(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads, which need not queue behind this process's writers."""
        return self._engine.connect()

    def transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction on this store's database, queued like the store's own writes
        (for the parts that keep tables of their own beside the tasks: webhooks, usage)."""
        return self._write()

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (queued behind this process's other writers on SQLite); a full
        disk raises InsufficientStorage."""
        with disk_full_errors():
            if self._write_lock is None:
                async with self._engine.begin() as conn:
                    yield conn
                return
            async with self._write_lock, self._engine.begin() as conn:
                yield conn

    async def aclose(self) -> None:
        """Close the reader's connections (the engine is disposed by its owner)."""
        await self._reader.aclose()

    async def create(
        self,
        *,
        task_id: str,
        owner: str,
        dialect: str,
        model: str,
        request: dict[str, Any],
        idempotency: tuple[str, str] | None = None,
        charge: Charge | None = None,
        limits: Limits | None = None,
        callback_url: str | None = None,
    ) -> Task:
        """Insert a new queued task, due for submission now.

        With `idempotency` = (key, request hash), the key is recorded in the same transaction;
        when the owner already used it (within IDEMPOTENCY_TTL), nothing is inserted and
        IdempotencyConflict carries the earlier record. With `charge`, the task's usage entry
        is reserved in the same transaction, after checking the owner's `limits` (which raises
        ResourceExhausted, inserting nothing, when one would be passed). A `callback_url`
        is kept for the task's final event in the same transaction, so no crash can lose it.
        """
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
            if idempotency is not None:
                await self._claim_idempotency_key(conn, owner, task_id, idempotency, now)
            if charge is not None:
                await ledger.reserve(
                    conn,
                    task_id=task_id,
                    owner=owner,
                    limits=limits or Limits(),
                    charge=charge,
                    now=now,
                )
            await conn.execute(tasks.insert().values(**values))
            if callback_url is not None:
                await conn.execute(
                    webhook_callbacks.insert().values(task_id=task_id, url=callback_url)
                )
        return Task(**{**values, "state": State.QUEUED})  # type: ignore[arg-type]

    async def _claim_idempotency_key(
        self,
        conn: AsyncConnection,
        owner: str,
        task_id: str,
        idempotency: tuple[str, str],
        now: float,
    ) -> None:
        key, request_hash = idempotency
        # Expired keys go first (all of them: the index on created_at makes this cheap).
        await conn.execute(
            idempotency_keys.delete().where(idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL)
        )
        # The primary key (owner, key) decides a race: exactly one insert wins.
        inserted = await conn.execute(
            self.dialect.insert_ignore(idempotency_keys).values(
                owner=owner, key=key, request_hash=request_hash, task_id=task_id, created_at=now
            )
        )
        if inserted.rowcount == 1:
            return
        row = (
            (
                await conn.execute(
                    idempotency_keys.select().where(
                        idempotency_keys.c.owner == owner, idempotency_keys.c.key == key
                    )
                )
            )
            .mappings()
            .one()
        )
        raise IdempotencyConflict(task_id=row["task_id"], request_hash=row["request_hash"])

    async def find_idempotent(self, owner: str, key: str) -> tuple[str, str] | None:
        """(task id, request hash) recorded for the owner's key, unless it has expired."""
        query = sa.select(idempotency_keys.c.task_id, idempotency_keys.c.request_hash).where(
            idempotency_keys.c.owner == owner,
            idempotency_keys.c.key == key,
            idempotency_keys.c.created_at >= time.time() - IDEMPOTENCY_TTL,
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else (str(row[0]), str(row[1]))

    async def get(self, task_id: str, owner: str | None = None) -> Task | None:
        """The task, or None; with `owner`, only when that owner created it and has not
        deleted it."""
        task = await self._reader.one(task_id)
        if task is None or (
            owner is not None and (task.owner != owner or task.deleted_at is not None)
        ):
            return None
        return task

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
        """The earliest time a task in `state` is due, or None when none is pending.

        A task is ready at the later of its `due_at` and its lease's end. The soonest task not
        under a lease is one step down the (state, due_at) index; only when it is not due yet
        are the leased ones looked at (a scan of the state's rows, as the worker's sleep then
        has time for). With a thousand tasks in flight and some due, as under load, the worker
        asks this twice per round.
        """
        in_state = tasks.c.state == state.value
        unleased = (
            sa.select(tasks.c.due_at)
            .where(in_state, tasks.c.lease_until <= tasks.c.due_at)
            .order_by(tasks.c.due_at)
            .limit(1)
        )
        leased = sa.select(sa.func.min(tasks.c.lease_until)).where(
            in_state, tasks.c.lease_until > tasks.c.due_at
        )
        async with self._engine.connect() as conn:
            soonest = (await conn.execute(unleased)).scalar_one_or_none()
            if soonest is not None and soonest <= time.time():
                return float(soonest)
            lease_end = (await conn.execute(leased)).scalar_one_or_none()
        ready = [float(value) for value in (soonest, lease_end) if value is not None]
        return min(ready) if ready else None

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
        # Per waiting task, two index seeks however many finished tasks the table holds: its
        # owner's tasks in flight (owner, state) and latest submission (owner, submitted_at).
        past = tasks.alias("past")
        running = (
            sa.select(sa.func.count())
            .where(
                past.c.owner == ranked.c.owner,
                past.c.state.in_([State.SUBMITTING.value, State.IN_PROGRESS.value]),
            )
            .scalar_subquery()
        )
        last_served = (
            sa.select(sa.func.max(past.c.submitted_at))
            .where(past.c.owner == ranked.c.owner)
            .scalar_subquery()
        )
        turn = ranked.c.rank + running
        query = (
            tasks.select()
            .join(ranked, ranked.c.id == tasks.c.id)
            .order_by(
                turn,
                sa.nulls_first(last_served.asc()),
                ranked.c.created_at,
                ranked.c.id,
            )
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Task.from_row(row) for row in rows]

    async def finished_among(self, task_ids: Sequence[str]) -> set[str]:
        """Those of `task_ids` that have ended (or are gone)."""
        if not task_ids:
            return set()
        query = sa.select(tasks.c.id).where(
            tasks.c.id.in_(task_ids), tasks.c.state.not_in(list(_FINAL_VALUES))
        )
        async with self._engine.connect() as conn:
            unfinished = {str(task_id) for task_id in (await conn.execute(query)).scalars()}
        return set(task_ids) - unfinished

    async def in_flight_by_upstream(self) -> dict[str, list[str]]:
        """The tasks running upstream, per credential (to restore the pool after a restart)."""
        query = sa.select(tasks.c.upstream, tasks.c.id).where(
            tasks.c.state == State.IN_PROGRESS.value, tasks.c.upstream.is_not(None)
        )
        found: dict[str, list[str]] = {}
        async with self._engine.connect() as conn:
            for upstream, task_id in (await conn.execute(query)).all():
                found.setdefault(str(upstream), []).append(str(task_id))
        return found

    async def delete(self, task_id: str) -> bool:
        """Remove a task row (a create the upstream refused at once leaves nothing behind),
        and any idempotency key that pointed at it, so a retry with the key tries again."""
        async with self._write() as conn:
            result = await conn.execute(tasks.delete().where(tasks.c.id == task_id))
            await conn.execute(
                webhook_callbacks.delete().where(webhook_callbacks.c.task_id == task_id)
            )
            await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.task_id == task_id)
            )
            await conn.execute(video_digests.delete().where(video_digests.c.task_id == task_id))
            await ledger.forget(conn, task_id)
        return bool(result.rowcount == 1)

    async def mark_deleted(self, task_id: str, owner: str, reason: str) -> Task | None:
        """Hide the owner's task from them (DELETE), cancelling it if it has not finished,
        and free its Idempotency-Key.

        Returns the task as it was just before, or None when the owner has no such task.
        The cancel is a compare-and-swap per unfinished state, so a task finishing at the
        same moment is either completed or cancelled, never both.
        """
        now = time.time()
        while True:
            async with self._write() as conn:
                row = (
                    (
                        await conn.execute(
                            tasks.select().where(
                                tasks.c.id == task_id,
                                tasks.c.owner == owner,
                                tasks.c.deleted_at.is_(None),
                            )
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    return None
                before = Task.from_row(row)
                values: dict[str, Any] = {"deleted_at": now, "updated_at": now}
                if before.state not in FINAL_STATES:
                    values |= {
                        "state": State.CANCELLED.value,
                        "fail_reason": reason,
                        "completed_at": now,
                        "lease_until": 0.0,
                        "lease_owner": None,
                    }
                changed = await conn.execute(
                    tasks.update()
                    .where(tasks.c.id == task_id, tasks.c.state == before.state.value)
                    .values(**values)
                )
                if changed.rowcount == 1 and before.state not in FINAL_STATES:
                    await ledger.settle(conn, task_id, delivered=False, now=now)
                if changed.rowcount == 1:
                    # Its Idempotency-Key is freed with it, as when Google refuses a create: a
                    # key names a task its owner still has (README, "Idempotent creates").
                    await conn.execute(
                        idempotency_keys.delete().where(idempotency_keys.c.task_id == task_id)
                    )
            if changed.rowcount == 1:
                return before
            # Another writer (a worker on another replica) moved it meanwhile: look again.

    async def transition(self, task_id: str, expected: State, new: State, **fields: Any) -> bool:
        """Compare-and-swap `expected` -> `new`, setting `fields`; True when this call won."""
        return await self.update(task_id, expected, **fields, state=new.value)

    async def update(self, task_id: str, expected: State, **fields: Any) -> bool:
        """Set `fields` only while the task is still in `expected`; True when it was.

        A move to a final state settles the task's usage entry in the same transaction:
        charged when completed (the video is delivered), released otherwise.
        """
        async with self._write() as conn:
            return await compare_and_set(conn, task_id, expected, fields)

    async def list_for_owner(
        self,
        owner: str,
        *,
        limit: int = 100,
        after: str | None = None,
        newest_first: bool = True,
    ) -> Sequence[Task] | None:
        """The owner's tasks (not deleted) by creation time; `after` is the last id of the
        previous page (None is returned when the owner has no such task). Ties on the time are
        broken by id, so pages never skip or repeat a task."""
        visible = (tasks.c.owner == owner, tasks.c.deleted_at.is_(None))
        query = tasks.select().where(*visible)
        async with self._engine.connect() as conn:
            if after is not None:
                mark = (
                    await conn.execute(
                        sa.select(tasks.c.created_at).where(tasks.c.id == after, *visible)
                    )
                ).first()
                if mark is None:
                    return None
                at = mark[0]
                if newest_first:
                    later = sa.or_(
                        tasks.c.created_at < at,
                        sa.and_(tasks.c.created_at == at, tasks.c.id < after),
                    )
                else:
                    later = sa.or_(
                        tasks.c.created_at > at,
                        sa.and_(tasks.c.created_at == at, tasks.c.id > after),
                    )
                query = query.where(later)
            if newest_first:
                query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc())
            else:
                query = query.order_by(tasks.c.created_at.asc(), tasks.c.id.asc())
            rows = (await conn.execute(query.limit(limit))).mappings().all()
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


async def compare_and_set(
    conn: AsyncConnection,
    task_id: str,
    expected: State,
    fields: dict[str, Any],
    *conditions: sa.ColumnElement[bool],
) -> bool:
    """Set `fields` on the task while it is in `expected` (and meets `conditions`); True when
    it did. A move to a final state settles the task's usage entry in the same transaction."""
    now = time.time()
    result = await conn.execute(
        tasks.update()
        .where(tasks.c.id == task_id, tasks.c.state == expected.value, *conditions)
        .values(**fields, updated_at=now)
    )
    won = bool(result.rowcount == 1)
    new_state = fields.get("state")
    if won and new_state in _FINAL_VALUES:
        delivered = new_state == State.COMPLETED.value
        paths = fields.get("sample_paths")
        count = (len(paths) if paths else 1) if delivered else 0
        await ledger.settle(conn, task_id, delivered=count, now=now)
    return won
