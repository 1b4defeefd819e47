"""The admin API under `/admin/`: client keys and their usage, behind VEO_GATEWAY_ADMIN_TOKEN.

Without the token set the API is disabled (403 on every route); with it, a request without the
token, or with another, is 401. Client keys never open it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from veo_gateway.api import schemas
from veo_gateway.api.auth import bearer_matches
from veo_gateway.api.bodies import parse_json
from veo_gateway.api.deps import Services, ServicesDep
from veo_gateway.api.openapi import admin_token, errors, json_body, ok
from veo_gateway.api.usage import owner_report, period, total
from veo_gateway.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from veo_gateway.store.keys import ApiKey
from veo_gateway.store.usage import Limits


async def require_admin(
    services: ServicesDep, authorization: Annotated[str | None, Security(admin_token)]
) -> None:
    """Let the request through only with the admin token."""
    token = services.settings.admin_token
    if not token:
        raise PermissionDenied(
            "the admin API is disabled; set VEO_GATEWAY_ADMIN_TOKEN on the gateway to enable it"
        )
    if not bearer_matches(token, authorization):
        raise Unauthenticated(
            "the admin API needs 'Authorization: Bearer ADMIN_TOKEN' "
            "(VEO_GATEWAY_ADMIN_TOKEN; client keys do not open it)",
            param="Authorization",
        )


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=errors(401, 403),
)

M = TypeVar("M", bound=BaseModel)
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _LimitFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_models: list[str] | None = None
    max_in_flight: Annotated[int, Field(ge=1)] | None = None
    max_video_seconds_per_day: Annotated[int, Field(ge=1)] | None = None
    monthly_budget_usd: Annotated[float, Field(ge=0)] | None = None


class KeyCreate(_LimitFields):
    """The body of `POST /admin/keys`; a limit left out or null is no limit."""

    name: Name


class KeyUpdate(_LimitFields):
    """The body of `PATCH /admin/keys/{id}`: only the fields sent change; null removes a limit."""

    name: Name | None = None


async def _body(request: Request, model: type[M]) -> M:
    """The JSON body as `model`, read only after the token was checked (so a request without
    the token learns nothing, not even that its body is wrong)."""
    body = parse_json(await request.body())
    if not isinstance(body, dict):
        raise InvalidArgument("body: the request body should be an object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidArgument(f"{param or 'body'}: {first['msg']}", param=param) from None


def _check_models(services: Services, models: list[str] | None) -> tuple[str, ...] | None:
    if models is None:
        return None
    for model in models:
        services.catalog.require(model, param="allowed_models")
    return tuple(dict.fromkeys(models))


async def _stored_key(services: Services, key_id: str) -> ApiKey:
    key = await services.keys.get(key_id)
    if key is None:
        raise NotFound(f"no API key with id {key_id!r}", param="id")
    return key


@router.post(
    "/keys",
    status_code=201,
    responses={**ok(schemas.ApiKeyCreated, "The key, with its secret.", 201), **errors(400, 413)},
    openapi_extra=json_body(KeyCreate),
)
async def create_key(request: Request, services: ServicesDep) -> JSONResponse:
    """Create a client key; the answer holds its secret, which is shown this once."""
    body = await _body(request, KeyCreate)
    limits = Limits(
        allowed_models=_check_models(services, body.allowed_models),
        max_in_flight=body.max_in_flight,
        max_video_seconds_per_day=body.max_video_seconds_per_day,
        monthly_budget_usd=body.monthly_budget_usd,
    )
    key, secret = await services.keys.create(body.name, limits)
    return JSONResponse({**key.as_dict(), "secret": secret}, status_code=201)


@router.get("/keys", responses=ok(schemas.ApiKeyList, "Every stored key."))
async def list_keys(services: ServicesDep) -> JSONResponse:
    """Every stored key, revoked ones too, oldest first (never the secrets)."""
    return JSONResponse(
        {"object": "list", "data": [key.as_dict() for key in await services.keys.list()]}
    )


@router.get("/keys/{key_id}", responses={**ok(schemas.ApiKey, "The key."), **errors(404)})
async def get_key(key_id: str, services: ServicesDep) -> JSONResponse:
    """One stored key."""
    return JSONResponse((await _stored_key(services, key_id)).as_dict())


@router.patch(
    "/keys/{key_id}",
    responses={**ok(schemas.ApiKey, "The key, changed."), **errors(400, 404, 413)},
    openapi_extra=json_body(KeyUpdate),
)
async def update_key(key_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    """Change a live key's name or limits; fields left out stay, null removes a limit."""
    body = await _body(request, KeyUpdate)
    sent = body.model_fields_set
    if "name" in sent and body.name is None:
        raise InvalidArgument("name cannot be null", param="name")
    changes: dict[str, Any] = {
        field: getattr(body, field) for field in sent if field != "allowed_models"
    }
    if "allowed_models" in sent:
        changes["allowed_models"] = _check_models(services, body.allowed_models)
    key = await services.keys.update(key_id, **changes)
    if key is None:
        raise NotFound(f"no active API key with id {key_id!r}", param="id")
    return JSONResponse(key.as_dict())


@router.delete(
    "/keys/{key_id}", responses={**ok(schemas.ApiKey, "The key, revoked."), **errors(404)}
)
async def revoke_key(key_id: str, services: ServicesDep) -> JSONResponse:
    """Revoke a key: it stops working at once on this replica, and on the others as soon as
    they hear of it (PostgreSQL), within VEO_GATEWAY_KEY_CACHE_SECONDS at the latest."""
    if not await services.keys.revoke(key_id):  # announced to every process's key cache
        raise NotFound(f"no active API key with id {key_id!r}", param="id")
    return JSONResponse((await _stored_key(services, key_id)).as_dict())


@router.get(
    "/keys/{key_id}/usage",
    responses={**ok(schemas.KeyUsage, "The key's usage."), **errors(400, 404)},
)
async def key_usage(
    key_id: str, services: ServicesDep, start: str | None = None, end: str | None = None
) -> JSONResponse:
    """The same report as the key's own `GET /v1/usage`."""
    now = time.time()
    first, last = period(start, end, now)
    key = await _stored_key(services, key_id)
    report = await owner_report(services.usage, key.id, key.limits, first, last, now)
    return JSONResponse({**report, "key": key.as_dict()})


@router.get("/usage", responses={**ok(schemas.UsageSummary, "Every key's usage."), **errors(400)})
async def all_usage(
    services: ServicesDep, start: str | None = None, end: str | None = None
) -> JSONResponse:
    """Charged usage of every key in the period, by key and by model."""
    first, last = period(start, end, time.time())
    names = {key.id: key.name for key in await services.keys.list()}
    by_owner = await services.usage.charged(None, first, last, by="owner")
    by_model = list(await services.usage.charged(None, first, last, by="model"))
    return JSONResponse(
        {
            "object": "usage.summary",
            "start": first.isoformat(),
            "end": last.isoformat(),
            "currency": "USD",
            "total": total(by_model).as_dict(),
            "by_key": [
                {
                    "key_id": row.group,
                    # Keys from VEO_GATEWAY_API_KEYS have ids "env:<hash prefix>" and no name.
                    "name": names.get(row.group),
                    **row.as_dict(),
                }
                for row in by_owner
            ],
            "by_model": [row.as_dict("model") for row in by_model],
        }
    )
