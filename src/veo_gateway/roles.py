"""Process roles: what a gateway process runs, and the background work of those that work.

- `Role.BOTH`, `veo-gateway serve`: the public API and the background work.
- `Role.API`, `serve --no-worker` (or `VEO_GATEWAY_WORKER_ENABLED=false`): the API only
  (and the retention sweeper, which every process runs).
- `Role.WORKER`, `veo-gateway worker`: the background work only (submitting, polling, storing
  videos, webhook delivery, retention), behind a listener of /healthz, /readyz and /metrics.

On SQLite one process per data directory does the background work, proven by a `flock` on
`DATA_DIR/worker.lock` (its holder releases every lease at start-up, which two workers would
do to each other). A `serve` that finds the lock taken serves the API only; a `worker` refuses
to start. On PostgreSQL there is no lock: any number of workers share the database.
"""

from __future__ import annotations

import asyncio
import enum
import fcntl
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from veo_gateway.domain.progress import LatencyModel
from veo_gateway.media.storage import Storage
from veo_gateway.observability.metrics import Metrics
from veo_gateway.providers.pool import CredentialPool
from veo_gateway.settings import Settings
from veo_gateway.store.dialect import dialect_named
from veo_gateway.store.notifier import Channel, Notifier
from veo_gateway.store.tasks import TaskStore
from veo_gateway.webhooks.dispatcher import DispatchConfig, WebhookDispatcher
from veo_gateway.webhooks.sender import WebhookSender
from veo_gateway.webhooks.store import WebhookStore
from veo_gateway.worker.retention import RetentionPolicy, Sweeper
from veo_gateway.worker.scheduler import Worker, WorkerConfig

log = logging.getLogger("veo_gateway")

LOCK_FILE = "worker.lock"


class Role(enum.Enum):
    """What one gateway process runs."""

    BOTH = "the API and the background work"
    API = "the API only"
    WORKER = "the background work only"

    @property
    def serves_api(self) -> bool:
        """Whether the public API is served."""
        return self is not Role.WORKER

    @property
    def works(self) -> bool:
        """Whether tasks are submitted, polled and stored, and webhooks sent, here."""
        return self is not Role.API

    @classmethod
    def of_serve(cls, settings: Settings) -> Role:
        """The role of `veo-gateway serve` under these settings."""
        return cls.BOTH if settings.worker_enabled else cls.API


class WorkerLockHeld(Exception):
    """A worker cannot start: another process holds the SQLite data directory's worker."""


class WorkerLock:
    """The single-worker lock of a SQLite data directory, held while the process lives."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    @classmethod
    def take(cls, data_dir: Path) -> WorkerLock | None:
        """The lock, or None when another process holds it."""
        data_dir.mkdir(parents=True, exist_ok=True)
        # Opened without truncating: the file holds the holder's pid, which a process that
        # finds the lock taken reports (opening with "w" would wipe it before knowing who).
        handle = (data_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError:
            pass  # the pid is only a hint for operators; a full disk must not stop the start
        return cls(handle)

    @staticmethod
    def holder(data_dir: Path) -> str:
        """Who holds the lock, as its file says ("pid 123"), for the operator's message."""
        try:
            pid = (data_dir / LOCK_FILE).read_text().strip()
        except OSError:
            pid = ""
        return f"pid {pid}" if pid.isdigit() else "another process"

    def release(self) -> None:
        """Let another process take the data directory's worker."""
        self._handle.close()


def _single_worker(settings: Settings) -> bool:
    """Whether the database allows one worker only (SQLite: see the module docstring)."""
    backend = sa.engine.make_url(settings.resolved_database_url).get_backend_name()
    return dialect_named(backend).single_worker


