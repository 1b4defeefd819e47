"""`create_app(settings)`: the ASGI app; all that has a lifetime is made in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import httpx
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from veo_gateway.api import admin, health, metrics, models, usage, videos, web
from veo_gateway.api.auth import Authenticator
from veo_gateway.api.deps import Services
from veo_gateway.api.limits import BodySizeLimit, HeaderSizeLimit
from veo_gateway.api.openapi import allowed_methods, install_openapi
from veo_gateway.api.status import StatusRoute
from veo_gateway.domain.pricing import PriceTable
from veo_gateway.errors import (
    GatewayError,
    InsufficientStorage,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
)
from veo_gateway.media.fetch import FetchLimits, SafeFetcher
from veo_gateway.media.images import ImageLimits
from veo_gateway.media.storage import LocalStorage, describe_bytes
from veo_gateway.observability.census import Census, KeyNames
from veo_gateway.observability.metrics import Metrics
from veo_gateway.observability.middleware import Observe
from veo_gateway.settings import Settings
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.tasks import TaskStore
from veo_gateway.store.usage import UsageReport
from veo_gateway.upstreams import open_upstreams
from veo_gateway.webhooks.dispatcher import DispatchConfig, WebhookDispatcher
from veo_gateway.webhooks.sender import WebhookSender
from veo_gateway.webhooks.store import WebhookStore
from veo_gateway.worker.retention import RetentionPolicy, Sweeper
from veo_gateway.worker.scheduler import Worker, WorkerConfig

log = logging.getLogger("veo_gateway")


def _error_response(error: GatewayError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.code, headers=error.headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def gateway_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        return _error_response(exc)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        # ("query", "limit") names the parameter `limit`; ("body", ...) the body's own fields.
        loc = list(first.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        param = ".".join(str(part) for part in loc)
        message = f"{param or 'request'}: {first.get('msg', 'invalid request')}"
        return _error_response(InvalidArgument(message, param=param or None))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error_response(NotFound("no such route"))
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request.app, request.url.path))
            return _error_response(
                MethodNotAllowed(
                    f"{request.method} is not a method of this route; it takes {allow}",
                    headers={"Allow": allow},
                )
            )
        kind = GatewayError.for_status(exc.status_code)
        return _error_response(kind(str(exc.detail)))

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error_response(GatewayError("internal error; it has been logged"))

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _take_worker_lock(data_dir: Path) -> IO[str] | None:
    """The single-worker lock of a SQLite data directory, or None if another process has it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # Opened without truncating: the file holds the holder's pid, which a process that finds
    # the lock taken reports (opening with "w" would wipe it before knowing who has it).
    handle = (data_dir / "worker.lock").open("a+")
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
    return handle


def _lock_holder(data_dir: Path) -> str:
    """Who holds the worker lock, as its file says ("pid 123"), for the operator's message."""
    try:
        pid = (data_dir / "worker.lock").read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


class StartupError(Exception):
    """The gateway cannot start, for a reason an operator can fix (said in one line)."""


# Below this much free space, a database error at start-up is taken for the full disk it is
# (SQLite cannot even open its WAL index, and says only "disk I/O error").
_FULL_DISK_BYTES = 1024 * 1024


