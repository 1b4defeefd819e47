"""The worker: submits queued tasks, polls running operations, stores finished videos.

One loop claims due work from the store and hands each task to its own asyncio task, so polls
run side by side (bounded), never one after another. Every state change is a compare-and-swap on
the task's state and on this worker holding its lease (store/claims.py): a worker whose lease
was taken over changes nothing and drops the task. A second loop renews the leases of the jobs
still running, so any number of workers can share a database.

Whatever a job raises, its task is not left behind: the upstream's errors are handled by kind
(429, 401/403, retryable, final); a full disk puts the task off without counting an attempt; any
other exception counts one attempt and retries with backoff, or fails the task with the error
as its reason once the attempts run out, at once when the error says the code or the task's
stored data is wrong (TypeError, ValueError, ...: trying again cannot help). A submission's
credential slot is given back on every way out but one: the operation recorded as running.
Recurring trouble (a full disk, a database refusing writes) is logged once per period, and the
loop backs off instead of spinning.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veo_gateway.config import Target
from veo_gateway.domain.options import options_of
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.errors import (
    InsufficientStorage,
    StorageUnavailable,
    UpstreamError,
    UpstreamUnavailable,
)
from veo_gateway.media.inputs import load_request
from veo_gateway.media.probe import IncompleteVideo, check_whole
from veo_gateway.media.storage import Storage
from veo_gateway.observability.metrics import WorkerMetrics, call_outcome
from veo_gateway.observability.throttled import ThrottledLog
from veo_gateway.providers.base import OperationStatus, Provider, Sample
from veo_gateway.providers.pool import CredentialPool, Lease, NoRoute, rejects_credential
from veo_gateway.routes import model_gone
from veo_gateway.store.claims import Claims
from veo_gateway.store.digests import record_digests
from veo_gateway.store.tasks import State, Task, TaskStore
from veo_gateway.worker.cancel import cancel_at_google
from veo_gateway.worker.identity import WorkerIdentity
from veo_gateway.worker.leases import LeaseKeeper

log = logging.getLogger("veo_gateway.worker")

# Errors that say the code, or the task's stored data, is wrong: the same input raises the same
# error again, so the task fails at once instead of being retried.
PROGRAMMING_ERRORS: tuple[type[Exception], ...] = (
    TypeError,
    ValueError,
    LookupError,
    AttributeError,
    AssertionError,
    ArithmeticError,
    NotImplementedError,
)
SPACE = "space"  # the ThrottledLog kind of "the disk is full"


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's knobs (from Settings)."""

    poll_interval: float = 5.0
    poll_concurrency: int = 16
    task_timeout: float = 1200.0
    submit_attempts: int = 5
    # Seconds a claim lasts unless renewed; the claims of running jobs are renewed every
    # `renew_interval`, so a live worker keeps its tasks however long a call takes.
    lease_seconds: float = 30.0
    renew_interval: float = 10.0
    # True: no other worker can be alive (SQLite's worker lock), so every lease found at start
    # is a dead process's and is lifted at once; False: only expired ones are taken over.
    # None: as the database's dialect says.
    sole_worker: bool | None = None
    # Queued tasks looked at per round (each is then matched with a free credential).
    submit_batch: int = 50
    idle_wait: float = 5.0
    # Seconds before the first retry of a failed step or job; doubled per attempt, at most 60.
    retry_base: float = 1.0
    # Seconds between looks at a finished video that waits for disk space.
    space_wait: float = 20.0
    # Recurring trouble is logged at most once per this many seconds.
    log_period: float = 60.0
    # Seconds a shutdown waits for submissions on the wire (cut off, they might run twice).
    shutdown_grace: float = 10.0


