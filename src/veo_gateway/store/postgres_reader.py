"""Primary-key reads on PostgreSQL through a small asyncpg pool of their own.

The status poll's counterpart of `SqliteReader` (store/reader.py): a few connections, each
running the one select as a prepared statement (asyncpg prepares it on first use and keeps it
in the connection's statement cache), rows read as asyncpg records, with no SQLAlchemy layer
between. Connections go back to the pool without the reset asyncpg does by default (a second
round trip per read): they never run anything but this read-only select, so there is no
session state to reset.

A lost connection is dropped by the pool and a new one made on the next read; a read on a
connection that broke since its last use is tried once more on a fresh one (the select is
idempotent), so the first poll after the database comes back is answered. While the database
cannot be reached, reads raise `DatabaseUnavailable` (503).
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from veo_gateway.errors import DatabaseUnavailable
from veo_gateway.store.reader import Build, RowCache

T = TypeVar("T")

# Few: a read holds its connection for one round trip, and every replica has its own pool.
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
    return DatabaseUnavailable(
        f"the gateway's database cannot be reached ({type(exc).__name__}); try again shortly"
    )


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Hand the connection back as it is (it only ever runs the read-only select)."""


class PostgresReader(Generic[T]):
    """Runs one select with a single parameter on a pool of its own; `one(key)` is its row."""

    def __init__(
        self, url: sa.URL, query: sa.Select[Any], build: Build[T], *, size: int = POOL_SIZE
    ) -> None:
        # Compiled from the table, so columns added by a migration are read without a change
        # here; asyncpg's dialect writes the parameter as $1.
        self._sql = str(query.compile(dialect=asyncpg_dialect()))  # type: ignore[no-untyped-call]
        self._rows = RowCache(query.selected_columns.keys(), build)
        # The engine's URL, for asyncpg itself (which knows no "+asyncpg").
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def one(self, key: str) -> T | None:
        """The row whose parameter is `key`, built (or reused while the row is unchanged)."""
        pool = self._pool or await self._open()
        try:
            row = await self._fetch(pool, key)
        except TimeoutError as exc:
            raise _unavailable(exc) from exc
        except _BROKEN:
            # A connection cut since its last use fails at once; it is dropped, and the read
            # made again on a new one.
            try:
                row = await self._fetch(pool, key)
            except _UNAVAILABLE as exc:
                raise _unavailable(exc) from exc
        return self._rows.build(key, row)

    async def _fetch(self, pool: asyncpg.Pool, key: str) -> asyncpg.Record | None:
        async with pool.acquire() as conn:
            try:
                return await conn.fetchrow(self._sql, key)
            except _BROKEN:
                # Never hand a connection that failed back to the pool.
                conn.terminate()
                raise

    async def _open(self) -> asyncpg.Pool:
        # No connection is made here (min_size=0): the pool connects on the first read, and
        # again after a connection is lost, so a database that is down at start-up is no error.
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._size,
                    timeout=TIMEOUT,
                    command_timeout=TIMEOUT,
                    reset=_no_reset,
                    server_settings={
                        "application_name": "veo-gateway reads",
                        "default_transaction_read_only": "on",
                    },
                )
            return self._pool

    async def aclose(self) -> None:
        """Close the pool's connections."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._rows.clear()
