"""The worker: submits queued tasks, polls running operations, stores finished videos.

One loop claims due work from the store and hands each task to its own asyncio task, so polls
run side by side (bounded), never one after another. Every state change is a compare-and-swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from veo_gateway.domain.progress import LatencyModel
from veo_gateway.errors import UpstreamError
from veo_gateway.media.inputs import load_request
from veo_gateway.media.storage import LocalStorage
from veo_gateway.observability.metrics import WorkerMetrics, call_outcome
from veo_gateway.providers.base import OperationStatus, Provider
from veo_gateway.providers.pool import CredentialPool, Lease, NoRoute, rejects_credential
from veo_gateway.store.tasks import State, Task, TaskStore

log = logging.getLogger("veo_gateway.worker")


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's knobs (from Settings)."""

    poll_interval: float = 5.0
    poll_concurrency: int = 16
    task_timeout: float = 1200.0
    submit_attempts: int = 5
    # A lease outlives the longest call it covers, so a live worker never loses its task.
    submit_lease: float = 180.0
    # Queued tasks looked at per round (each is then matched with a free credential).
    submit_batch: int = 50
    poll_lease: float = 600.0
    idle_wait: float = 5.0


class Worker:
    """Moves tasks from queued to completed or failed."""

    def __init__(
        self,
        *,
        store: TaskStore,
        pool: CredentialPool,
        storage: LocalStorage,
        latency: LatencyModel,
        config: WorkerConfig,
        metrics: WorkerMetrics | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._on_finished = on_finished or (lambda: None)
        self._metrics = metrics or WorkerMetrics()
        self._pool = pool
        self._storage = storage
        self._latency = latency
        self._config = config
        self._wake = asyncio.Event()
        self._submitting: set[asyncio.Task[Any]] = set()
        self._polling: set[asyncio.Task[Any]] = set()

    @contextlib.contextmanager
    def _timed(self, credential: str | None, kind: str) -> Iterator[None]:
        """Reports one upstream call (submit, poll or download): its outcome and duration."""
        start = time.monotonic()
        outcome = "cancelled"
        try:
            yield
            outcome = "ok"
        except UpstreamError as exc:
            outcome = call_outcome(exc)
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            self._metrics.upstream_call(
                credential or "unknown", kind, outcome, time.monotonic() - start
            )

    def wake(self) -> None:
        """Look for work now (a task was created, or a job finished)."""
        self._wake.set()

    async def run(self) -> None:
        """Loop until cancelled."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.step()
                except Exception:  # a database hiccup must not end the worker
                    log.exception("worker step failed; retrying")
                await self._sleep()
        finally:
            for job in self._submitting | self._polling:
                job.cancel()
            await asyncio.gather(*self._submitting, *self._polling, return_exceptions=True)

    async def _sleep(self) -> None:
        now = time.time()
        wake_at = now + self._config.idle_wait
        next_poll = await self._store.next_due_at(State.IN_PROGRESS)
        if next_poll is not None:
            wake_at = min(wake_at, next_poll)
        next_submit = await self._store.next_due_at(State.QUEUED)
        if next_submit is not None:
            # A queued task also waits for a credential; a finishing task wakes us early.
            wake_at = min(wake_at, max(next_submit, self._pool.next_free_at(now)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(wake_at - now, 0.01))

    async def step(self) -> None:
        """Match due queued tasks with free credentials, and start polls that are due."""
        for task in await self._store.due_queued(self._config.submit_batch):
            try:
                if started := await self._start_submission(task):
                    self._spawn(self._submitting, self.submit(*started))
            except NoRoute as exc:
                await self._fail(task, State.QUEUED, str(exc))
        room = self._config.poll_concurrency - len(self._polling)
        for task in await self._store.claim(
            State.IN_PROGRESS, limit=room, lease_seconds=self._config.poll_lease
        ):
            self._spawn(self._polling, self._poll(task))

    async def submit_now(self, task: Task, wait_seconds: float) -> UpstreamError | None:
        """Submit a just-created task at once when a credential is free (the POST waits up to
        `wait_seconds`); returns the upstream's refusal when it refused the request for good."""
        try:
            started = await self._start_submission(task)
        except NoRoute:
            return None  # the worker fails it with the reason
        if started is None:
            return None
        job = self._spawn(self._submitting, self.submit(*started))
        # Not cancelled on timeout: a submission cut off mid-call could start a job twice.
        done, _ = await asyncio.wait({job}, timeout=wait_seconds)
        if job in done and not job.cancelled() and job.exception() is None:
            refusal: UpstreamError | None = job.result()
            if refusal is not None and 400 <= refusal.code < 500:
                return refusal
        return None

    async def _start_submission(self, task: Task) -> tuple[Task, Lease] | None:
        """Reserve a credential and claim the task for submission; None when either is taken.

        Raises NoRoute when no credential in service can ever serve the task's model.
        """
        lease = self._pool.acquire(task.model)
        if lease is None:
            return None  # every credential for this model is busy; the task waits its turn
        claimed = await self._store.claim_task(
            task.id,
            State.QUEUED,
            State.SUBMITTING,
            lease_seconds=self._config.submit_lease,
            upstream=lease.credential.id,
            upstream_model=lease.upstream_model,
        )
        if claimed is None:
            self._pool.release(lease.credential.id)
            return None
        return claimed, lease

    def _spawn(
        self, jobs: set[asyncio.Task[Any]], coro: Coroutine[Any, Any, Any]
    ) -> asyncio.Task[Any]:
        job = asyncio.create_task(coro)
        jobs.add(job)

        def done(finished: asyncio.Task[Any]) -> None:
            jobs.discard(finished)
            if not finished.cancelled() and (exc := finished.exception()):
                log.error("worker job crashed", exc_info=exc)
            self.wake()

        job.add_done_callback(done)
        return job

    # -- submission -------------------------------------------------------------------------

    async def submit(self, task: Task, lease: Lease) -> UpstreamError | None:
        """Submit a claimed task with its leased credential; the refusal, if final."""
        try:
            request = await load_request(self._storage, task.id, task.request)
        except OSError as exc:
            self._pool.release(lease.credential.id)
            await self._fail(
                task, State.SUBMITTING, f"the task's stored inputs are unreadable: {exc}"
            )
            return None
        try:
            with self._timed(lease.credential.id, "submit"):
                operation = await lease.credential.provider.submit(lease.upstream_model, request)
        except UpstreamError as exc:
            self._pool.release(lease.credential.id)
            return await self._submit_failed(task, lease, exc)
        now = time.time()
        won = await self._store.transition(
            task.id,
            State.SUBMITTING,
            State.IN_PROGRESS,
            operation_name=operation,
            submitted_at=now,
            expected_seconds=self._latency.expected(task.model),
            due_at=now + min(self._latency.first_poll_after(task.model), self._config.task_timeout),
            lease_until=0.0,
        )
        if not won:
            # Cancelled (deleted by its owner) while the call was out: the job runs upstream
            # but the gateway will never poll it, so its slot is free again.
            self._pool.release(lease.credential.id)
        log.info(
            "task %s submitted via %s as %s (recorded: %s)",
            task.id,
            lease.credential.id,
            operation,
            won,
        )
        return None

    async def _submit_failed(
        self, task: Task, lease: Lease, exc: UpstreamError
    ) -> UpstreamError | None:
        credential = lease.credential.id
        if exc.code == 429 or exc.google_status == "RESOURCE_EXHAUSTED":
            # The credential is out of quota, not the task at fault: another one may take it.
            self._pool.cool_down(credential)
            await self._requeue(task, attempts=task.attempts, delay=0.0)
            return None
        if rejects_credential(exc):
            self._pool.disable(credential, f"HTTP {exc.code}: {exc.message}")
            await self._requeue(task, attempts=task.attempts, delay=0.0)
            return None
        attempts = task.attempts + 1
        if exc.retryable and attempts < self._config.submit_attempts:
            delay = min(60.0, 2.0**attempts) * random.uniform(0.8, 1.2)
            await self._requeue(task, attempts=attempts, delay=delay)
            log.warning("task %s: submission failed (%s); retry in %.0f s", task.id, exc, delay)
            return None
        await self._fail(task, State.SUBMITTING, exc.message, attempts=attempts)
        return exc

    async def _requeue(self, task: Task, *, attempts: int, delay: float) -> None:
        await self._store.transition(
            task.id,
            State.SUBMITTING,
            State.QUEUED,
            attempts=attempts,
            due_at=time.time() + delay,
            lease_until=0.0,
            upstream=None,
            upstream_model=None,
        )

    # -- polling ----------------------------------------------------------------------------

    async def _poll(self, task: Task) -> None:
        now = time.time()
        assert task.operation_name is not None
        credential = self._pool.get(task.upstream)
        if credential is None:
            await self._fail(
                task,
                State.IN_PROGRESS,
                f"the credential {task.upstream!r} that submitted this "
                "task is no longer configured",
            )
            return
        started = task.submitted_at or task.created_at
        if now - started > self._config.task_timeout:
            await self._fail(
                task,
                State.IN_PROGRESS,
                f"timed out: no result after {self._config.task_timeout:.0f} s upstream",
            )
            return
        try:
            with self._timed(credential.id, "poll"):
                status = await credential.provider.poll(task.operation_name)
            if not status.done:
                await self._reschedule(task)
            elif status.error is not None or (status.video_ref is None and status.video is None):
                await self._fail(task, State.IN_PROGRESS, status.error or "no video returned")
            else:
                await self._finish(task, credential.provider, status)
        except UpstreamError as exc:
            if not exc.retryable:
                await self._fail(task, State.IN_PROGRESS, exc.message)
                return
            log.warning("task %s: poll or download failed (%s); will retry", task.id, exc)
            await self._reschedule(task)
        except OSError:
            # Local storage trouble (disk full, permissions): keep the task, try again later.
            log.exception("task %s: storing the video failed; will retry", task.id)
            await self._reschedule(task)

    async def _reschedule(self, task: Task) -> None:
        now = time.time()
        interval = self._config.poll_interval * random.uniform(0.8, 1.2)
        # Never sleep past the task's deadline: the poll after it is the one that fails it.
        deadline = (task.submitted_at or task.created_at) + self._config.task_timeout
        await self._store.update(
            task.id, State.IN_PROGRESS, due_at=min(now + interval, deadline), lease_until=0.0
        )

    async def _finish(self, task: Task, provider: Provider, status: OperationStatus) -> None:
        if status.video is not None:
            path, size = await self._storage.save_video(task.id, _once(status.video))
        else:
            assert status.video_ref is not None
            with self._timed(task.upstream, "download"):
                async with provider.download(status.video_ref) as chunks:
                    path, size = await self._storage.save_video(task.id, chunks)
        now = time.time()
        if await self._store.transition(
            task.id,
            State.IN_PROGRESS,
            State.COMPLETED,
            completed_at=now,
            video_path=str(path),
            video_bytes=size,
            lease_until=0.0,
        ):
            self._pool.release(task.upstream)
            self._latency.observe(task.model, now - (task.submitted_at or now))
            self._metrics.task_completed(task.model, now - (task.submitted_at or now))
            log.info("task %s completed (%d bytes)", task.id, size)
            self._on_finished()
        else:
            # Cancelled meanwhile (its slot was released by the cancel): keep no orphan file.
            await self._storage.delete_video(task.id)

    async def _fail(self, task: Task, expected: State, reason: str, **fields: object) -> None:
        if await self._store.transition(
            task.id,
            expected,
            State.FAILED,
            fail_reason=reason,
            completed_at=time.time(),
            lease_until=0.0,
            **fields,
        ):
            if expected is State.IN_PROGRESS:
                self._pool.release(task.upstream)
            log.info("task %s failed: %s", task.id, reason)
            self._on_finished()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
