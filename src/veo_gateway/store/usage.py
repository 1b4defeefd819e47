"""The usage ledger, and the client key limits checked against it.

An entry is written in the transaction that creates its task (state `reserved`, after checking
the key's limits with the entry counted), and settled in the transaction that moves the task to
a final state: `charged` when the video was delivered, `released` otherwise. Both steps are
compare-and-swap on the entry's state, inside the task's own transaction, so a crash or a
restart can neither lose a settlement nor make one twice.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from veo_gateway.errors import PermissionDenied, ResourceExhausted
from veo_gateway.store.dialect import dialect_of
from veo_gateway.store.tables import tasks, usage

UNFINISHED = ("queued", "submitting", "in_progress")


class Entry(enum.StrEnum):
    """A ledger entry's state."""

    RESERVED = "reserved"
    CHARGED = "charged"
    RELEASED = "released"


@dataclass(frozen=True)
class Limits:
    """A client key's limits; None means no limit."""

    allowed_models: tuple[str, ...] | None = None
    max_in_flight: int | None = None
    max_video_seconds_per_day: int | None = None
    monthly_budget_usd: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The limits as JSON."""
        return {
            "allowed_models": None if self.allowed_models is None else list(self.allowed_models),
            "max_in_flight": self.max_in_flight,
            "max_video_seconds_per_day": self.max_video_seconds_per_day,
            "monthly_budget_usd": self.monthly_budget_usd,
        }


@dataclass(frozen=True)
class Charge:
    """What one task will cost if delivered."""

    model: str
    seconds: int
    resolution: str
    audio: bool
    cost_usd: float  # every sample's together
    samples: int = 1  # `seconds` and `cost_usd` are for this many videos


def utc_day(at: float) -> datetime.date:
    """The UTC date of a Unix time."""
    return datetime.datetime.fromtimestamp(at, datetime.UTC).date()


def check_model(limits: Limits, model: str) -> None:
    """403 when the key may not use `model`."""
    if limits.allowed_models is not None and model not in limits.allowed_models:
        allowed = ", ".join(limits.allowed_models) or "none"
        raise PermissionDenied(
            f"this API key may not use model {model!r}; it may use: {allowed}", param="model"
        )


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, int(seconds) + 1))}


def _counted() -> sa.ColumnElement[bool]:
    """Entries that count against a limit: reserved (may still be delivered) and charged."""
    return usage.c.state.in_([Entry.RESERVED.value, Entry.CHARGED.value])


async def in_flight(conn: AsyncConnection, owner: str) -> int:
    """How many of the owner's tasks are unfinished."""
    query = sa.select(sa.func.count()).where(tasks.c.owner == owner, tasks.c.state.in_(UNFINISHED))
    return int(await conn.scalar(query) or 0)


async def seconds_on(conn: AsyncConnection, owner: str, day: datetime.date) -> int:
    """Video seconds the owner has reserved or been charged for on a UTC day."""
    query = sa.select(sa.func.coalesce(sa.func.sum(usage.c.seconds), 0)).where(
        usage.c.owner == owner, usage.c.day == day.isoformat(), _counted()
    )
    return int(await conn.scalar(query) or 0)


async def spent_since(conn: AsyncConnection, owner: str, start: datetime.date) -> float:
    """USD the owner has reserved or been charged for since a UTC day."""
    query = sa.select(sa.func.coalesce(sa.func.sum(usage.c.cost_usd), 0.0)).where(
        usage.c.owner == owner, usage.c.day >= start.isoformat(), _counted()
    )
    return float(await conn.scalar(query) or 0.0)


def next_month(day: datetime.date) -> datetime.date:
    """The first day of the month after `day`'s."""
    return (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)


def _seconds_until(day: datetime.date, now: float) -> float:
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp() - now


async def reserve(
    conn: AsyncConnection, *, task_id: str, owner: str, limits: Limits, charge: Charge, now: float
) -> None:
    """Check the owner's limits with this charge counted, then write its reserved entry.

    Raises ResourceExhausted (429, saying which limit, with Retry-After) when a limit would be
    passed. Runs inside the task's create transaction under a lock per owner (`Dialect.lock`:
    an advisory lock on PostgreSQL, the write lock on SQLite), so concurrent creates on any
    number of processes cannot both slip under a limit.
    """
    today = utc_day(now)
    counted = (limits.max_in_flight, limits.max_video_seconds_per_day, limits.monthly_budget_usd)
    if any(limit is not None for limit in counted):
        # One owner's creates, from any process, check and reserve one after another: without
        # this, two could both count the same standing and both pass.
        await dialect_of(conn).lock(conn, f"owner:{owner}")
    if limits.max_in_flight is not None:
        running = await in_flight(conn, owner)
        if running >= limits.max_in_flight:
            raise ResourceExhausted(
                f"limit reached: this API key already has {running} videos in progress "
                f"(max_in_flight {limits.max_in_flight}); wait for one to finish",
                headers=_retry_after(10),
            )
    if limits.max_video_seconds_per_day is not None:
        used = await seconds_on(conn, owner, today)
        if used + charge.seconds > limits.max_video_seconds_per_day:
            tomorrow = today + datetime.timedelta(days=1)
            raise ResourceExhausted(
                f"limit reached: {used} of {limits.max_video_seconds_per_day} video seconds "
                f"used today (UTC) by this API key; this request needs {charge.seconds} more",
                headers=_retry_after(_seconds_until(tomorrow, now)),
            )
    if limits.monthly_budget_usd is not None:
        spent = await spent_since(conn, owner, today.replace(day=1))
        if spent + charge.cost_usd > limits.monthly_budget_usd + 1e-9:
            raise ResourceExhausted(
                f"limit reached: ${spent:.2f} of this API key's ${limits.monthly_budget_usd:.2f} "
                f"monthly budget is spent or reserved; this request costs "
                f"${charge.cost_usd:.2f}",
                headers=_retry_after(_seconds_until(next_month(today), now)),
            )
    await conn.execute(
        usage.insert().values(
            task_id=task_id,
            owner=owner,
            model=charge.model,
            seconds=charge.seconds,
            resolution=charge.resolution,
            audio=charge.audio,
            cost_usd=charge.cost_usd,
            samples=charge.samples,
            state=Entry.RESERVED.value,
            day=today.isoformat(),
            created_at=now,
        )
    )


