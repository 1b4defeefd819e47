"""PostgreSQL's LISTEN/NOTIFY behind the `Notifier` protocol (store/notifier.py).

Publishing calls this process's subscribers at once and sends `pg_notify` on a pooled
connection, right after the change committed. Receiving uses one asyncpg connection of its own,
outside the pool (a LISTENing session must stay open), which is opened again when it is lost;
each time it (re)connects every subscriber is called with an empty payload, since what was
sent while nobody listened is gone. Every payload starts with this process's origin token, so
its own notifications, already delivered, are not delivered twice when they come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from veo_gateway.observability.throttled import ThrottledLog
from veo_gateway.store.notifier import Channel, LocalNotifier, Subscriber

log = logging.getLogger("veo_gateway.notifier")

LISTENER = "veo-gateway listener"  # its application_name, as pg_stat_activity shows it
_NOTIFY = sa.text("SELECT pg_notify(:channel, :payload)")


def asyncpg_dsn(engine: AsyncEngine) -> str:
    """The libpq-style URL asyncpg connects with, from the engine's SQLAlchemy URL."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresNotifier:
    """Notifications for every process on one PostgreSQL database."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retry_seconds: float = 1.0,
        check_seconds: float = 15.0,
    ) -> None:
        self._engine = engine
        self._local = LocalNotifier()
        self._origin = secrets.token_hex(6)
        self._retry_seconds = retry_seconds
        # How often an idle listening connection is checked with a query: a connection cut
        # without a word (a network gone, not a server that closed it) is noticed that soon.
        self._check_seconds = check_seconds
        self._trouble = ThrottledLog(log, 60.0)
        self.listening = asyncio.Event()  # set while a connection LISTENs (tests wait on it)
        self.connections = 0  # listening connections opened so far

    def subscribe(self, channel: Channel, subscriber: Subscriber) -> None:
        """Call `subscriber` for each notification on `channel`, from here or elsewhere."""
        self._local.subscribe(channel, subscriber)

    async def publish(self, channel: Channel, payload: str = "") -> None:
        """This process's subscribers now; the others' through NOTIFY (logged if it fails)."""
        self._local.deliver(channel, payload)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    _NOTIFY, {"channel": channel.value, "payload": f"{self._origin}:{payload}"}
                )
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            # Other processes find the change at their next look (or when the cache expires).
            self._trouble.trouble(
                "notify",
                "could not notify other processes (%s: %s); they see it at their next look",
                channel.name,
                type(exc).__name__,
                exc=exc,
            )

    async def run(self) -> None:
        """LISTEN on a connection of its own until cancelled, reconnecting when it is lost."""
        failures = 0
        while True:
            try:
                connection = await asyncpg.connect(
                    asyncpg_dsn(self._engine), server_settings={"application_name": LISTENER}
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                failures += 1
                self._trouble.trouble(
                    "listen",
                    "cannot listen for notifications (%s); retrying, timers stand in meanwhile",
                    type(exc).__name__,
                    exc=exc,
                )
                await asyncio.sleep(min(30.0, self._retry_seconds * failures))
                continue
            failures = 0
            try:
                await self._listen(connection)
                reason = "closed"
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                reason = type(exc).__name__
            finally:
                self.listening.clear()
                connection.terminate()  # closed already, or half open: no goodbye needed
            self._trouble.trouble(
                "listen", "the notification connection was lost (%s); reconnecting", reason
            )
            await asyncio.sleep(self._retry_seconds)

    async def _listen(self, connection: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        for channel in Channel:
            await connection.add_listener(channel.value, self._received)
        self.connections += 1
        self.listening.set()
        if self.connections == 1:
            log.info("listening for notifications on PostgreSQL")
        self._trouble.over("listen", "listening for notifications again")
        # Whatever was published while no connection listened is lost: every subscriber looks.
        for channel in Channel:
            self._local.deliver(channel, "")
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_seconds):
                    await lost.wait()
            if not lost.is_set():
                await connection.fetchval("SELECT 1", timeout=self._check_seconds)

    def _received(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        origin, _, data = payload.partition(":")
        if origin == self._origin:
            return  # published here, and delivered here then
        try:
            known = Channel(channel)
        except ValueError:
            return  # not one of ours
        self._local.deliver(known, data)
