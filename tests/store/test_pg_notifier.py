"""LISTEN/NOTIFY on a real PostgreSQL: notifications cross processes (two engines and notifiers
here, as two processes would have), a sender does not get its own twice, and the listener comes
back after its connection is killed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.postgres import terminate
from veo_gateway.store.database import create_engine
from veo_gateway.store.notifier import Channel, open_notifier
from veo_gateway.store.pg_notifier import LISTENER, PostgresNotifier

WAIT = 30.0  # seconds a notification may take here before the test fails (not a measurement)


class Heard:
    """What one channel's subscriber heard, in order."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, payload: str) -> None:
        self.payloads.append(payload)
        self._changed.set()

    async def until(self, payload: str) -> list[str]:
        """The payloads heard once `payload` is among them (blank catch-up wakes left out)."""
        async with asyncio.timeout(WAIT):
            while payload not in self.payloads:
                self._changed.clear()
                await self._changed.wait()
        return [p for p in self.payloads if p]


@contextlib.asynccontextmanager
async def listening(engine: AsyncEngine) -> AsyncIterator[PostgresNotifier]:
    notifier = open_notifier(engine)
    assert isinstance(notifier, PostgresNotifier)
    task = asyncio.create_task(notifier.run())
    try:
        async with asyncio.timeout(WAIT):
            await notifier.listening.wait()
        yield notifier
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    first, second = create_engine(database_url), create_engine(database_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


@pytest.mark.postgresql
async def test_a_notification_reaches_the_other_process_and_its_sender_once(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    async with listening(engines[0]) as one, listening(engines[1]) as other:
        heard_here, heard_there = Heard(), Heard()
        one.subscribe(Channel.KEY_REVOKED, heard_here)
        other.subscribe(Channel.KEY_REVOKED, heard_there)
        other.subscribe(Channel.TASK_CREATED, lambda _: None)

        await one.publish(Channel.KEY_REVOKED, "key_1")
        assert await heard_there.until("key_1") == ["key_1"]
        # The other way: by the time the sender hears "key_2", the echo of its own
        # "key_1" (committed first) would have come too; it was not delivered again.
        await other.publish(Channel.KEY_REVOKED, "key_2")
        assert await heard_here.until("key_2") == ["key_1", "key_2"]
        assert [p for p in heard_there.payloads if p] == ["key_1", "key_2"]


@pytest.mark.postgresql
async def test_the_listener_reconnects_after_its_connection_is_killed(
    engines: tuple[AsyncEngine, AsyncEngine], database_url: str
) -> None:
    sender = open_notifier(engines[0])
    async with listening(engines[1]) as receiver:
        heard = Heard()
        receiver.subscribe(Channel.TASK_CREATED, heard)
        await sender.publish(Channel.TASK_CREATED, "before")
        await heard.until("before")
        blank_wakes = heard.payloads.count("")

        assert await terminate(LISTENER, database_url) == 1
        async with asyncio.timeout(WAIT):
            while receiver.connections < 2 or not receiver.listening.is_set():
                await asyncio.sleep(0.05)
        # Back: a catch-up wake for what may have been sent meanwhile, then notifications.
        assert heard.payloads.count("") == blank_wakes + 1
        await sender.publish(Channel.TASK_CREATED, "after")
        assert await heard.until("after") == ["before", "after"]


async def test_sqlite_gets_the_in_process_notifier(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        notifier = open_notifier(engine)
        assert not isinstance(notifier, PostgresNotifier)
        heard = Heard()
        notifier.subscribe(Channel.TASK_FINISHED, heard)
        await notifier.publish(Channel.TASK_FINISHED, "here")
        assert heard.payloads == ["here"]
    finally:
        await engine.dispose()