async def settle(conn: AsyncConnection, task_id: str, *, delivered: int, now: float) -> bool:
    """Charge the task's reserved entry for the `delivered` samples (seconds and cost scaled
    from those reserved: a sample the safety filters withheld costs nothing), or release it
    (none delivered); True when this call did it."""
    values: dict[str, Any] = {"state": Entry.RELEASED.value, "settled_at": now}
    if delivered:
        # Never more than reserved: an upstream that sent extra samples is not charged for them.
        kept = sa.case((usage.c.samples < delivered, usage.c.samples), else_=delivered)
        values.update(
            state=Entry.CHARGED.value,
            seconds=usage.c.seconds / usage.c.samples * kept,
            cost_usd=usage.c.cost_usd / usage.c.samples * kept,
            samples=kept,
        )
    result = await conn.execute(
        usage.update()
        .where(usage.c.task_id == task_id, usage.c.state == Entry.RESERVED.value)
        .values(**values)
    )
    return bool(result.rowcount == 1)


async def forget(conn: AsyncConnection, task_id: str) -> None:
    """Drop a task's entry (its create was refused upstream at once: no task, no entry)."""
    await conn.execute(usage.delete().where(usage.c.task_id == task_id))


@dataclass(frozen=True)
class UsageRow:
    """Usage in one group (a day, a model or an owner)."""

    group: str
    videos: int
    seconds: int
    cost_usd: float

    def as_dict(self, name: str | None = None) -> dict[str, Any]:
        """The row as JSON, its group under `name` (none for a total)."""
        group = {} if name is None else {name: self.group}
        return {
            **group,
            "videos": self.videos,
            "seconds": self.seconds,
            "cost_usd": round(self.cost_usd, 4),
        }


@dataclass(frozen=True)
class Standing:
    """Where an owner stands against its limits now: what `reserve` would count."""

    in_flight: int
    video_seconds_today: int
    month_cost_usd: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "video_seconds_today": self.video_seconds_today,
            "month_cost_usd": round(self.month_cost_usd, 4),
        }


_GROUPS = {"day": usage.c.day, "model": usage.c.model, "owner": usage.c.owner}


class UsageReport:
    """Reads of the ledger, for clients (their own) and operators (any key)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def charged(
        self, owner: str | None, start: datetime.date, end: datetime.date, by: str
    ) -> Sequence[UsageRow]:
        """Charged entries from `start` to `end` (UTC days, inclusive), of one owner or (None)
        of all, grouped by "day", "model" or "owner"."""
        column = _GROUPS[by]
        query = (
            sa.select(
                column,
                sa.func.coalesce(sa.func.sum(usage.c.samples), 0),  # each sample is a video
                sa.func.coalesce(sa.func.sum(usage.c.seconds), 0),
                sa.func.coalesce(sa.func.sum(usage.c.cost_usd), 0.0),
            )
            .where(
                usage.c.state == Entry.CHARGED.value,
                usage.c.day >= start.isoformat(),
                usage.c.day <= end.isoformat(),
            )
            .group_by(column)
            .order_by(column)
        )
        if owner is not None:
            query = query.where(usage.c.owner == owner)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [UsageRow(str(g), int(n), int(s), float(c)) for g, n, s, c in rows]

    async def reserved(self, owner: str) -> UsageRow:
        """What the owner's unfinished tasks have reserved."""
        query = sa.select(
            sa.func.coalesce(sa.func.sum(usage.c.samples), 0),
            sa.func.coalesce(sa.func.sum(usage.c.seconds), 0),
            sa.func.coalesce(sa.func.sum(usage.c.cost_usd), 0.0),
        ).where(usage.c.owner == owner, usage.c.state == Entry.RESERVED.value)
        async with self._engine.connect() as conn:
            videos, seconds, cost = (await conn.execute(query)).one()
        return UsageRow("reserved", int(videos), int(seconds), float(cost))

    async def standing(self, owner: str, now: float) -> Standing:
        """The owner's counts against its limits at `now`."""
        today = utc_day(now)
        async with self._engine.connect() as conn:
            return Standing(
                in_flight=await in_flight(conn, owner),
                video_seconds_today=await seconds_on(conn, owner, today),
                month_cost_usd=await spent_since(conn, owner, today.replace(day=1)),
            )
