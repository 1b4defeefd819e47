"""Retention: finished tasks' stored files are deleted after a set time, or earlier under a cap.

A finished task (completed, failed or cancelled) keeps its video, its thumbnail and spritesheet
and its input images for `RetentionPolicy.seconds` after it finished; then the sweeper deletes
them and sets the task's `expired_at`. The row stays: status reads keep working, `content`
answers 410. With `max_bytes`, when the stored videos of live tasks add up to more, the oldest
finished ones go first, early, until the total is under the cap. Unfinished tasks are never
touched: their inputs are what a retried submission is made from.

Order of the work, and why: the files are deleted first, then `expired_at` is set with a
compare-and-swap (`WHERE expired_at IS NULL`). Deleting is idempotent, so a crash between the
two leaves a row that the next sweep picks up again, deletes nothing new and marks; no file can
be left behind with its row marked. Several sweepers (replicas) may pick the same rows: each
deletes (harmless), and only one wins each mark, so a task is counted as expired once. Between
the deletion and the mark, `content` finds no file and answers the same 410.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from veo_gateway.errors import StorageUnavailable
from veo_gateway.media.storage import Storage
from veo_gateway.observability.metrics import WorkerMetrics
from veo_gateway.store.tables import tasks, video_digests
from veo_gateway.store.tasks import FINAL_STATES, State, Task, TaskStore

log = logging.getLogger("veo_gateway.retention")

# A sweep runs every tenth of the retention (a file outlives it by about a tenth at most),
# but at least once a minute and at most once a second.
MAX_SWEEP_INTERVAL = 60.0
MIN_SWEEP_INTERVAL = 1.0
BATCH = 200

RETENTION, STORAGE_CAP = "retention", "storage_cap"
_FINAL_VALUES = tuple(state.value for state in FINAL_STATES)


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep finished tasks' files `seconds` (0: forever), and stored videos under `max_bytes`."""

    seconds: float = 0.0
    max_bytes: int | None = None

    @property
    def sweep_interval(self) -> float:
        """Seconds between two sweeps."""
        if self.seconds <= 0:
            return MAX_SWEEP_INTERVAL
        return min(MAX_SWEEP_INTERVAL, max(MIN_SWEEP_INTERVAL, self.seconds / 10))

    def expires_at(self, task: Task) -> float | None:
        """When the task's video is (or was) deleted (see `expires_at`)."""
        return expires_at(task, self.seconds)

    def gone_message(self, task: Task) -> str:
        """What `content` answers for a task whose video was deleted."""
        deleted = task.expired_at
        finished = task.completed_at or task.updated_at
        if deleted is None and self.seconds > 0 and time.time() >= finished + self.seconds:
            # The sweep deletes the files first, then marks the task: caught in between.
            deleted = finished + self.seconds
        when = "" if deleted is None else f" on {_utc(deleted)}"
        if deleted is None:
            why = "from the gateway's storage"
        elif self.seconds > 0 and deleted >= finished + self.seconds - 1e-3:
            why = f"after the {describe_period(self.seconds)} retention period"
        elif self.max_bytes is not None:
            why = "early, to keep the gateway's storage under its size limit"
        else:  # the retention was shortened or switched off since
            why = "after its retention period"
        return (
            f"the video of task {task.id} was deleted{when} {why}; the task record is kept. "
            "Generate it again to get a new video"
        )


def expires_at(task: Task, retention_seconds: float) -> float | None:
    """When the task's video is (or was) deleted; None when it has none or is kept forever.

    A video evicted early by the byte cap reports when it actually went.
    """
    if task.state is not State.COMPLETED:
        return None
    if task.expired_at is not None:
        return task.expired_at
    if retention_seconds <= 0 or task.completed_at is None:
        return None
    return task.completed_at + retention_seconds


def describe_period(seconds: float) -> str:
    """`7-day`, `36-hour`, `90-minute`, `1.3-day`, `30-second`: a period as an adjective."""
    day = 86400.0
    for unit, size in (("day", day), ("hour", 3600.0), ("minute", 60.0)):
        count = seconds / size
        if count >= 1 and abs(count - round(count)) < 1e-9 and (unit != "minute" or seconds < day):
            return f"{round(count)}-{unit}"
    if seconds >= day:
        return f"{seconds / day:.3g}-day"
    return f"{seconds:.3g}-second" if seconds < 60 else f"{seconds / 60:.3g}-minute"


