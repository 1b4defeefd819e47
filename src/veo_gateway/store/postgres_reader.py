"""Primary-key reads on PostgreSQL through a few asyncpg connections of their own.

The status poll's counterpart of `SqliteReader` (store/reader.py): up to `POOL_SIZE`
connections, each running the one select as a prepared statement (asyncpg prepares it on first
use and keeps it in the connection's statement cache), rows read as asyncpg records, with no
SQLAlchemy layer between; reads asked for while the connections are busy go together in the
next select. The connections are handed out by `Connections`, a few lines instead
of asyncpg's `Pool`: its release runs under `asyncio.shield` (a task per read) and resets the
session, which cost three times the read itself on the benchmark machine; these connections
only ever run this read-only select, so there is nothing to reset.

A connection that fails is closed and a new one made on the next read; a read on a connection
that broke since its last use is made once more on a fresh one (the select is idempotent), so
the first poll after the database comes back is answered. While the database cannot be
reached, reads raise `DatabaseUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Generic, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from veo_gateway.errors import DatabaseUnavailable
from veo_gateway.store.reader import Build, RowCache

T = TypeVar("T")

# Few: a read holds its connection for one round trip, and every replica has its own.
POOL_SIZE = 4
# Seconds to connect, and for the select to answer, before the read is given up (503).
TIMEOUT = 5.0

# What a read raises when the server is away: refused or cut connections, its shutdown
# (class 57, operator intervention: admin_shutdown, cannot_connect_now), class 08.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)
# A connection that broke under a read can also fail in asyncpg's own state machine (a
# termination notice arriving as the next query starts) or find itself closed.
_BROKEN = (*_UNAVAILABLE, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    """The one message every read path gives while the database is away (errors.py)."""
    return DatabaseUnavailable()


class Connections:
    """Up to `size` connections to `dsn`, made when first needed; a read takes one, or waits
    for one to come back."""

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._size = size
        self._idle: list[asyncpg.Connection] = []
        self._open = 0  # connections idle, in use, or being made
        self._closing = False
        # Readers waiting for a connection: given one, or None to make their own.
        self._waiting: collections.deque[asyncio.Future[asyncpg.Connection | None]] = (
            collections.deque()
        )

    async def take(self) -> asyncpg.Connection:
        """An idle connection, a new one while fewer than `size` are open, or the next one
        given back."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._open -= 1  # closed by the server while idle (a restart)
        if self._open >= self._size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                given = await waiter
            except asyncio.CancelledError:
                # Handed a connection, or a place, just as it was cancelled: pass it on.
                if waiter.done() and not waiter.cancelled():
                    if (handed := waiter.result()) is not None:
                        self.give_back(handed)
                    else:
                        self._hand_place()
                raise
            if given is not None:
                return given
            # A connection was closed meanwhile: its place is this reader's to fill.
        self._open += 1
        try:
            return await asyncpg.connect(
                self._dsn,
                timeout=TIMEOUT,
                command_timeout=TIMEOUT,
                server_settings={
                    "application_name": "veo-gateway reads",
                    "default_transaction_read_only": "on",
                },
            )
        except BaseException:
            self._closed()
            raise

    def give_back(self, conn: asyncpg.Connection) -> None:
        """Return a connection after a read."""
        if self._closing:
            self.discard(conn)
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def discard(self, conn: asyncpg.Connection) -> None:
        """Close a connection that failed, at once, and free its place."""
        conn.terminate()
        self._closed()

    def discard_idle(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            self.discard(conn)

    def _closed(self) -> None:
        self._open -= 1
        self._hand_place()

    def _hand_place(self) -> None:
        """Let the first reader waiting make a connection of its own."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close the idle connections (a read under way closes its own when it ends)."""
        self._closing = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            try:
                await asyncio.wait_for(conn.close(), TIMEOUT)
            except _BROKEN:
                conn.terminate()


class PostgresReader(Generic[T]):
    """Reads `table`'s rows by `key` on connections of its own; `one(key)` is its row, built.

    Reads asked for while the connections are busy wait and go together, in the next select
    (`WHERE key = ANY($1)`), as a batch: under load a round trip answers many polls. A read
    joins only a select not yet sent, so every read still sees the database as it was after the
    read was asked for, never an older answer.
    """

    def __init__(
        self,
        url: sa.URL,
        table: sa.Table,
        key: sa.Column[Any],
        build: Build[T],
        *,
        size: int = POOL_SIZE,
    ) -> None:
        # Compiled from the table, so columns added by a migration are read without a change
        # here; asyncpg's dialect writes the parameter as $1.
        keys = sa.bindparam("keys", type_=postgresql.ARRAY(key.type))
        query = sa.select(table).where(key == sa.any_(keys))
        self._sql = str(query.compile(dialect=asyncpg_dialect()))  # type: ignore[no-untyped-call]
        self._key_index = list(query.selected_columns.keys()).index(key.key)
        self._rows = RowCache(query.selected_columns.keys(), build)
        # The engine's URL, for asyncpg itself (which knows no "+asyncpg").
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._connections = Connections(dsn, size)
        self._size = size
        # Reads asked for and not yet sent: key -> its waiters.
        self._pending: dict[str, list[asyncio.Future[asyncpg.Record | None]]] = {}
        self._senders: set[asyncio.Task[None]] = set()

    async def one(self, key: str) -> T | None:
        """The row whose parameter is `key`, built (or reused while the row is unchanged)."""
        waiter: asyncio.Future[asyncpg.Record | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(waiter)
        if len(self._senders) < self._size:
            # Starts on the loop's next turn, so the reads asked for until then go with it.
            sender = asyncio.create_task(self._send())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return self._rows.build(key, await waiter)

    async def _send(self) -> None:
        """Send the pending reads, batch after batch, until none is left."""
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                rows = await self._read(list(batch))
            except DatabaseUnavailable as exc:
                for waiters in batch.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(_unavailable(exc.__cause__ or exc))
                continue
            except BaseException as exc:
                for waiters in batch.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for batch_key, waiters in batch.items():
                row = rows.get(batch_key)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(row)

    async def _read(self, keys: list[str]) -> dict[str, asyncpg.Record]:
        """The rows of `keys`, by key; DatabaseUnavailable while the database is away."""
        # A key PostgreSQL's text cannot hold (a NUL character, from `%00` in a path) is no
        # row's key.
        keys = [key for key in keys if "\x00" not in key]
        if not keys:
            return {}
        try:
            return await self._fetch(keys)
        except TimeoutError as exc:
            raise _unavailable(exc) from exc
        except _BROKEN:
            # A connection cut since its last use fails at once; it is closed, and the read
            # made again on a new one. What cut it (a restart, a failover) cut the idle ones too.
            self._connections.discard_idle()
            try:
                return await self._fetch(keys)
            except _BROKEN as exc:
                raise _unavailable(exc) from exc

    async def _fetch(self, keys: list[str]) -> dict[str, asyncpg.Record]:
        conn = await self._connections.take()
        try:
            rows = await conn.fetch(self._sql, keys)
        except BaseException:
            # Never hand back a connection that failed, or was left mid-read by a cancel.
            self._connections.discard(conn)
            raise
        self._connections.give_back(conn)
        return {row[self._key_index]: row for row in rows}

    async def aclose(self) -> None:
        """Close the connections."""
        for sender in list(self._senders):
            sender.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        await self._connections.aclose()
        self._rows.clear()
