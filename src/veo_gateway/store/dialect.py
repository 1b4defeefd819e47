"""What differs between the two databases, in one place: each backend's small `Dialect`.

The shared SQL lives in the stores; a store asks its dialect only for what SQLite and
PostgreSQL do differently, and never which of them it has.
"""

from __future__ import annotations

from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


class Dialect(Protocol):
    """The database-specific parts of the store."""

    name: str
    # True when the database admits one worker at a time (SQLite, under the worker lock): a
    # starting worker then knows every lease it finds was left by a process that is gone.
    single_worker: bool

    def claimable(self, query: sa.Select[tuple[str]]) -> sa.Select[tuple[str]]:
        """`query` (rows to claim) made to lock the rows it returns for this transaction,
        passing over rows another transaction holds."""
        ...


class SQLiteDialect:
    """SQLite: one writer at a time, so a claim's compare-and-swap alone decides."""

    name = "sqlite"
    single_worker = True

    def claimable(self, query: sa.Select[tuple[str]]) -> sa.Select[tuple[str]]:
        # Writers queue for the database's one write lock (and for the store's own lock in
        # this process), so no row is ever locked by another writer while we read.
        return query


class PostgresDialect:
    """PostgreSQL: many workers; a claim passes over rows another worker is claiming."""

    name = "postgresql"
    single_worker = False

    def claimable(self, query: sa.Select[tuple[str]]) -> sa.Select[tuple[str]]:
        # FOR UPDATE SKIP LOCKED: workers claiming at once take disjoint rows instead of
        # queueing on the same first ones (the compare-and-swap still guards every row).
        return query.with_for_update(skip_locked=True)


def dialect_of(engine: AsyncEngine) -> Dialect:
    """The dialect of the engine's database."""
    if engine.url.get_backend_name() == "postgresql":
        return PostgresDialect()
    return SQLiteDialect()
