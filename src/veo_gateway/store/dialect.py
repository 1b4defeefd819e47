"""What SQLite and PostgreSQL do differently, in one place: upserts and per-key locks.

The rest of the store writes the same SQL for both and asks `dialect_of(conn)` only for these.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


class Dialect(Protocol):
    """The few statements that differ between the backends."""

    def insert(self, table: sa.Table) -> Any:
        """An INSERT that takes `.on_conflict_do_nothing()` and `.on_conflict_do_update()`."""
        ...

    async def lock(self, conn: AsyncConnection, key: str) -> None:
        """Serialise, until `conn`'s transaction ends, every transaction that locks `key`."""
        ...


class SQLiteDialect:
    """SQLite: one writer at a time, so a lock is the database's write lock."""

    def insert(self, table: sa.Table) -> Any:
        """SQLite's INSERT ... ON CONFLICT."""
        return sqlite.insert(table)

    async def lock(self, conn: AsyncConnection, key: str) -> None:
        """Take the write lock now with a write that changes nothing.

        Python's sqlite3 begins a transaction only at its first write, so the reads a
        check-then-write makes before it would see a state another process may change before
        the write lands. Writing first makes every other writer wait until this one commits.
        (Any table would do; `tasks` is in every version of the schema.)
        """
        await conn.execute(sa.text("UPDATE tasks SET id = id WHERE 0"))


class PostgresDialect:
    """PostgreSQL: transaction-scoped advisory locks, one per key."""

    def insert(self, table: sa.Table) -> Any:
        """PostgreSQL's INSERT ... ON CONFLICT."""
        return postgresql.insert(table)

    async def lock(self, conn: AsyncConnection, key: str) -> None:
        """pg_advisory_xact_lock on a 64-bit digest of `key` (held until commit or rollback)."""
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id(key))))


def lock_id(key: str) -> int:
    """A stable signed 64-bit number for `key` (PostgreSQL's advisory lock ids are bigints)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


_DIALECTS: dict[str, Dialect] = {"sqlite": SQLiteDialect(), "postgresql": PostgresDialect()}


def dialect_of(conn: AsyncConnection) -> Dialect:
    """The dialect of the database `conn` is connected to."""
    try:
        return _DIALECTS[conn.dialect.name]
    except KeyError:
        raise ValueError(f"unsupported database: {conn.dialect.name}") from None
