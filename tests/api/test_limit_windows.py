"""The daily and monthly windows of a client key's limits: they roll over at UTC midnight and at
the first of the month, and the 429 they answer says, in `Retry-After`, when that will be.

The windows are checked by the usage ledger with the `now` of the create; here the ledger runs
on a real migrated SQLite file with chosen times, so no test waits for a day to pass. The last
test checks the same header through the running gateway.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.test_usage_limits import BODY, stored_key
from tests.conftest import Gateway
from veo_gateway.errors import ResourceExhausted
from veo_gateway.store import usage as ledger
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.tasks import TaskStore
from veo_gateway.store.usage import Charge, Limits

FAST = "veo-3.1-fast-generate-preview"
EIGHT_SECONDS = Charge(model=FAST, seconds=8, resolution="720p", audio=True, cost_usd=0.8)


def at(text: str) -> float:
    """Unix seconds of an ISO time in UTC."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


class Ledger:
    """Reservations for one key at chosen times, each in a transaction of its own."""

    def __init__(self, engine: AsyncEngine, owner: str, limits: Limits) -> None:
        self.store = TaskStore(engine)
        self.owner = owner
        self.limits = limits
        self.count = 0

    async def reserve(self, now: float) -> int | None:
        """Reserve EIGHT_SECONDS at `now`: None when allowed, the Retry-After when refused."""
        self.count += 1
        try:
            async with self.store.transaction() as conn:
                await ledger.reserve(
                    conn,
                    task_id=f"task-{self.count}",
                    owner=self.owner,
                    limits=self.limits,
                    charge=EIGHT_SECONDS,
                    now=now,
                )
        except ResourceExhausted as refused:
            assert refused.code == 429
            return int(refused.headers["Retry-After"])
        return None


async def key_ledger(engine: AsyncEngine, limits: Limits) -> Ledger:
    key, _ = await KeyStore(engine).create("windowed", limits)
    return Ledger(engine, key.id, limits)


async def test_the_daily_window_rolls_over_at_utc_midnight(engine: AsyncEngine) -> None:
    book = await key_ledger(engine, Limits(max_video_seconds_per_day=16))
    assert await book.reserve(at("2026-03-31T08:00:00")) is None
    assert await book.reserve(at("2026-03-31T23:59:00")) is None
    # Full for the day: the answer points at midnight (60 s on, rounded up past it).
    assert await book.reserve(at("2026-03-31T23:59:00")) == 61
    assert await book.reserve(at("2026-03-31T23:59:59.5")) == 1
    # A new UTC day: yesterday's 16 seconds no longer count, today's do.
    assert await book.reserve(at("2026-04-01T00:00:00")) is None
    assert await book.reserve(at("2026-04-01T00:00:01")) is None
    assert await book.reserve(at("2026-04-01T12:00:00")) == 12 * 3600 + 1


async def test_the_monthly_budget_rolls_over_on_the_first(engine: AsyncEngine) -> None:
    book = await key_ledger(engine, Limits(monthly_budget_usd=1.6))
    assert await book.reserve(at("2026-12-01T00:00:00")) is None
    assert await book.reserve(at("2026-12-15T10:00:00")) is None
    # Spent for December: come back on the first of January, across the year's end.
    until_january = at("2027-01-01T00:00:00") - at("2026-12-15T10:00:00")
    assert await book.reserve(at("2026-12-15T10:00:00")) == int(until_january) + 1
    assert await book.reserve(at("2026-12-31T23:59:30")) == 31
    assert await book.reserve(at("2027-01-01T00:00:00")) is None
    assert await book.reserve(at("2027-01-31T23:00:00")) is None
    until_february = at("2027-02-01T00:00:00") - at("2027-01-31T23:00:00")
    assert await book.reserve(at("2027-01-31T23:00:00")) == int(until_february) + 1


async def test_released_reservations_leave_the_window(engine: AsyncEngine) -> None:
    book = await key_ledger(engine, Limits(max_video_seconds_per_day=8))
    noon = at("2026-06-10T12:00:00")
    assert await book.reserve(noon) is None
    assert await book.reserve(noon) == 12 * 3600 + 1
    async with book.store.transaction() as conn:
        assert await ledger.settle(conn, "task-1", delivered=False, now=noon)
    assert await book.reserve(noon) is None


def test_the_gateway_answers_retry_after_at_the_rollover(gateway: Gateway) -> None:
    daily = stored_key(gateway, Limits(max_video_seconds_per_day=4))
    assert gateway.create(BODY, key=daily).status_code == 200
    before = time.time()
    refused = gateway.create(BODY, key=daily)
    after = time.time()
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["message"] == (
        "limit reached: 4 of 4 video seconds used today (UTC) by this API key; "
        "this request needs 4 more"
    )
    # The request was judged between `before` and `after`; Retry-After is the seconds from then
    # to the next UTC midnight, rounded up past it.
    retry_after = int(refused.headers["retry-after"])
    today = datetime.datetime.fromtimestamp(before, datetime.UTC).date()
    midnight = at((today + datetime.timedelta(days=1)).isoformat() + "T00:00:00")
    assert after + retry_after > midnight
    assert before + retry_after <= midnight + 1
