"""Liveness and readiness: no authentication."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from veo_gateway.api import schemas
from veo_gateway.api.deps import ServicesDep
from veo_gateway.api.openapi import errors, ok

router = APIRouter()


@router.get("/healthz", responses={**ok(schemas.Health, "Up."), **errors()})
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        **ok(schemas.Readiness, "Ready: every check is ok."),
        **ok(schemas.Readiness, "Not ready: the failing checks say why.", 503),
        **errors(),
    },
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when the database answers, storage is writable with more free space than the
    floor (files) or the bucket answers (object storage), and an upstream can take work.

    Lists each credential's state as every process shares it (in the database), so one
    cooling down after a 429 or taken out of service (401/403) by any worker shows here.
    """
    checks: dict[str, Any] = {}
    try:
        await services.tasks.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {type(exc).__name__}"
    storage = await services.storage.health()
    checks["storage"] = "ok" if storage.problem is None else f"error: {storage.problem}"
    now = time.time()
    credentials: list[dict[str, Any]] = []
    try:
        # Shared by every process: what any worker saw (a 429, a 401/403) shows on every replica.
        states = await services.pool.states(now)
    except Exception as exc:  # the database check above says why
        checks["upstreams"] = f"error: credential state unreadable ({type(exc).__name__})"
    else:
        for c in services.pool.credentials():
            state = states[c.id]
            credentials.append(
                {
                    "id": c.id,
                    "upstream": c.upstream,
                    "in_flight": state.in_flight,
                    "max_in_flight": c.max_in_flight,
                    "cooling_down_for": max(0.0, round(state.cool_until - now, 1)),
                    "out_of_service": state.out_of_service,
                    "out_of_service_since": state.out_since,
                }
            )
        in_service = any(state.out_of_service is None for state in states.values())
        checks["upstreams"] = "ok" if in_service else "error: none in service"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {
            "status": "ready" if ready else "not ready",
            "checks": checks,
            "storage": {
                "free_bytes": storage.free_bytes,
                "min_free_bytes": storage.min_free_bytes,
            },
            "credentials": credentials,
        },
        status_code=200 if ready else 503,
    )
