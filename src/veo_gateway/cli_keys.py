"""`veo-gateway keys ...`: client keys and their usage, straight on the gateway's database.

The database is the one `serve` would use with the same settings (VEO_GATEWAY_DATA_DIR,
VEO_GATEWAY_DATABASE_URL, or `--data-dir` / `--database-url`); each command says on stderr which
one it opened. The same operations are open over HTTP in the admin API (api/admin.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
import typer

from veo_gateway.cli_output import iso_utc, print_json, print_rows
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


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The gateway's data directory, as VEO_GATEWAY_DATA_DIR (default ./data); its "
        "database is DATA_DIR/veo-gateway.db.",
        show_default=False,
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The gateway's database, as VEO_GATEWAY_DATABASE_URL (wins over --data-dir).",
        show_default=False,
    ),
]


class Limit(StrEnum):
    """A limit `keys update --clear` can remove."""

    MODELS = "models"
    MAX_IN_FLIGHT = "max-in-flight"
    MAX_VIDEO_SECONDS_PER_DAY = "max-video-seconds-per-day"
    MONTHLY_BUDGET = "monthly-budget"


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _open_url(data_dir: Path | None, database_url: str | None, *, create: bool) -> str:
    """The database URL of these settings, said on stderr. Only `create` may start a new
    SQLite file: the other commands stop when there is none, rather than read an empty one."""
    settings = Settings()  # the environment's, then the options over it
    if data_dir is not None or database_url is not None:
        settings = Settings(
            data_dir=data_dir or settings.data_dir,
            database_url=database_url or settings.database_url,
        )
    url = settings.resolved_database_url
    path = _sqlite_file(url)
    if path is None:
        typer.echo(
            f"database: {sa.engine.make_url(url).render_as_string(hide_password=True)}", err=True
        )
    elif path.exists():
        typer.echo(f"database: {path}", err=True)
    elif create:
        typer.echo(f"database: {path} (new: there was none)", err=True)
    else:
        typer.echo(
            f"no database at {path}: run this where the gateway keeps its data, or pass "
            "--data-dir or --database-url (VEO_GATEWAY_DATA_DIR, VEO_GATEWAY_DATABASE_URL)",
            err=True,
        )
        raise typer.Exit(1)
    return url


@asynccontextmanager
async def _database(url: str) -> AsyncIterator[tuple[KeyStore, UsageReport]]:
    from veo_gateway.store.database import create_engine, migrate
    from veo_gateway.store.notifier import open_notifier

    engine = create_engine(url)
    try:
        await migrate(engine)
        # A revocation is announced, so gateways on PostgreSQL drop the key at once.
        yield KeyStore(engine, open_notifier(engine)), UsageReport(engine)
    finally:
        await engine.dispose()


def _run(
    action: Callable[[KeyStore, UsageReport], Awaitable[T]],
    data_dir: Path | None,
    database_url: str | None,
    *,
    create: bool = False,
) -> T:
    url = _open_url(data_dir, database_url, create=create)

    async def main() -> T:
        async with _database(url) as (keys, usage):
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
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a client key and print it once (only its hash is stored)."""
    limits = Limits(
        allowed_models=_models(models),
        max_in_flight=max_in_flight,
        max_video_seconds_per_day=max_video_seconds_per_day,
        monthly_budget_usd=monthly_budget,
    )
    key, secret = _run(
        lambda keys, _: keys.create(name, limits), data_dir, database_url, create=True
    )
    typer.echo(f"created key {key.id} ({key.name}; {_describe(key.limits)}).")
    typer.echo("The key, shown this once:")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the keys as a JSON array (as the admin API).")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List stored keys (ids, names, prefixes, limits; never the secrets); times in UTC."""
    stored = _run(lambda keys, _: keys.list(), data_dir, database_url)
    if as_json:
        print_json([key.as_dict() for key in stored])
        return
    print_rows(
        ("id", "name", "prefix", "state", "created", "limits"),
        [
            (
                key.id,
                key.name,
                f"{key.prefix}…",
                "revoked" if key.revoked_at else "active",
                iso_utc(key.created_at),
                _describe(key.limits),
            )
            for key in stored
        ],
    )


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
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
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
    key = _run(lambda keys, _: keys.update(key_id, **changes), data_dir, database_url)
    if key is None:
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"updated {key.id} ({key.name}; {_describe(key.limits)})")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a stored key (gateways on PostgreSQL refuse it at once; on SQLite within
    VEO_GATEWAY_KEY_CACHE_SECONDS)."""
    if not _run(lambda keys, _: keys.revoke(key_id), data_dir, database_url):
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@keys_app.command("usage")
def keys_usage(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    start: Annotated[str | None, typer.Option(help="First UTC day, e.g. 2026-11-01.")] = None,
    end: Annotated[str | None, typer.Option(help="Last UTC day (default: today).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
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

    body = _run(report, data_dir, database_url)
    if body is None:
        typer.echo(f"no key with id {key_id}", err=True)
        raise typer.Exit(1)
    print_json(body)
