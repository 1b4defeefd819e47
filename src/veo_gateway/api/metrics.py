"""`GET /metrics`: Prometheus's text format; open, or behind a token when one is set.

No client key is needed: monitoring systems scrape with a token of their own
(`VEO_GATEWAY_METRICS_TOKEN`), or, without one, the route must not be exposed publicly.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response, Security
from prometheus_client import CONTENT_TYPE_LATEST

from veo_gateway.api.auth import bearer_matches
from veo_gateway.api.openapi import errors, metrics_token
from veo_gateway.errors import Unauthenticated
from veo_gateway.observability.census import Census
from veo_gateway.observability.metrics import Metrics
from veo_gateway.settings import Settings

router = APIRouter()


@router.get(
    "/metrics",
    dependencies=[Security(metrics_token)],
    responses={
        200: {
            "description": "Prometheus's text format.",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        },
        **errors(401),
    },
)
async def metrics(request: Request) -> Response:
    """Every metric of this app; the task gauges are read from the database now."""
    settings: Settings = request.app.state.settings
    if settings.metrics_token and not bearer_matches(
        settings.metrics_token, request.headers.get("authorization")
    ):
        raise Unauthenticated(
            "metrics need 'Authorization: Bearer METRICS_TOKEN'", param="Authorization"
        )
    registry: Metrics = request.app.state.metrics
    census: Census = request.app.state.census
    by_state, stored_bytes = await census.tasks()
    registry.set_census(by_state, stored_bytes)
    free = await anyio.to_thread.run_sync(request.app.state.services.storage.free_bytes)
    if free is not None:  # an object store has no free space to show
        registry.set_storage_free(free)
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
