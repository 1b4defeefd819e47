"""`create_app(settings)`: the ASGI app; all that has a lifetime is made in its lifespan."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from veo_gateway.api import (
    admin,
    extensions,
    health,
    metrics,
    models,
    unsupported,
    usage,
    videos,
    web,
)
from veo_gateway.api.auth import Authenticator
from veo_gateway.api.deps import Services
from veo_gateway.api.limits import BodySizeLimit, HeaderSizeLimit
from veo_gateway.api.openapi import allowed_methods, install_openapi
from veo_gateway.api.status import StatusRoute
from veo_gateway.domain.pricing import PriceTable
from veo_gateway.errors import (
    DatabaseUnavailable,
    GatewayError,
    InsufficientStorage,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
)
from veo_gateway.media.fetch import FetchLimits, SafeFetcher
from veo_gateway.media.images import ImageLimits
from veo_gateway.media.storage import describe_bytes, open_storage
from veo_gateway.observability.census import Census, KeyNames
from veo_gateway.observability.metrics import Metrics
from veo_gateway.observability.middleware import Observe
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.roles import Background, Role, WorkerLock, claim
from veo_gateway.settings import Settings
from veo_gateway.store.credentials import CredentialStore
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.notifier import Channel, open_notifier
from veo_gateway.store.tasks import TaskStore
from veo_gateway.store.usage import UsageReport
from veo_gateway.upstreams import open_upstreams
from veo_gateway.webhooks.sender import WebhookSender

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
    except DatabaseUnavailable as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise StartupError(
            f"the database at {where} is unreachable ({exc.__cause__ or exc}): start it, or "
            "fix VEO_GATEWAY_DATABASE_URL"
        ) from exc
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
    role, lock = claim(app.state.role, settings, app.state.worker_lock)
    log.info("this process runs %s", role.value)
    engine = create_engine(settings.resolved_database_url)
    await migrate(engine)
    notifier = open_notifier(engine)
    tasks, keys = TaskStore(engine), KeyStore(engine, notifier)
    app.state.census, app.state.key_names = Census(engine), KeyNames(engine)
    storage = open_storage(
        settings.storage_url,
        data_dir=settings.data_dir,
        videos_dir=settings.videos_dir,
        min_free_bytes=settings.min_free_bytes,
    )
    await storage.prepare()
    log.info("storage: %s", storage.description)
    if problem := storage.space_problem():
        log.error("%s: creates get 507 until space is freed", problem)
    if settings.content_redirect and not storage.signs_urls:
        log.warning(
            "VEO_GATEWAY_CONTENT_REDIRECT is set, but this storage has no presigned URLs: "
            "content is served by the gateway as usual"
        )
    fetcher = SafeFetcher(
        FetchLimits(
            timeout=settings.image_fetch_timeout,
            max_bytes=settings.image_max_bytes,
            max_redirects=settings.image_max_redirects,
            allow_private=settings.allow_private_image_urls,
        )
    )
    upstream_client = UpstreamHttp(timeout=settings.upstream_timeout)
    webhook_sender = WebhookSender(
        timeout=settings.webhook_timeout, allow_private=settings.allow_private_webhook_urls
    )
    background: Background | None = None
    stack = contextlib.AsyncExitStack()
    try:
        upstreams = await stack.enter_async_context(
            open_upstreams(settings, upstream_client, CredentialStore(tasks))
        )
        catalog, latency, upstream = upstreams.catalog, upstreams.latency, upstreams.description
        log.info("upstream: %s", upstream)
        for model in catalog:
            for seconds in await tasks.recent_latencies(model):
                latency.observe(model, seconds)
        auth = Authenticator(settings.client_keys, keys, cache_seconds=settings.key_cache_seconds)
        # A key revoked in any process (the CLI, the admin API of any replica) is dropped here.
        notifier.subscribe(Channel.KEY_REVOKED, auth.forget)
        background = Background(
            settings=settings,
            engine=engine,
            tasks=tasks,
            storage=storage,
            pool=upstreams.pool,
            latency=latency,
            notifier=notifier,
            metrics=app.state.metrics,
        )
        await background.start(role, alone=lock is not None, sender=webhook_sender)

        if role.serves_api and not settings.client_keys and await keys.count_live() == 0:
            try:
                _, secret = await keys.create("default")
            except InsufficientStorage:
                log.error("no API key is configured, and none could be created: disk full")
            else:
                log.warning(
                    "no API keys were configured, so one was created (shown once, keep it): %s",
                    secret,
                )
        if role.serves_api:
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
            auth=auth,
            worker=background.worker,
            upstream=upstream,
            pool=upstreams.pool,
            prices=PriceTable().with_overrides(
                upstreams.config.prices, upstreams.config.prices_without_audio
            ),
            usage=UsageReport(engine),
            notifier=notifier,
        )
        yield
        log.info("shutting down")
    finally:
        stopping = time.monotonic()
        if background is not None:
            await background.stop()
        await webhook_sender.aclose()
        await stack.aclose()
        await upstream_client.aclose()
        await fetcher.aclose()
        await tasks.aclose()
        await engine.dispose()
        if lock is not None:
            lock.release()
        log.info("stopped in %.1f s", time.monotonic() - stopping)


def create_app(
    settings: Settings | None = None,
    *,
    role: Role | None = None,
    worker_lock: WorkerLock | None = None,
) -> FastAPI:
    """Build the gateway app; nothing is opened until its lifespan starts.

    `role` defaults to serve's (roles.py); `Role.WORKER` gives the worker's listener: health,
    readiness and metrics, no public API. `worker_lock` is the SQLite worker lock when the
    caller took it already (the `worker` command).
    """
    settings = settings or Settings()
    role = role or Role.of_serve(settings)
    if not role.serves_api:
        return _worker_listener(settings, role, worker_lock)
    app = FastAPI(
        title="veo-gateway",
        version="0.1.0",
        summary="Google's Veo video models behind one asynchronous HTTP API.",
        lifespan=_lifespan,
        # OpenTelemetry through FastAPI checks for configured providers on every request, a
        # measurable part of a status poll; the gateway's own metrics are at /metrics.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    _prepare(app, settings, role, worker_lock)
    app.include_router(health.router)
    app.include_router(videos.router)
    app.include_router(extensions.router)
    app.include_router(unsupported.router)
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


def _prepare(app: FastAPI, settings: Settings, role: Role, worker_lock: WorkerLock | None) -> None:
    app.state.settings = settings
    app.state.role = role
    app.state.worker_lock = worker_lock
    app.state.metrics = Metrics()
    _install_error_handlers(app)


def _worker_listener(settings: Settings, role: Role, worker_lock: WorkerLock | None) -> FastAPI:
    """The worker's app: its lifespan runs the background work; /healthz, /readyz, /metrics."""
    app = FastAPI(
        title="veo-gateway worker",
        lifespan=_lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    _prepare(app, settings, role, worker_lock)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.add_middleware(HeaderSizeLimit, limit=settings.max_header_bytes)
    app.add_middleware(Observe, metrics=app.state.metrics, access_log=settings.access_log)
    return app
