"""`veo-gateway keys ...`: client keys and their usage, straight on the gateway's database.

The same operations are open over HTTP in the admin API (api/admin.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer

from veo_gateway.settings import Settings
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.usage import Limits, UsageReport

keys_app = typer.Typer(help="Client API keys: create, list, update, revoke, usage.")

T = TypeVar("T")

Models = Annotated[
    str | None,
    typer.Option(help="Comma-separated models the key may use (default: all)."),
]
MaxInFlight = Annotated[
    int | None, typer.Option(min=1, help="Tasks it may have unfinished at once.")
]
MaxSecondsPerDay = Annotated[
    int | None, typer.Option(min=1, help="Video seconds it may order per UTC day.")
]
MonthlyBudget = Annotated[
    float | None, typer.Option(min=0, help="USD it may spend per calendar month.")
]


class Limit(StrEnum):
    """A limit `keys update --clear` can remove."""

    MODELS = "models"
    MAX_IN_FLIGHT = "max-in-flight"
    MAX_VIDEO_SECONDS_PER_DAY = "max-video-seconds-per-day"
    MONTHLY_BUDGET = "monthly-budget"


@asynccontextmanager
async def _database() -> AsyncIterator[tuple[KeyStore, UsageReport]]:
    from veo_gateway.store.database import create_engine, migrate

    engine = create_engine(Settings().resolved_database_url)
    try:
        await migrate(engine)
        yield KeyStore(engine), UsageReport(engine)
    finally:
        await engine.dispose()


def _run(action: Callable[[KeyStore, UsageReport], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _database() as (keys, usage):
            return await action(keys, usage)

    return asyncio.run(main())


def _models(models: str | None) -> tuple[str, ...] | None:
    if models is None:
        return None
    return tuple(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))


def _describe(limits: Limits) -> str:
    set_limits = {k: v for k, v in limits.as_dict().items() if v is not None}
    return ", ".join(f"{k}={v}" for k, v in set_limits.items()) or "no limits"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    models: Models = None,
    max_in_flight: MaxInFlight = None,
    max_video_seconds_per_day: MaxSecondsPerDay = None,
    monthly_budget: MonthlyBudget = None,
) -> None:
    """Create a client key and print it once (only its hash is stored)."""
    limits = Limits(
        allowed_models=_models(models),
        max_in_flight=max_in_flight,
        max_video_seconds_per_day=max_video_seconds_per_day,
        monthly_budget_usd=monthly_budget,
    )
    key, secret = _run(lambda keys, _: keys.create(name, limits))
    typer.echo(f"created key {key.id} ({key.name}; {_describe(key.limits)}).")
    typer.echo("The key, shown this once:")
    typer.echo(secret)


@keys_app.command("list")
def keys_list() -> None:
    """List stored keys (ids, names, prefixes, limits; never the secrets)."""
    for key in _run(lambda keys, _: keys.list()):
        state = "revoked" if key.revoked_at else "active"
        typer.echo(f"{key.id}\t{key.name}\t{key.prefix}…\t{state}\t{_describe(key.limits)}")


@keys_app.command("update")
def keys_update(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    models: Models = None,
    max_in_flight: MaxInFlight = None,
    max_video_seconds_per_day: MaxSecondsPerDay = None,
    monthly_budget: MonthlyBudget = None,
    clear: Annotated[
        list[Limit] | None,
        typer.Option(help="Remove a limit (repeatable): the key is then unlimited in it."),
    ] = None,
) -> None:
    """Change a live key's name or limits; options left out stay as they are."""
    changes: dict[str, Any] = {} if name is None else {"name": name}
    given = {
        Limit.MODELS: ("allowed_models", _models(models)),
        Limit.MAX_IN_FLIGHT: ("max_in_flight", max_in_flight),
        Limit.MAX_VIDEO_SECONDS_PER_DAY: ("max_video_seconds_per_day", max_video_seconds_per_day),
        Limit.MONTHLY_BUDGET: ("monthly_budget_usd", monthly_budget),
    }
    for limit, (field, value) in given.items():
        if limit in (clear or []):
            if value is not None:
                raise typer.BadParameter(f"--{limit} and --clear {limit} contradict each other")
            changes[field] = None
        elif value is not None:
            changes[field] = value
    if not changes:
        raise typer.BadParameter("nothing to change: give --name, a limit, or --clear")
    key = _run(lambda keys, _: keys.update(key_id, **changes))
    if key is None:
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"updated {key.id} ({key.name}; {_describe(key.limits)})")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke a stored key (a running gateway stops accepting it within 5 seconds)."""
    if not _run(lambda keys, _: keys.revoke(key_id)):
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@keys_app.command("usage")
def keys_usage(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    start: Annotated[str | None, typer.Option(help="First UTC day, e.g. 2026-11-01.")] = None,
    end: Annotated[str | None, typer.Option(help="Last UTC day (default: today).")] = None,
) -> None:
    """Print a key's usage report as JSON (the same as the admin API's)."""
    from veo_gateway.api.usage import owner_report, period
    from veo_gateway.errors import InvalidArgument

    now = time.time()
    try:
        first, last = period(start, end, now)
    except InvalidArgument as exc:
        raise typer.BadParameter(exc.message) from None

    async def report(keys: KeyStore, usage: UsageReport) -> dict[str, Any] | None:
        key = await keys.get(key_id)
        if key is None:
            return None
        body = await owner_report(usage, key.id, key.limits, first, last, now)
        return {**body, "key": key.as_dict()}

    body = _run(report)
    if body is None:
        typer.echo(f"no key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(body, indent=2))