class Worker:
    """Moves tasks from queued to completed or failed."""

    def __init__(
        self,
        *,
        store: TaskStore,
        pool: CredentialPool,
        storage: Storage,
        latency: LatencyModel,
        config: WorkerConfig,
        metrics: WorkerMetrics | None = None,
        on_finished: Callable[[], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        identity: WorkerIdentity | None = None,
        claims_class: type[Claims] = Claims,
    ) -> None:
        self._store = store
        self.identity = identity or WorkerIdentity.new()
        # Its leases on tasks (a test passes a subclass, to watch them).
        self._claims = claims_class(store, self.identity.id)
        # The jitter of retries and polls (a test passes its own, to know every delay).
        self._random = rng or random.Random()
        self._on_finished = on_finished or _nothing
        self._metrics = metrics or WorkerMetrics()
        self._pool = pool
        self._storage = storage
        self._latency = latency
        self._config = config
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()  # set once leases are recovered and slots restored
        self._submitting: set[asyncio.Task[Any]] = set()
        self._polling: set[asyncio.Task[Any]] = set()
        self._trouble = ThrottledLog(log, config.log_period)
        self._leases = LeaseKeeper(
            claims=self._claims,
            store=store,
            pool=pool,
            lease_seconds=config.lease_seconds,
            renew_interval=config.renew_interval,
            render_time=latency.expected,
            trouble=self._trouble,
        )
        # Tasks whose job could not record its end (the database refused the write): their
        # lease is lifted as soon as the database takes writes again, not when it runs out.
        self._unrecorded: dict[str, State] = {}
        # Tasks whose lease this worker lost while a job was on them: their slots are no longer
        # this worker's to give back (the new holder counts on the same slot).
        self._lost: set[str] = set()

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

    def _backoff(self, attempts: int) -> float:
        """Seconds before retry number `attempts` (1, 2, ...): doubling, jittered, at most 60."""
        base = min(60.0, self._config.retry_base * 2.0 ** min(attempts, 16))
        return base * self._random.uniform(0.8, 1.2)

    async def run(self) -> None:
        """Recover, then loop until cancelled; on the way out, let submissions on the wire end."""
        renewing: asyncio.Task[None] | None = None
        try:
            await self._recover()
            renewing = asyncio.create_task(self._leases.run(), name="veo-gateway-leases")
            failures = 0
            while True:
                self._wake.clear()
                try:
                    await self.step()
                    await self._sleep()
                except Exception as exc:  # a database hiccup, a full disk: never end the worker
                    failures += 1
                    self._trouble.trouble(
                        "step", "worker step failed (%s); backing off", _describe(exc), exc=exc
                    )
                    await asyncio.sleep(self._backoff(failures))
                    continue
                if failures:
                    failures = 0
                    self._trouble.over("step", "worker steps succeed again")
        finally:
            await self._stop_jobs()  # leases are still renewed while submissions end
            if renewing is not None:
                renewing.cancel()
                await asyncio.gather(renewing, return_exceptions=True)

    async def _recover(self) -> None:
        """Take over what dead workers left (every lease when this is the sole worker, else the
        expired ones) and take the slots of the tasks running upstream; retried until the
        database lets it (a full disk), and done before any submission starts."""
        sole = self._config.sole_worker
        if sole is None:
            sole = self._store.dialect.single_worker
        attempts = 0
        while True:
            try:
                requeued = await self._claims.recover(sole=sole, render_time=self._latency.expected)
                await self._pool.restore_in_flight(await self._store.in_flight_by_upstream())
                break
            except Exception as exc:
                attempts += 1
                self._trouble.trouble(
                    "recover", "worker cannot start yet (%s); retrying", _describe(exc), exc=exc
                )
                await asyncio.sleep(self._backoff(attempts))
        if requeued:
            log.warning("requeued %d interrupted submission(s)", requeued)
        self._trouble.over("recover", "worker started")
        log.info(
            "worker %s started: its claims last %.0f s, renewed every %.0f s",
            self.identity,
            self._config.lease_seconds,
            self._config.renew_interval,
        )
        self._ready.set()

    async def _stop_jobs(self) -> None:
        """Cancel polls at once (a poll or download cut off is simply made again); give
        submissions on the wire up to `shutdown_grace` seconds, since one cut off after Google
        accepted it is submitted again; then lift the leases of what was cut off."""
        started = time.monotonic()
        submitting, polling = set(self._submitting), set(self._polling)
        held = self._leases.held()
        if not submitting and not polling:
            log.info("worker stopped (no job in flight)")
            return
        log.info(
            "worker stopping: waiting up to %.0f s for %d submission(s) on the wire; "
            "cancelling %d poll(s) or download(s), taken up again at the next start",
            self._config.shutdown_grace,
            len(submitting),
            len(polling),
        )
        for job in polling:
            job.cancel()
        unfinished: set[asyncio.Task[Any]] = set()
        if submitting:
            _, unfinished = await asyncio.wait(submitting, timeout=self._config.shutdown_grace)
        for job in unfinished:
            job.cancel()
        await asyncio.gather(*submitting, *polling, return_exceptions=True)
        await self._leases.give_up(held)
        log.info(
            "worker stopped after %.1f s: %d submission(s) finished, %d cut off (submitted "
            "again), %d poll(s) cancelled",
            time.monotonic() - started,
            len(submitting) - len(unfinished),
            len(unfinished),
            len(polling),
        )

    async def _sleep(self) -> None:
        now = time.time()
        wake_at = now + self._config.idle_wait
        next_poll = await self._store.next_due_at(State.IN_PROGRESS)
        if next_poll is not None:
            wake_at = min(wake_at, next_poll)
        next_submit = await self._store.next_due_at(State.QUEUED)
        if next_submit is not None:
            # A queued task also waits for a credential; a finishing task wakes us early.
            wake_at = min(wake_at, max(next_submit, await self._pool.next_free_at(now)))
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that arrives as
        # the wake-up does, and the worker (cancelled at shutdown) would then run on forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(wake_at - now, 0.01)):
                await self._wake.wait()

    async def step(self) -> None:
        """Match due queued tasks with free credentials, and start polls that are due."""
        await self._lift_unrecorded()
        for task in await self._store.due_queued(self._config.submit_batch):
            if self._leases.holds(task.id):
                # Requeued while a job of ours is still on it (its lease ran out mid-call):
                # another worker submits it; a second job here would submit it twice more.
                continue
            try:
                if started := await self._start_submission(task):
                    self._spawn(self._submitting, task.id, self.submit(*started))
            except NoRoute as exc:
                await self._fail(task, State.QUEUED, str(exc))
        room = self._config.poll_concurrency - len(self._polling)
        for task in await self._claims.claim(
            State.IN_PROGRESS, limit=room, lease_seconds=self._config.lease_seconds
        ):
            if self._leases.holds(task.id):
                continue  # its lease ran out under a job still running: that job goes on
            self._spawn(self._polling, task.id, self._poll(task))

    async def _lift_unrecorded(self) -> None:
        for task_id, state in list(self._unrecorded.items()):
            fields: dict[str, Any] = {"lease_until": 0.0}
            if state is State.SUBMITTING:
                fields |= {"state": State.QUEUED.value, "upstream": None, "upstream_model": None}
            await self._claims.update(task_id, state, **fields)
            del self._unrecorded[task_id]

    async def submit_now(self, task: Task, wait_seconds: float) -> UpstreamError | None:
        """Submit a just-created task at once when a credential is free (the POST waits up to
        `wait_seconds`); returns the upstream's refusal when it refused the request for good."""
        deadline = time.monotonic() + wait_seconds
        if not self._ready.is_set():
            # Leases not yet recovered (the worker is starting): wait for that within the
            # budget, or leave the task to the loop, which submits it once they are.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_seconds):
                    await self._ready.wait()
            if not self._ready.is_set():
                return None
        try:
            started = await self._start_submission(task)
        except NoRoute:
            return None  # the worker fails it with the reason
        if started is None:
            return None
        job = self._spawn(self._submitting, task.id, self.submit(*started))
        # Not cancelled on timeout: a submission cut off mid-call could start a job twice.
        done, _ = await asyncio.wait({job}, timeout=max(0.0, deadline - time.monotonic()))
        if job in done and not job.cancelled() and job.exception() is None:
            refusal: UpstreamError | None = job.result()
            if refusal is not None and 400 <= refusal.code < 500:
                return refusal
        return None

    async def _start_submission(self, task: Task) -> tuple[Task, Lease] | None:
        """Reserve a credential and claim the task for submission; None when either is taken.

        Raises NoRoute when no credential in service can ever serve the task's model.
        """
        # An extension on the Gemini API names its source by a file URI of one project: it goes
        # through the credential that made the source (domain/extension.py).
        pinned = (task.request.get("video") or {}).get("credential")
        lease = await self._pool.acquire(task.model, task.id, only=pinned)
        if lease is None:
            return None  # every credential for this model is busy; the task waits its turn
        try:
            claimed = await self._claims.claim_task(
                task.id,
                State.QUEUED,
                State.SUBMITTING,
                lease_seconds=self._config.lease_seconds,
                upstream=lease.credential.id,
                upstream_model=lease.upstream_model,
            )
        except BaseException:
            await self._pool.release(lease.credential.id, task.id, lease.taken_at)
            raise
        if claimed is None:
            await self._pool.release(lease.credential.id, task.id, lease.taken_at)
            return None
        return claimed, lease

    def _spawn(
        self, jobs: set[asyncio.Task[Any]], task_id: str, coro: Coroutine[Any, Any, Any]
    ) -> asyncio.Task[Any]:
        job = asyncio.create_task(coro)
        jobs.add(job)
        self._leases.hold(task_id, job)

        def done(finished: asyncio.Task[Any]) -> None:
            jobs.discard(finished)
            if not finished.cancelled() and (exc := finished.exception()):
                # Only when even recording the failure failed (the database refuses writes):
                # the task's lease runs out and it is taken up again.
                self._trouble.trouble(
                    "job", "a worker job could not record its end (%s)", _describe(exc), exc=exc
                )
            self.wake()

        job.add_done_callback(done)
        return job

    # -- submission -------------------------------------------------------------------------

    async def submit(self, task: Task, lease: Lease) -> UpstreamError | None:
        """Submit a claimed task with its leased credential; the refusal, if final.

        The slot is given back on every way out (whatever raised) except one: the operation
        recorded as running, whose slot is then held until the task ends.
        """
        recorded = False
        try:
            refusal, recorded = await self._submit(task, lease)
            return refusal
        except Exception as exc:
            await self._job_failed(task, State.SUBMITTING, "submit this task", exc)
            return None
        finally:
            if task.id in self._lost:
                self._lost.discard(task.id)
            elif not recorded:
                # This slot only: once requeued (a 429 requeues at once), the task may have a
                # new slot from another worker already.
                await self._pool.release(lease.credential.id, task.id, lease.taken_at)

    async def _submit(self, task: Task, lease: Lease) -> tuple[UpstreamError | None, bool]:
        """(the refusal if final, whether the operation was recorded as running)."""
        try:
            request = await load_request(self._storage, task.id, task.request)
        except OSError as exc:
            await self._fail(
                task, State.SUBMITTING, f"the task's stored inputs are unreadable: {exc}"
            )
            return None, False
        try:
            with self._timed(lease.credential.id, "submit"):
                operation = await lease.credential.provider.submit(lease.upstream_model, request)
        except UpstreamError as exc:
            return await self._submit_failed(task, lease, exc), False
        now = time.time()
        won = await self._transition(
            task,
            State.SUBMITTING,
            State.IN_PROGRESS,
            operation_name=operation,
            submitted_at=now,
            expected_seconds=self._latency.expected(task.model),
            due_at=now + min(self._latency.first_poll_after(task.model), self._config.task_timeout),
            lease_until=0.0,
            attempts=0,  # from here on, attempts count failed polls and downloads
        )
        # Not won: cancelled (deleted by its owner) while the call was out, or its lease ran
        # out and it was requeued. The job runs upstream but this worker will never poll it,
        # so its slot is free again; a cancelled one is cancelled at Google too, where it can.
        current = None if won else await self._store.get(task.id)
        if current is not None and current.state is State.CANCELLED:
            await cancel_at_google(self._pool, lease.credential.id, operation)
        log.info(
            "task %s submitted via %s as %s (recorded: %s)",
            task.id,
            lease.credential.id,
            operation,
            won,
        )
        return None, won

    async def _submit_failed(
        self, task: Task, lease: Lease, exc: UpstreamError
    ) -> UpstreamError | None:
        credential = lease.credential.id
        if exc.code == 429 or exc.google_status == "RESOURCE_EXHAUSTED":
            # The credential is out of quota, not the task at fault: another one may take it.
            await self._pool.cool_down(credential)
            await self._requeue(task, attempts=task.attempts, delay=0.0)
            return None
        if rejects_credential(exc):
            await self._pool.disable(credential, f"HTTP {exc.code}: {exc.message}")
            await self._requeue(task, attempts=task.attempts, delay=0.0)
            return None
        if isinstance(exc, UpstreamUnavailable) and exc.maybe_received:
            # No answer, but the request may have arrived: Google may be running it (and
            # counting it) while the task is submitted again.
            await self._pool.hold_cut_off(credential, task.id, self._latency.expected(task.model))
        attempts = task.attempts + 1
        if exc.code == 404:
            # Google no longer serves the route's model id (a shut-down preview, a retired
            # version): say which id is gone, and what could serve the name instead.
            target = Target(lease.credential.upstream, lease.upstream_model)
            message = model_gone(task.model, target, exc.message, self._pool.targets(task.model))
            log.error("task %s: %s", task.id, message)
            await self._fail(task, State.SUBMITTING, message, attempts=attempts)
            return UpstreamError(message, code=404, status=exc.google_status, retryable=False)
        if exc.retryable and attempts < self._config.submit_attempts:
            delay = self._backoff(attempts)
            await self._requeue(task, attempts=attempts, delay=delay)
            log.warning("task %s: submission failed (%s); retry in %.0f s", task.id, exc, delay)
            return None
        await self._fail(task, State.SUBMITTING, exc.message, attempts=attempts)
        return exc

    async def _requeue(self, task: Task, *, attempts: int, delay: float) -> None:
        await self._transition(
            task,
            State.SUBMITTING,
            State.QUEUED,
            attempts=attempts,
            due_at=time.time() + delay,
            lease_until=0.0,
            upstream=None,
            upstream_model=None,
        )

    async def _job_failed(self, task: Task, state: State, doing: str, exc: Exception) -> None:
        """A job raised something nobody foresaw: count an attempt and retry with backoff, or
        fail the task with the error as its reason (at once for a programming error)."""
        try:
            await self._settle_failure(task, state, doing, exc)
        except Exception:
            self._unrecorded[task.id] = state  # the database refused even that
            raise

    async def _settle_failure(self, task: Task, state: State, doing: str, exc: Exception) -> None:
        if isinstance(exc, InsufficientStorage | StorageUnavailable):
            # Our storage's trouble, not the task's: the video waits at the upstream.
            await self._wait_for_space(task, state, str(exc))
            return
        attempts = task.attempts + 1
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        if isinstance(exc, PROGRAMMING_ERRORS) or attempts >= self._config.submit_attempts:
            log.error("task %s: could not %s (%s); failing it", task.id, doing, error, exc_info=exc)
            reason = f"the gateway could not {doing}: {error} (an internal error; it was logged)"
            await self._fail(task, state, reason, attempts=attempts)
            return
        delay = self._backoff(attempts)
        self._trouble.trouble(
            f"job:{type(exc).__name__}",
            "could not %s (%s); task %s retries in %.1f s",
            doing,
            error,
            task.id,
            delay,
            exc=exc,
        )
        if state is State.SUBMITTING:
            await self._requeue(task, attempts=attempts, delay=delay)
        else:
            await self._update(
                task, state, due_at=time.time() + delay, lease_until=0.0, attempts=attempts
            )

    async def _wait_for_space(self, task: Task, state: State, problem: str) -> None:
        """Put the task off until there may be space again, or the store is reachable again (no
        attempt counted). A finished video waiting to be stored keeps its slot: new videos
        would have nowhere to go."""
        detail = self._storage.space_problem() or problem
        self._trouble.trouble(
            SPACE, "storage: %s; tasks wait, checked every %.0f s", detail, self._config.space_wait
        )
        due_at = time.time() + self._config.space_wait
        if state is State.SUBMITTING:
            await self._requeue(task, attempts=task.attempts, delay=self._config.space_wait)
        else:
            await self._update(task, state, due_at=due_at, lease_until=0.0)

    # -- polling ----------------------------------------------------------------------------

    async def _poll(self, task: Task) -> None:
        try:
            await self._poll_once(task)
        except Exception as exc:
            await self._job_failed(task, State.IN_PROGRESS, "poll this task", exc)

    async def _poll_once(self, task: Task) -> None:
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
        # The deadline bounds the wait for the upstream, not for our disk: a video already
        # made is still fetched once there is room, however long that took.
        overdue = time.time() - started > self._config.task_timeout
        timed_out = f"timed out: no result after {self._config.task_timeout:.0f} s upstream"
        try:
            with self._timed(credential.id, "poll"):
                status = await credential.provider.poll(task.operation_name)
            if not status.done:
                if overdue:
                    await self._fail(task, State.IN_PROGRESS, timed_out)
                else:
                    self._latency.observe_running(task.model, task.id, time.time() - started)
                    await self._reschedule(task)
            elif status.error is not None or not status.samples:
                await self._fail(task, State.IN_PROGRESS, status.error or "no video returned")
            else:
                await self._finish(task, credential.provider, status)
        except UpstreamError as exc:
            if not exc.retryable or overdue:
                await self._fail(task, State.IN_PROGRESS, timed_out if overdue else exc.message)
                return
            log.warning("task %s: poll or download failed (%s); will retry", task.id, exc)
            await self._reschedule(task)

    async def _reschedule(self, task: Task) -> None:
        now = time.time()
        started = task.submitted_at or task.created_at
        interval = self._config.poll_interval * self._random.uniform(0.8, 1.2)
        # Not before the first poll the model's latency now calls for: a task submitted before
        # any of its model's tasks finished was given the catalog's shortest latency, and polls
        # in vain until what finished tasks took (learned meanwhile) has passed.
        due_at = max(now + interval, started + self._latency.first_poll_after(task.model))
        # A model not yet seen finishing: a task far younger than those seen still running
        # waits longer, never more than two intervals (docs/architecture.md).
        cold = self._latency.cold_wait(
            task.model, task.id, now - started, cap=2 * self._config.poll_interval
        )
        due_at = max(due_at, now + cold)
        # Never sleep past the task's deadline: the poll after it is the one that fails it.
        deadline = started + self._config.task_timeout
        await self._update(
            task,
            State.IN_PROGRESS,
            due_at=max(now, min(due_at, deadline)),
            lease_until=0.0,
            attempts=0,
        )

    async def _finish(self, task: Task, provider: Provider, status: OperationStatus) -> None:
        if not self._storage.has_room():
            # Under the free-space floor: leave the video at the upstream (kept two days)
            # rather than start a download that fills the disk.
            await self._wait_for_space(task, State.IN_PROGRESS, "under the free-space floor")
            return
        # Every sample is stored before the task says completed (never more than were asked
        # for: only those were reserved, and only those are charged).
        wanted = options_of(task.request).sample_count
        refs, size, digests = [], 0, []
        for index, sample in enumerate(status.samples[:wanted]):
            try:
                ref, sample_size, digest = await self._save_sample(task, provider, sample, index)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                await self._download_failed(task, exc)
                return
            refs.append(ref)
            size += sample_size
            digests.append(digest)
        self._trouble.over(SPACE, "storage: videos are stored again")
        await record_digests(self._store, task.id, task.owner, digests)
        now = time.time()
        if await self._transition(
            task,
            State.IN_PROGRESS,
            State.COMPLETED,
            completed_at=now,
            video_path=refs[0],
            video_bytes=size,
            sample_paths=refs,
            samples_filtered=status.filtered or None,
            upstream_refs=[sample.ref for sample in status.samples[: len(refs)]],
            lease_until=0.0,
        ):
            await self._pool.release(task.upstream, task.id)
            self._latency.observe(task.model, now - (task.submitted_at or now), task.id)
            self._metrics.task_completed(task.model, now - (task.submitted_at or now))
            log.info("task %s completed (%d sample(s), %d bytes)", task.id, len(refs), size)
            await self._on_finished()
        else:
            # Not this worker's task any more (cancelled, whose cancel freed the slot, or taken
            # over, whose new holder has it now): only this process's view of the slot goes.
            self._pool.forget(task.upstream, task.id)
            current = await self._store.get(task.id)
            if current is None or current.state is State.CANCELLED or current.deleted_at:
                # Cancelled or deleted meanwhile (the cancel released its slot): keep no
                # orphan file. Taken over instead: the new holder's video is the same one.
                await self._storage.delete_video(task.id)

    async def _save_sample(
        self, task: Task, provider: Provider, sample: Sample, index: int
    ) -> tuple[str, int, str | None]:
        """Store one sample (inline bytes, or downloaded from the upstream); (ref, size, the
        SHA-256 of its bytes, taken as they stream to storage: None when they never passed
        through here, copied inside the store's bucket)."""
        digest = hashlib.sha256()
        if sample.data is not None:
            digest.update(sample.data)
            ref, size = await self._storage.save_video(task.id, _once(sample.data), index=index)
            return ref, size, digest.hexdigest()
        assert sample.ref is not None
        if copied := await self._storage.copy_video(task.id, sample.ref, index=index):
            return *copied, None  # the upstream wrote it to this store's bucket: copied there
        with self._timed(task.upstream, "download"):
            async with provider.download(sample.ref) as chunks:
                ref, size = await self._storage.save_video(
                    task.id, _hashed(chunks, digest), check=_whole_video, index=index
                )
        return ref, size, digest.hexdigest()

    async def _download_failed(self, task: Task, exc: UpstreamError) -> None:
        """A download broke off or ended early (its file was not kept; samples stored before it
        are stored again by the next try, under the same names): count an attempt and try
        again after a backoff, or fail the task with why once the attempts run out. Unlike a
        failed poll, which says nothing of the video, this does not wait for the deadline."""
        attempts = task.attempts + 1
        if attempts >= self._config.submit_attempts:
            reason = f"the video could not be downloaded ({attempts} attempts): {exc.message}"
            await self._fail(task, State.IN_PROGRESS, reason, attempts=attempts)
            return
        delay = self._backoff(attempts)
        log.warning("task %s: download failed (%s); retry in %.1f s", task.id, exc, delay)
        await self._update(
            task,
            State.IN_PROGRESS,
            due_at=time.time() + delay,
            lease_until=0.0,
            attempts=attempts,
        )

    async def _transition(self, task: Task, expected: State, new: State, **fields: Any) -> bool:
        return await self._update(task, expected, **fields, state=new.value)

    async def _update(self, task: Task, expected: State, **fields: Any) -> bool:
        """Change the task under this worker's lease; False (logged) when the lease is gone:
        the task was cancelled, or taken over by another worker after the lease ran out."""
        if await self._claims.update(task.id, expected, **fields):
            return True
        # Not this worker's task any more. A cancel freed its slot; a takeover made the slot the
        # new holder's (slots are the task's), so only this process's view of it is dropped.
        self._pool.forget(task.upstream, task.id)
        if expected is State.SUBMITTING and self._leases.holds(task.id):
            self._lost.add(task.id)  # the submission job's own give-back must not run either
        log.info(
            "task %s: no longer %s under this worker's lease (cancelled, or taken over by "
            "another worker after the lease ran out); worker %s drops it",
            task.id,
            expected.value,
            self.identity.id,
        )
        return False

    async def _fail(self, task: Task, expected: State, reason: str, **fields: object) -> None:
        if await self._transition(
            task,
            expected,
            State.FAILED,
            fail_reason=reason,
            completed_at=time.time(),
            lease_until=0.0,
            **fields,
        ):
            await self._pool.release(task.upstream, task.id)
            self._latency.forget_running(task.model, task.id)
            log.info("task %s failed: %s", task.id, reason)
            await self._on_finished()


async def _nothing() -> None:
    pass


def _whole_video(path: Path) -> None:
    """Refuse a downloaded file that is cut short (the upstream sent no length, or a wrong
    one): to the worker, a download that ended early, to be made again."""
    try:
        check_whole(path)
    except IncompleteVideo as exc:
        raise UpstreamUnavailable(f"the video download ended early: {exc}") from exc


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _hashed(chunks: AsyncIterator[bytes], digest: hashlib._Hash) -> AsyncIterator[bytes]:
    """The chunks, each added to `digest` on its way to storage."""
    async for chunk in chunks:
        digest.update(chunk)
        yield chunk


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"
