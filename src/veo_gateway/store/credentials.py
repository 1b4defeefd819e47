"""Credential state shared by every process: slots in flight, the requests-per-minute window,
cool-downs after a 429 and out-of-service marks after a 401/403.

The database is the truth, so the caps hold for all workers together. Taking a slot is one
transaction under a lock (`Dialect.lock`: PostgreSQL's advisory lock per credential, or one for
the whole pool when the pool has a cap of its own; SQLite's write lock): read the state, let the
pool choose, write the slot and the request. Slots are keyed by task, so a task holds at most one
and giving one back twice does nothing. A slot whose holder died is never given back, so a slot
counts only while its task is in flight (`live_slot`), and dead ones are pruned as slots are
taken.

A submission cut off on the wire (its worker died or stopped mid-call) may be running at Google
all the same, and Google counts it against the credential until it ends. When such a task is
requeued, its slot stays behind as a cut-off slot (`hold_cut_off`) that counts until about when
the render would end, so the resubmission does not take Google past the cap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from veo_gateway.store.dialect import dialect_of
from veo_gateway.store.tables import credential_requests, credential_slots, credential_state, tasks
from veo_gateway.store.tasks import State, TaskStore

WINDOW = 60.0  # seconds of the requests-per-minute window
# Seconds a slot counts before its task is claimed: the pool takes a slot, then the worker
# claims the task (one write later). A slot of a task still queued past this is a dead
# worker's, or one whose claim lost.
HANDOVER = 60.0
POOL_LOCK = "credential-pool"  # the lock of acquires that check the pool's own cap


def live_slot(now: float) -> sa.ColumnElement[bool]:
    """A slot counts while its task is running upstream, is being submitted under a live lease,
    or is queued and the slot less than HANDOVER old (taken, about to be claimed). A cut-off
    slot counts until its `held_until`.

    So a slot held by a worker that died is freed when its task leaves its in-flight state (a
    cancel), when it is requeued (the requeue deletes it, and leaves a cut-off slot instead), or
    when its submission lease runs out. No time written by another process (a task's
    `updated_at`) is compared with the slot's: the clocks of two machines may differ.
    """
    live = sa.or_(
        credential_slots.c.held_until > now,
        tasks.c.state == State.IN_PROGRESS.value,
        sa.and_(tasks.c.state == State.SUBMITTING.value, tasks.c.lease_until > now),
        sa.and_(
            credential_slots.c.held_until.is_(None),
            credential_slots.c.acquired_at > now - HANDOVER,
            sa.or_(tasks.c.id.is_(None), tasks.c.state == State.QUEUED.value),
        ),
    )
    # The outer join's NULLs (a slot with no task, a slot not cut off) make parts of the OR
    # NULL: without the coalesce, NOT live_slot would be NULL and the prune keep dead slots.
    return sa.func.coalesce(live, sa.false())


_SLOTS_AND_TASKS = credential_slots.outerjoin(tasks, tasks.c.id == credential_slots.c.task_id)

CUT_OFF = "cut-off:"  # the prefix of a cut-off slot's key, before the task's id


@dataclass(frozen=True)
class CutOff:
    """A submission requeued after it was cut off on the wire: its task, the credential it was
    sent with, and the seconds Google may keep working on it."""

    task_id: str
    credential: str
    seconds: float


async def hold_cut_off(conn: AsyncConnection, cut_off: Collection[CutOff], now: float) -> None:
    """Keep the slots of submissions cut off on the wire for as long as each may run at Google
    (inside the transaction that requeues them, so no acquire sees the slot free in between)."""
    rows = [
        {
            "task_id": CUT_OFF + c.task_id,
            "credential": c.credential,
            "acquired_at": now,
            "held_until": now + c.seconds,
        }
        for c in cut_off
        if c.seconds > 0
    ]
    if not rows:
        return
    insert = dialect_of(conn).insert(credential_slots)
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=[credential_slots.c.task_id],
            set_={
                "credential": insert.excluded.credential,
                "acquired_at": insert.excluded.acquired_at,
                "held_until": insert.excluded.held_until,
            },
        ),
        rows,
    )


@dataclass(frozen=True)
class CredentialState:
    """One credential's shared state at a moment."""

    id: str
    in_flight: int = 0
    requests: int = 0  # in the last minute
    oldest_request: float | None = None  # of those
    cool_until: float = 0.0
    out_of_service: str | None = None
    out_since: float | None = None

    def free_at(self, now: float, rpm: int, max_in_flight: int) -> float:
        """When this credential can take a submission (now if it can; inf if never, or until
        a slot is given back)."""
        if self.out_of_service is not None or self.in_flight >= max_in_flight:
            return math.inf
        ready = max(now, self.cool_until)
        if self.requests >= rpm and self.oldest_request is not None:
            ready = max(ready, self.oldest_request + WINDOW)
        return ready


