"""The leases of one worker's running jobs: renewed while the jobs run, given up when they are
cut off, and the other half of claims across workers (store/claims.py).

Every `renew_interval` one round renews the leases of all the jobs still running in one
statement, so a call of any length keeps its task while its worker lives; gives back the
credential slots of tasks this worker submitted that another worker finished; and requeues
submissions whose lease ran out (their worker is gone), to be submitted again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from veo_gateway.observability.throttled import ThrottledLog
from veo_gateway.providers.pool import CredentialPool
from veo_gateway.store.claims import Claims, RenderTime
from veo_gateway.store.tasks import TaskStore

log = logging.getLogger("veo_gateway.worker")


class LeaseKeeper:
    """Keeps the leases of a worker's jobs, one job per task it holds."""

    def __init__(
        self,
        *,
        claims: Claims,
        store: TaskStore,
        pool: CredentialPool,
        lease_seconds: float,
        renew_interval: float,
        render_time: RenderTime,
        trouble: ThrottledLog,
    ) -> None:
        self._claims = claims
        self._store = store
        self._pool = pool
        self._lease_seconds = lease_seconds
        self._renew_interval = renew_interval
        self._render_time = render_time
        self._trouble = trouble
        self._jobs: dict[str, asyncio.Task[Any]] = {}

    def hold(self, task_id: str, job: asyncio.Task[Any]) -> None:
        """`job` works on `task_id` under this worker's lease, renewed until the job ends."""
        self._jobs[task_id] = job

        def done(finished: asyncio.Task[Any]) -> None:
            if self._jobs.get(task_id) is finished:
                del self._jobs[task_id]

        job.add_done_callback(done)

    def holds(self, task_id: str) -> bool:
        """True while a job of this worker works on the task."""
        return task_id in self._jobs

    def held(self) -> list[str]:
        """The tasks of the jobs running now."""
        return [task_id for task_id, job in self._jobs.items() if not job.done()]

    async def run(self) -> None:
        """Renew every `renew_interval` until cancelled; a failed round is logged and retried."""
        while True:
            await asyncio.sleep(self._renew_interval)
            try:
                await self.renew()
            except Exception as exc:  # the database is away: the leases last a while yet
                self._trouble.trouble(
                    "renew",
                    "cannot renew this worker's leases (%s: %s)",
                    type(exc).__name__,
                    str(exc)[:300],
                    exc=exc,
                )
            else:
                self._trouble.over("renew", "leases are renewed again")

    async def renew(self) -> None:
        """One round: renew, give back the slots of tasks ended elsewhere, requeue expired
        submissions of any worker."""
        if held := self.held():
            await self._claims.renew(held, lease_seconds=self._lease_seconds)
        # A task this worker submitted may be polled and finished by another worker: its slot
        # here is given back once it has ended.
        slots = [(c.id, task_id) for c in self._pool.credentials() for task_id in c.holders]
        if ended := await self._store.finished_among([task_id for _, task_id in slots]):
            for credential_id, task_id in slots:
                if task_id in ended:
                    await self._pool.release(credential_id, task_id)
        if abandoned := await self._claims.take_over_expired(self._render_time):
            log.warning(
                "requeued %d submission(s) whose lease ran out (their worker died, or its job "
                "ended unrecorded): %s",
                len(abandoned),
                ", ".join(abandoned),
            )

    async def give_up(self, task_ids: list[str]) -> None:
        """Lift the leases of jobs cut off (a shutdown), so another worker takes them at once
        instead of when the leases would have run out."""
        try:
            await self._claims.give_up(task_ids, self._render_time)
        except Exception as exc:
            log.warning("worker stopping: could not lift its leases (%s)", exc)