def claim(
    role: Role, settings: Settings, lock: WorkerLock | None = None
) -> tuple[Role, WorkerLock | None]:
    """The role this process can take, with the worker lock when the database needs one.

    `serve` falls back to the API when another process holds the lock; `worker` raises
    WorkerLockHeld. `lock` is one the caller took already (the `worker` command takes it
    before its listener starts, so a refusal is one line, not a traceback).
    """
    if not role.works or not _single_worker(settings):
        return role, lock
    lock = lock or WorkerLock.take(settings.data_dir)
    if lock is not None:
        return role, lock
    held = (
        f"{WorkerLock.holder(settings.data_dir)} holds {settings.data_dir / LOCK_FILE} and runs "
        "the worker of this data directory (one worker per SQLite data directory; several "
        "workers need PostgreSQL: VEO_GATEWAY_DATABASE_URL=postgresql://...)"
    )
    if role is Role.WORKER:
        raise WorkerLockHeld(f"another worker is running: {held}")
    log.warning(
        "not starting a worker: %s; this process serves the API and that worker takes its tasks",
        held,
    )
    return Role.API, None


@dataclass
class Background:
    """The background work of one process, and what it needs."""

    settings: Settings
    engine: AsyncEngine
    tasks: TaskStore
    storage: Storage
    pool: CredentialPool
    latency: LatencyModel
    notifier: Notifier
    metrics: Metrics
    worker: Worker | None = None
    _jobs: list[asyncio.Task[None]] = field(default_factory=list)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._jobs.append(asyncio.create_task(coro, name=name))

    async def start(self, role: Role, *, alone: bool, sender: WebhookSender) -> None:
        """Start the notifications and the retention sweeper, and with `role.works` the worker
        and the webhook dispatcher; `alone`: no other worker can be alive (the lock is held)."""
        settings = self.settings
        self._spawn(self.notifier.run(), "veo-gateway-notifications")
        # Every process sweeps, API-only ones too (they measure the inputs they stored): the
        # compare-and-swap on `expired_at` lets sweepers run side by side, and deleting files
        # is idempotent.
        sweeper = Sweeper(
            store=self.tasks,
            storage=self.storage,
            policy=RetentionPolicy(settings.retention_seconds, settings.storage_max_bytes),
            metrics=self.metrics,
        )
        self._spawn(sweeper.run(), "veo-gateway-retention")
        if not role.works:
            return
        if alone:  # no other worker is alive: its downloads' temp files are leftovers
            swept = await self.storage.sweep_leftovers(worker_stopped=True)
            if swept:
                log.warning("removed %d temp file(s) left by an interrupted write", swept)
        dispatcher = WebhookDispatcher(
            store=WebhookStore(
                self.tasks, self.engine, retention_seconds=settings.retention_seconds
            ),
            sender=sender,
            config=DispatchConfig(
                endpoints=tuple(settings.webhook_endpoints),
                secrets=tuple(settings.webhook_secrets),
                timeout=settings.webhook_timeout,
                retry_base=settings.webhook_retry_base,
                retry_for=settings.webhook_retry_for,
                idle_poll=settings.worker_idle_seconds,
            ),
        )

        async def finished() -> None:
            # A finished task's event goes out at once, and its credential slot is free.
            await self.notifier.publish(Channel.TASK_FINISHED)

        self.worker = worker = Worker(
            store=self.tasks,
            pool=self.pool,
            storage=self.storage,
            latency=self.latency,
            config=WorkerConfig(
                poll_interval=settings.poll_interval,
                poll_concurrency=settings.poll_concurrency,
                task_timeout=settings.task_timeout,
                submit_attempts=settings.submit_attempts,
                lease_seconds=settings.lease_seconds,
                renew_interval=settings.lease_seconds / 3,
                idle_wait=settings.worker_idle_seconds,
                space_wait=max(1.0, min(60.0, 4 * settings.poll_interval)),
            ),
            metrics=self.metrics,
            on_finished=finished,
        )
        self.notifier.subscribe(Channel.TASK_CREATED, lambda _: worker.wake())
        self.notifier.subscribe(Channel.TASK_FINISHED, lambda _: worker.wake())
        self.notifier.subscribe(Channel.TASK_FINISHED, lambda _: dispatcher.wake())
        self._spawn(worker.run(), "veo-gateway-worker")
        self._spawn(dispatcher.run(), "veo-gateway-webhooks")

    async def stop(self) -> None:
        """Cancel the background work, newest first (the worker lets submissions on the wire
        end)."""
        for job in reversed(self._jobs):
            job.cancel()
            try:
                await job
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("%s ended with an error", job.get_name())
        self._jobs.clear()