@dataclass(frozen=True)
class Taken:
    """What `acquire` saw under its lock: every candidate's state and the pool's slots."""

    states: Mapping[str, CredentialState]
    total_in_flight: int
    now: float  # the time the states are for, read once the lock was held


@dataclass(frozen=True)
class Slot:
    """A slot taken: on which credential, and when (which tells it from a later slot of the
    same task)."""

    credential: str
    taken_at: float


# The pool's choice among the candidates (a credential id, or None when none is free); it may
# raise to refuse, which rolls the transaction back.
Chooser = Callable[[Taken], str | None]


class CredentialStore:
    """Reads and writes of the shared credential state, in the task store's database."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    async def acquire(
        self,
        ids: Collection[str],
        holder: str,
        choose: Chooser,
        *,
        now: float | None = None,
        pool: Collection[str] | None = None,
    ) -> Slot | None:
        """Take a slot for task `holder` on the credential `choose` picks among `ids`, and count
        the request in its window; the slot, or None (none free, or another acquire for the
        holder won). With `pool` (every credential of a pool with a cap of its own), the
        slots of all of them are counted too, under one lock for the pool.

        The time is read once the lock is held (`now` overrides it, for tests): one read before
        a wait on the lock would judge slots taken meanwhile by a time before they were.
        """
        async with self._store.transaction() as conn:
            dialect = dialect_of(conn)
            keys = [POOL_LOCK] if pool is not None else [f"credential:{c}" for c in sorted(ids)]
            for key in keys:  # always in one order, so two acquires never deadlock
                await dialect.lock(conn, key)
            now = time.time() if now is None else now
            await self._prune(conn, ids, holder, now)
            states = await _states(conn, ids, now)
            total = 0 if pool is None else await _total_in_flight(conn, pool, now)
            chosen = choose(Taken(states, total, now))
            if chosen is None:
                return None
            inserted = await conn.execute(
                dialect.insert(credential_slots)
                .values(task_id=holder, credential=chosen, acquired_at=now)
                .on_conflict_do_nothing()
            )
            if inserted.rowcount != 1:
                return None  # the task holds a slot already (another acquire for it won)
            await conn.execute(credential_requests.insert().values(credential=chosen, at=now))
        return Slot(chosen, now)

    async def _prune(
        self, conn: AsyncConnection, ids: Collection[str], holder: str, now: float
    ) -> None:
        await conn.execute(
            credential_requests.delete().where(
                credential_requests.c.credential.in_(ids),
                credential_requests.c.at <= now - WINDOW,
            )
        )
        dead = sa.select(credential_slots.c.task_id).select_from(_SLOTS_AND_TASKS)
        # The holder's own live slot stays: a create's inline submission and the worker's
        # round may ask for one task at once, and only one of them may hold its slot.
        dead = dead.where(
            sa.or_(credential_slots.c.credential.in_(ids), credential_slots.c.task_id == holder),
            sa.not_(live_slot(now)),
        )
        await conn.execute(credential_slots.delete().where(credential_slots.c.task_id.in_(dead)))

    async def hold(self, cut_off: CutOff) -> None:
        """Keep a cut-off slot for a submission whose outcome is unknown (see `hold_cut_off`)."""
        async with self._store.transaction() as conn:
            await hold_cut_off(conn, [cut_off], time.time())

    async def release(self, credential: str, holder: str, taken_at: float | None = None) -> None:
        """Give back task `holder`'s slot on `credential`; nothing when it holds none. With
        `taken_at` (`Slot.taken_at`), only that slot: a job giving back the slot of a task it
        has just requeued must not take away the one another worker took for it since."""
        condition = sa.and_(
            credential_slots.c.task_id == holder, credential_slots.c.credential == credential
        )
        if taken_at is not None:
            condition = sa.and_(condition, credential_slots.c.acquired_at == taken_at)
        async with self._store.transaction() as conn:
            await conn.execute(credential_slots.delete().where(condition))

    async def restore(self, holders: Mapping[str, Collection[str]], now: float) -> None:
        """Make sure the given tasks hold their slots (the running tasks, at a worker's start)."""
        rows = [
            {"task_id": task_id, "credential": cid, "acquired_at": now}
            for cid, task_ids in holders.items()
            for task_id in task_ids
        ]
        if not rows:
            return
        async with self._store.transaction() as conn:
            insert = dialect_of(conn).insert(credential_slots).on_conflict_do_nothing()
            await conn.execute(insert, rows)

    async def cool_down(self, credential: str, until: float) -> None:
        """Rest `credential` until `until` (a later rest already recorded stays)."""
        async with self._store.transaction() as conn:
            insert = dialect_of(conn).insert(credential_state)
            await conn.execute(
                insert.values(credential=credential, cool_until=until).on_conflict_do_update(
                    index_elements=[credential_state.c.credential],
                    set_={
                        "cool_until": sa.case(
                            (credential_state.c.cool_until < until, until),
                            else_=credential_state.c.cool_until,
                        )
                    },
                )
            )

    async def take_out_of_service(self, credential: str, reason: str, now: float) -> None:
        """Mark `credential` out of service with why (the first reason recorded stays)."""
        async with self._store.transaction() as conn:
            insert = dialect_of(conn).insert(credential_state)
            await conn.execute(
                insert.values(
                    credential=credential, out_of_service=reason, out_since=now
                ).on_conflict_do_update(
                    index_elements=[credential_state.c.credential],
                    set_={"out_of_service": reason, "out_since": now},
                    where=credential_state.c.out_of_service.is_(None),
                )
            )

    async def put_back_in_service(self, ids: Collection[str]) -> None:
        """Clear the out-of-service marks of `ids` (a worker starting tries them again)."""
        async with self._store.transaction() as conn:
            await conn.execute(
                credential_state.update()
                .where(
                    credential_state.c.credential.in_(ids),
                    credential_state.c.out_of_service.is_not(None),
                )
                .values(out_of_service=None, out_since=None)
            )

    async def states(self, ids: Collection[str], now: float) -> dict[str, CredentialState]:
        """Every credential's shared state at `now` (one read each of slots, window, marks)."""
        async with self._store.reading() as conn:
            return await _states(conn, ids, now)


async def _states(
    conn: AsyncConnection, ids: Collection[str], now: float
) -> dict[str, CredentialState]:
    slots = (
        sa.select(credential_slots.c.credential, sa.func.count())
        .select_from(_SLOTS_AND_TASKS)
        .where(credential_slots.c.credential.in_(ids), live_slot(now))
        .group_by(credential_slots.c.credential)
    )
    window = (
        sa.select(
            credential_requests.c.credential,
            sa.func.count(),
            sa.func.min(credential_requests.c.at),
        )
        .where(credential_requests.c.credential.in_(ids), credential_requests.c.at > now - WINDOW)
        .group_by(credential_requests.c.credential)
    )
    marks = sa.select(credential_state).where(credential_state.c.credential.in_(ids))
    in_flight = {str(cid): int(n) for cid, n in (await conn.execute(slots)).all()}
    requests = {str(cid): (int(n), float(t)) for cid, n, t in (await conn.execute(window)).all()}
    rows = {row["credential"]: row for row in (await conn.execute(marks)).mappings().all()}
    found = {}
    for cid in ids:
        count, oldest = requests.get(cid, (0, None))
        row = rows.get(cid)
        found[cid] = CredentialState(
            id=cid,
            in_flight=in_flight.get(cid, 0),
            requests=count,
            oldest_request=oldest,
            cool_until=float(row["cool_until"]) if row else 0.0,
            out_of_service=row["out_of_service"] if row else None,
            out_since=row["out_since"] if row else None,
        )
    return found


async def _total_in_flight(conn: AsyncConnection, ids: Collection[str], now: float) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(_SLOTS_AND_TASKS)
        .where(credential_slots.c.credential.in_(ids), live_slot(now))
    )
    return int(await conn.scalar(query) or 0)