async def preflight(settings: Settings) -> None:
    """Open the database and bring its schema up to date before serving, so what keeps the
    gateway from starting (a full disk) is said in one line rather than a traceback."""
    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
    except (sa.exc.DBAPIError, InsufficientStorage, OSError) as exc:
        directory = settings.data_dir
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        free = shutil.disk_usage(directory).free
        if isinstance(exc, InsufficientStorage) or free < _FULL_DISK_BYTES:
            raise StartupError(
                f"the disk of {settings.data_dir} is full ({describe_bytes(free)} free): the "
                "database cannot be opened; free some space and start again"
            ) from exc
        raise
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(settings.resolved_database_url)
    await migrate(engine)
    tasks, keys = TaskStore(engine), KeyStore(engine)
    app.state.census, app.state.key_names = Census(engine), KeyNames(engine)
    storage = LocalStorage(
        settings.data_dir / "inputs",
        settings.resolved_videos_dir,
        min_free_bytes=settings.min_free_bytes,
    )
    storage.prepare()
    if problem := storage.space_problem():
        log.error("%s: creates get 507 until space is freed", problem)
    fetcher = SafeFetcher(
        FetchLimits(
            timeout=settings.image_fetch_timeout,
            max_bytes=settings.image_max_bytes,
            max_redirects=settings.image_max_redirects,
            allow_private=settings.allow_private_image_urls,
        )
    )
    timeout = httpx.Timeout(settings.upstream_timeout, connect=10.0)
    upstream_client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
    worker_task: asyncio.Task[None] | None = None
    webhooks_task: asyncio.Task[None] | None = None
    sweeper_task: asyncio.Task[None] | None = None
    webhook_sender = WebhookSender(
        timeout=settings.webhook_timeout, allow_private=settings.allow_private_webhook_urls
    )
    lock: IO[str] | None = None
    stack = contextlib.AsyncExitStack()
    try:
        # Every process sweeps (not only the worker-lock holder): the compare-and-swap on
        # `expired_at` lets replicas sweep side by side, and deleting files is idempotent.
        sweeper = Sweeper(
            store=tasks,
            storage=storage,
            policy=RetentionPolicy(settings.retention_seconds, settings.storage_max_bytes),
            metrics=app.state.metrics,
        )
        sweeper_task = asyncio.create_task(sweeper.run(), name="veo-gateway-retention")
        upstreams = await stack.enter_async_context(open_upstreams(settings, upstream_client))
        catalog, latency, upstream = upstreams.catalog, upstreams.latency, upstreams.description
        log.info("upstream: %s", upstream)
        for model in catalog:
            for seconds in await tasks.recent_latencies(model):
                latency.observe(model, seconds)

        worker: Worker | None = None
        if settings.worker_enabled:
            lock = _take_worker_lock(settings.data_dir)
            if lock is None:
                # Two workers on one SQLite file would each release the other's leases at
                # start-up (TaskStore.recover), so this process serves the API only.
                log.warning(
                    "not starting a worker: %s holds %s and runs it (one worker per SQLite data "
                    "directory); this process serves the API and that worker takes its tasks. "
                    "Running several workers needs PostgreSQL (VEO_GATEWAY_DATABASE_URL)",
                    _lock_holder(settings.data_dir),
                    settings.data_dir / "worker.lock",
                )
            else:
                # No other worker is alive: its downloads' temp files are leftovers of a kill.
                if swept := await asyncio.to_thread(storage.sweep_temp_files, worker_stopped=True):
                    log.warning("removed %d temp file(s) left by an interrupted write", swept)
                # Webhooks are sent by the process holding the worker lock, as tasks finish.
                dispatcher = WebhookDispatcher(
                    store=WebhookStore(tasks, engine, retention_seconds=settings.retention_seconds),
                    sender=webhook_sender,
                    config=DispatchConfig(
                        endpoints=tuple(settings.webhook_endpoints),
                        secrets=tuple(settings.webhook_secrets),
                        timeout=settings.webhook_timeout,
                        retry_base=settings.webhook_retry_base,
                        retry_for=settings.webhook_retry_for,
                    ),
                )
                worker = Worker(
                    store=tasks,
                    pool=upstreams.pool,
                    storage=storage,
                    latency=latency,
                    config=WorkerConfig(
                        poll_interval=settings.poll_interval,
                        poll_concurrency=settings.poll_concurrency,
                        task_timeout=settings.task_timeout,
                        submit_attempts=settings.submit_attempts,
                        lease_seconds=settings.lease_seconds,
                        renew_interval=settings.lease_seconds / 3,
                        space_wait=max(1.0, min(60.0, 4 * settings.poll_interval)),
                    ),
                    metrics=app.state.metrics,
                    # A finished task's events go out at once, not at the next idle poll.
                    on_finished=dispatcher.wake,
                )
                worker_task = asyncio.create_task(worker.run(), name="veo-gateway-worker")
                webhooks_task = asyncio.create_task(dispatcher.run(), name="veo-gateway-webhooks")

        if not settings.client_keys and await keys.count_live() == 0:
            try:
                _, secret = await keys.create("default")
            except InsufficientStorage:
                log.error("no API key is configured, and none could be created: disk full")
            else:
                log.warning(
                    "no API keys were configured, so one was created (shown once, keep it): %s",
                    secret,
                )
        log.info("create API keys with: veo-gateway keys create --name NAME")
        app.state.services = Services(
            settings=settings,
            catalog=catalog,
            tasks=tasks,
            keys=keys,
            storage=storage,
            fetcher=fetcher,
            image_limits=ImageLimits(
                max_bytes=settings.image_max_bytes, max_pixels=settings.image_max_pixels
            ),
            auth=Authenticator(
                settings.client_keys, keys, cache_seconds=settings.key_cache_seconds
            ),
            worker=worker,
            upstream=upstream,
            pool=upstreams.pool,
            prices=PriceTable().with_overrides(upstreams.config.prices),
            usage=UsageReport(engine),
        )
        yield
        log.info("shutting down")
    finally:
        stopping = time.monotonic()
        for background in (sweeper_task, webhooks_task, worker_task):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        await webhook_sender.aclose()
        await stack.aclose()
        await upstream_client.aclose()
        await fetcher.aclose()
        tasks.close()
        await engine.dispose()
        if lock is not None:
            lock.close()
        log.info("stopped in %.1f s", time.monotonic() - stopping)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway app; nothing is opened until its lifespan starts."""
    settings = settings or Settings()
    app = FastAPI(
        title="veo-gateway",
        version="0.1.0",
        summary="Google's Veo video models behind one asynchronous HTTP API.",
        lifespan=_lifespan,
        # OpenTelemetry through FastAPI checks for configured providers on every request, a
        # measurable part of a status poll; the gateway's own metrics are at /metrics.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    _install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(videos.router)
    app.include_router(models.router)
    app.include_router(usage.router)
    app.include_router(admin.router)
    app.include_router(web.router)
    app.include_router(metrics.router)
    install_openapi(app)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    # Added last, so it runs first: polls skip the body cap (GETs have none) and the routing.
    app.add_middleware(StatusRoute)
    app.add_middleware(HeaderSizeLimit, limit=settings.max_header_bytes)
    # Outermost, so status polls are counted and logged, and every answer has a request id.
    app.add_middleware(Observe, metrics=app.state.metrics, access_log=settings.access_log)
    return app