def _utc(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class Sweeper:
    """Deletes the files of finished tasks past the retention or over the byte cap."""

    def __init__(
        self,
        *,
        store: TaskStore,
        storage: Storage,
        policy: RetentionPolicy,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._store = store
        self._storage = storage
        self._policy = policy
        self._metrics = metrics or WorkerMetrics()

    async def run(self) -> None:
        """Sweep every `sweep_interval` seconds until cancelled."""
        while True:
            try:
                await self.sweep()
            except (sa.exc.SQLAlchemyError, OSError, StorageUnavailable):
                log.exception("retention sweep failed; trying again at the next one")
            await asyncio.sleep(self._policy.sweep_interval)

    async def sweep(self, now: float | None = None) -> list[str]:
        """One pass at time `now`; returns the ids of the tasks this call expired."""
        now = time.time() if now is None else now
        expired: list[str] = []
        if self._policy.seconds > 0:
            cutoff = now - self._policy.seconds
            while True:
                due = await self._due(cutoff)
                won = await self.expire(due, now, RETENTION)
                expired += won
                # A short batch is the last; a batch this call won nothing of was taken by
                # another sweeper, or its files could not be deleted: look again next time.
                if len(due) < BATCH or not won:
                    break
        if self._policy.max_bytes is not None:
            expired += await self.expire(
                await self._over_cap(self._policy.max_bytes), now, STORAGE_CAP
            )
        self._metrics.stored_input_bytes(await self._storage.inputs_bytes())
        if expired:
            log.info("retention: deleted the stored files of %d task(s)", len(expired))
        return expired

    async def _due(self, cutoff: float) -> list[str]:
        """Finished tasks past the retention whose files are still there, oldest first."""
        query = (
            sa.select(tasks.c.id)
            .where(
                tasks.c.expired_at.is_(None),
                tasks.c.completed_at <= cutoff,
                tasks.c.state.in_(_FINAL_VALUES),
            )
            .order_by(tasks.c.completed_at, tasks.c.id)
            .limit(BATCH)
        )
        async with self._store.reading() as conn:
            return [str(task_id) for task_id in (await conn.execute(query)).scalars()]

    async def _over_cap(self, max_bytes: int) -> list[str]:
        """The oldest completed videos to delete so the stored ones fit under `max_bytes`."""
        live = (
            tasks.c.state == State.COMPLETED.value,
            tasks.c.expired_at.is_(None),
            tasks.c.deleted_at.is_(None),
        )
        async with self._store.reading() as conn:
            stored = sa.select(sa.func.sum(tasks.c.video_bytes)).where(*live)
            total = int(await conn.scalar(stored) or 0)
            if total <= max_bytes:
                return []
            rows = await conn.execute(
                sa.select(tasks.c.id, tasks.c.video_bytes)
                .where(*live)
                .order_by(tasks.c.completed_at, tasks.c.id)
            )
            victims: list[str] = []
            for task_id, size in rows:
                victims.append(str(task_id))
                total -= int(size or 0)
                if total <= max_bytes:
                    break
        return victims

    async def expire(self, task_ids: Sequence[str], now: float, reason: str) -> list[str]:
        """Delete the tasks' files, then mark each (compare-and-swap); the ids this call won.

        Only finished tasks may be given: the sweep picks them; this does not check again.
        """
        deleted: list[str] = []
        for task_id in task_ids:
            try:
                await self._storage.delete_video(task_id)
                await self._storage.delete_inputs(task_id)
            except (OSError, StorageUnavailable):
                log.exception("retention: could not delete the files of task %s", task_id)
                continue
            deleted.append(task_id)
        if not deleted:
            return []
        won: list[str] = []
        counted = 0
        async with self._store.transaction() as conn:
            for task_id in deleted:
                marked = await conn.execute(
                    tasks.update()
                    .where(tasks.c.id == task_id, tasks.c.expired_at.is_(None))
                    .values(expired_at=now)
                    .returning(tasks.c.deleted_at)
                )
                row = marked.first()
                if row is not None:
                    won.append(task_id)
                    # A task its owner deleted had its files removed then; it is not counted.
                    counted += row[0] is None
            if won:
                # Its bytes are gone: an upload of them no longer names this task.
                await conn.execute(video_digests.delete().where(video_digests.c.task_id.in_(won)))
        if counted:
            self._metrics.retention_expired(reason, counted)
        return won
