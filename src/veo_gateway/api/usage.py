"""`GET /v1/usage`: a client's own usage and cost, by day and by model, with its limits.

The admin API (api/admin.py) answers the same report for any key.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from veo_gateway.api import schemas
from veo_gateway.api.deps import OwnerDep, ServicesDep
from veo_gateway.api.openapi import errors, ok
from veo_gateway.errors import InvalidArgument
from veo_gateway.store.usage import Limits, UsageReport, UsageRow, utc_day

router = APIRouter()

MAX_DAYS = 366


def _day(value: str | None, param: str, default: datetime.date) -> datetime.date:
    if value is None:
        return default
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(
            f"{param} must be a date like 2026-11-01, not {value!r}", param=param
        ) from None


def period(start: str | None, end: str | None, now: float) -> tuple[datetime.date, datetime.date]:
    """The UTC days a report covers: `start` to `end` inclusive, by default this month so far."""
    today = utc_day(now)
    first = _day(start, "start", today.replace(day=1))
    last = _day(end, "end", today)
    if first > last:
        raise InvalidArgument(f"start ({first}) is after end ({last})", param="start")
    if (last - first).days >= MAX_DAYS:
        raise InvalidArgument(f"a report covers at most {MAX_DAYS} days", param="start")
    return first, last


def total(rows: list[UsageRow]) -> UsageRow:
    """The sum of some usage rows."""
    return UsageRow(
        "total",
        sum(row.videos for row in rows),
        sum(row.seconds for row in rows),
        sum((row.cost_usd for row in rows), 0.0),
    )


async def owner_report(
    report: UsageReport,
    owner: str,
    limits: Limits,
    first: datetime.date,
    last: datetime.date,
    now: float,
) -> dict[str, Any]:
    """One owner's charged usage in the period, what is reserved now, and its limits."""
    by_model = list(await report.charged(owner, first, last, by="model"))
    by_day = await report.charged(owner, first, last, by="day")
    return {
        "object": "usage",
        "start": first.isoformat(),
        "end": last.isoformat(),
        "currency": "USD",
        "total": total(by_model).as_dict(),
        "by_day": [row.as_dict("day") for row in by_day],
        "by_model": [row.as_dict("model") for row in by_model],
        "reserved": (await report.reserved(owner)).as_dict(),
        "limits": limits.as_dict(),
        "current": (await report.standing(owner, now)).as_dict(),
    }


@router.get(
    "/v1/usage",
    responses={**ok(schemas.Usage, "The key's usage in the period."), **errors(400, 401)},
)
async def get_usage(
    services: ServicesDep, owner: OwnerDep, start: str | None = None, end: str | None = None
) -> JSONResponse:
    """The calling key's charged usage from `start` to `end` (UTC days, inclusive; default this
    month so far), by day and by model, with what is reserved, its limits and its standing."""
    now = time.time()
    first, last = period(start, end, now)
    limits = await services.keys.limits(owner)
    return JSONResponse(await owner_report(services.usage, owner, limits, first, last, now))
