"""Claims: one worker process's leases on tasks, safe with any number of workers on a database.

A lease is two columns of a task, `lease_owner` (the claiming worker's random id) and
`lease_until` (when it runs out). A task is claimable when its `due_at` has passed and no live
lease is on it; a claim is one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)` on
PostgreSQL (store/dialect.py; on SQLite the one writer makes the lock unneeded), so workers
claiming at once take disjoint tasks, and the UPDATE repeats the conditions, as a
compare-and-swap, so none is taken twice.

Everything a worker then does to the task is a compare-and-swap on the state *and* the owner:
once another worker took the task over (the lease ran out), the old holder's writes change
nothing. A live worker renews the leases of its calls still running (`renew`), so a slow call
keeps its task; a dead worker's leases run out and another worker takes the work up: polls and
downloads are simply claimed again, and a submission cut off that way is requeued
(`take_over_expired`) and submitted again, the documented double (docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from veo_gateway.store.credentials import CutOff, hold_cut_off
from veo_gateway.store.tables import credential_slots, tasks
from veo_gateway.store.tasks import State, Task, TaskStore, compare_and_set

_REQUEUED = {"state": State.QUEUED.value, "upstream": None, "upstream_model": None}

# Seconds a submission of `model` cut off on the wire may keep running at Google (the expected
# render time): its credential slot is held that long (store/credentials.py).
RenderTime = Callable[[str], float]


class Claims:
    """The leases of one worker (`owner`, its id) on the tasks of `store`."""

    def __init__(self, store: TaskStore, owner: str) -> None:
        self._store = store
        self.owner = owner

    async def claim(self, state: State, *, limit: int, lease_seconds: float) -> list[Task]:
        """Lease up to `limit` due tasks in `state`, oldest due first."""
        if limit <= 0:
            return []
        now = time.time()
        candidates = (
            sa.select(tasks.c.id)
            .where(_claimable(state, now), tasks.c.due_at <= now)
            .order_by(tasks.c.due_at, tasks.c.created_at)
            .limit(limit)
        )
        async with self._store.transaction() as conn:
            taken = await self._take(conn, candidates, state, now, lease_seconds, {})
        return sorted(taken, key=lambda task: (task.due_at, task.created_at))

    async def claim_task(
        self, task_id: str, expected: State, new: State, *, lease_seconds: float, **fields: Any
    ) -> Task | None:
        """Lease one task in `expected` (with no live lease) and move it to `new`, setting
        `fields`; the updated task, or None when it was not there to take."""
        now = time.time()
        candidate = sa.select(tasks.c.id).where(tasks.c.id == task_id, _claimable(expected, now))
        values = {**fields, "state": new.value}
        async with self._store.transaction() as conn:
            taken = await self._take(conn, candidate, expected, now, lease_seconds, values)
        return taken[0] if taken else None

    async def _take(
        self,
        conn: AsyncConnection,
        candidates: sa.Select[tuple[str]],
        state: State,
        now: float,
        lease_seconds: float,
        values: dict[str, Any],
    ) -> list[Task]:
        locked = self._store.dialect.claimable(candidates).scalar_subquery()
        rows = (
            (
                await conn.execute(
                    tasks.update()
                    # The conditions again, outside the subquery: the compare-and-swap.
                    .where(tasks.c.id.in_(locked), _claimable(state, now))
                    .values(
                        **values,
                        lease_owner=self.owner,
                        lease_until=now + lease_seconds,
                        updated_at=now,
                    )
                    .returning(*tasks.c)
                )
            )
            .mappings()
            .all()
        )
        return [Task.from_row(row) for row in rows]

    async def renew(self, task_ids: Collection[str], *, lease_seconds: float) -> set[str]:
        """Extend this worker's leases on `task_ids`; returns those it still held (a task
        missing from the answer was taken over, cancelled or finished)."""
        if not task_ids:
            return set()
        now = time.time()
        async with self._store.transaction() as conn:
            result = await conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(list(task_ids)), tasks.c.lease_owner == self.owner)
                .values(lease_until=now + lease_seconds)
                .returning(tasks.c.id)
            )
            return {str(task_id) for task_id in result.scalars().all()}

    async def give_up(self, task_ids: Collection[str], render_time: RenderTime) -> list[str]:
        """Lift this worker's leases on `task_ids`, whose jobs were cut off (a shutdown), so
        another worker takes them at once: polls are due again, submissions requeued (one cut
        off may have reached Google: the documented double, its slot held for `render_time`).
        Returns the requeued ones."""
        if not task_ids:
            return []
        now = time.time()
        mine = sa.and_(tasks.c.id.in_(list(task_ids)), tasks.c.lease_owner == self.owner)
        async with self._store.transaction() as conn:
            await conn.execute(
                tasks.update()
                .where(mine, tasks.c.state == State.IN_PROGRESS.value)
                .values(**_released(now))
            )
            return await self._requeue_cut_off(
                conn, sa.and_(mine, tasks.c.state == State.SUBMITTING.value), now, render_time
            )

    async def _requeue_cut_off(
        self,
        conn: AsyncConnection,
        cut_off: sa.ColumnElement[bool],
        now: float,
        render_time: RenderTime,
    ) -> list[str]:
        """Requeue the submissions matching `cut_off`, keeping each one's credential slot for
        as long as it may run at Google; their ids."""
        candidates = sa.select(tasks.c.id).where(cut_off)
        locked = self._store.dialect.claimable(candidates).scalar_subquery()
        before = (
            await conn.execute(
                sa.select(tasks.c.id, tasks.c.upstream, tasks.c.model).where(tasks.c.id.in_(locked))
            )
        ).all()
        if not before:
            return []
        result = await conn.execute(
            tasks.update()
            .where(tasks.c.id.in_([row.id for row in before]), cut_off)
            .values(**_REQUEUED, **_released(now))
            .returning(tasks.c.id)
        )
        requeued = {str(task_id) for task_id in result.scalars().all()}
        # Their own slots go (a queued task's slot would count for a while yet), the cut-off
        # ones stay.
        await conn.execute(
            credential_slots.delete().where(credential_slots.c.task_id.in_(requeued))
        )
        await hold_cut_off(
            conn,
            [
                CutOff(str(row.id), str(row.upstream), render_time(str(row.model)))
                for row in before
                if row.id in requeued and row.upstream
            ],
            now,
        )
        return sorted(requeued)

    async def update(self, task_id: str, expected: State, **fields: Any) -> bool:
        """Set `fields` only while the task is in `expected` and this worker holds its lease
        (or, for a task not claimed at all, while no other worker holds a live one: a queued
        task this worker fails before claiming it); True when it did. Setting `lease_until` to 0
        gives the lease up."""
        if fields.get("lease_until") == 0.0:
            fields["lease_owner"] = None
        mine = tasks.c.lease_owner == self.owner
        if expected is State.QUEUED:
            mine = sa.or_(mine, tasks.c.lease_until <= time.time())
        async with self._store.transaction() as conn:
            return await compare_and_set(conn, task_id, expected, fields, mine)

    async def transition(self, task_id: str, expected: State, new: State, **fields: Any) -> bool:
        """Compare-and-swap `expected` -> `new` under this worker's lease; True when it won."""
        return await self.update(task_id, expected, **fields, state=new.value)

    async def take_over_expired(self, render_time: RenderTime) -> list[str]:
        """Requeue submissions whose lease ran out, whoever held it; returns their ids.

        A live worker renews the leases of its submissions on the wire, so one past its lease
        has no job any more (its worker died, or could not record the end): like one cut off by
        a crash, it is submitted again, its slot held for `render_time`. Expired polls need
        nothing: they are claimable as they are.
        """
        now = time.time()
        expired = sa.and_(
            tasks.c.state == State.SUBMITTING.value,
            tasks.c.lease_until > 0,
            tasks.c.lease_until <= now,
        )
        async with self._store.reading() as conn:
            if not (await conn.execute(sa.select(tasks.c.id).where(expired).limit(1))).first():
                return []  # the usual case: a read, no write transaction every round
        async with self._store.transaction() as conn:
            return await self._requeue_cut_off(conn, expired, now, render_time)

    async def recover(self, *, sole: bool, render_time: RenderTime) -> int:
        """At start-up: take over what dead workers left; returns the submissions requeued.

        `sole` says no other worker can be alive (SQLite's worker lock): then every lease found
        is a dead process's, and all are lifted at once instead of waiting for them to run out.
        Otherwise only expired ones are taken: live workers keep theirs.

        A submission cut off by a crash cannot be told apart from one that never left: Google
        offers no idempotency key, so it is submitted again (see docs/architecture.md).
        """
        if not sole:
            return len(await self.take_over_expired(render_time))
        now = time.time()
        async with self._store.transaction() as conn:
            requeued = await self._requeue_cut_off(
                conn, tasks.c.state == State.SUBMITTING.value, now, render_time
            )
            await conn.execute(
                tasks.update()
                .where(tasks.c.state == State.IN_PROGRESS.value, tasks.c.lease_until > 0)
                .values(lease_until=0.0, lease_owner=None, due_at=now)
            )
        return len(requeued)


def _claimable(state: State, now: float) -> sa.ColumnElement[bool]:
    """In `state` with no live lease on it."""
    return sa.and_(tasks.c.state == state.value, tasks.c.lease_until <= now)


def _released(now: float) -> dict[str, Any]:
    return {"lease_until": 0.0, "lease_owner": None, "due_at": now, "updated_at": now}
