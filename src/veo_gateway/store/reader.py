"""Primary-key reads, the status poll's path: one small protocol, one reader per database.

A status poll is one primary-key read, and the hottest path of the gateway. Through the async
engine it costs a checkout from SQLAlchemy's pool, its events and its result machinery (and, on
SQLite, several hops to aiosqlite's thread and back); each database gets a leaner path of its
own behind `Reader`: on SQLite a plain read-only sqlite3 connection on the event loop
(`SqliteReader`, a few microseconds, never waiting for writers in WAL mode), on PostgreSQL a
few asyncpg connections of its own running one prepared statement (store/postgres_reader.py).
The store's `Dialect` (store/dialect.py) picks one, once; nothing else asks which database it reads.

Clients poll the same rows again and again, and turning a row into its object (JSON decoding,
a dataclass of twenty-odd fields) costs more than reading it. So each row's object is kept with
the row it came from (`RowCache`) and reused while the row read back is equal to it: every read
still goes to the database, and any change to any column builds a new object.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# Builds an object from a row's raw columns, by name (JSON columns still text).
Build = Callable[[dict[str, Any]], T]


class Reader(Protocol[T_co]):
    """Reads one row by its key and builds it; the one interface every database's reader has."""

    async def one(self, key: str) -> T_co | None:
        """The row whose key is `key`, built, or None when there is none."""
        ...

    async def aclose(self) -> None:
        """Release the reader's connections."""
        ...


class RowCache(Generic[T]):
    """Each key's object with the row it was built from, reused while the row is unchanged.

    It never answers without a row: the caller reads the row first and `build`s from it, so an
    object handed out is always the one of the row just read.
    """

    def __init__(self, names: Sequence[str], build: Build[T], *, size: int = 2048) -> None:
        self._names = tuple(names)
        self._build = build
        self._size = size
        self._cache: dict[str, tuple[Sequence[Any], T]] = {}

    def build(self, key: str, row: Sequence[Any] | None) -> T | None:
        """The object of `row` (read just now for `key`), reused when the row is unchanged."""
        if row is None:
            self._cache.pop(key, None)
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == row:
            return cached[1]
        value = self._build(dict(zip(self._names, row, strict=True)))
        if len(self._cache) >= self._size:
            self._cache.clear()
        self._cache[key] = (row, value)
        return value

    def clear(self) -> None:
        """Forget every object."""
        self._cache.clear()


def by_key(table: sa.Table, key: sa.Column[Any]) -> sa.Select[Any]:
    """The select of `table`'s row whose `key` is the parameter `key`."""
    return sa.select(table).where(key == sa.bindparam("key"))


class SqliteReader(Generic[T]):
    """Reads `table`'s rows by `key` on a read-only sqlite3 connection of its own."""

    def __init__(self, path: str, table: sa.Table, key: sa.Column[Any], build: Build[T]) -> None:
        # Compiled from the table, so columns added by a migration are read without a change here.
        query = by_key(table, key)
        self._sql = str(query.compile(dialect=sqlite.dialect()))
        self._rows = RowCache(query.selected_columns.keys(), build)
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("PRAGMA query_only=1")
        self._conn.execute("PRAGMA busy_timeout=1000")

    async def one(self, key: str) -> T | None:
        """The row whose parameter is `key`, built (or reused while the row is unchanged)."""
        # Synchronous underneath: a read of a few microseconds costs less than any hand-over.
        return self._rows.build(key, self._conn.execute(self._sql, (key,)).fetchone())

    async def aclose(self) -> None:
        """Close the connection."""
        self._conn.close()
        self._rows.clear()


class EngineReader(Generic[T]):
    """Reads through the async engine: for a database no leaner reader is written for (an
    in-memory SQLite database, which only the engine's own connection can see)."""

    def __init__(
        self, engine: AsyncEngine, table: sa.Table, key: sa.Column[Any], build: Build[T]
    ) -> None:
        query = by_key(table, key)
        self._engine = engine
        # JSON columns read as the text they are stored as, which is what `build` takes.
        self._query = query.with_only_columns(
            *(
                sa.cast(column, sa.Text).label(column.key)
                if isinstance(column.type, sa.JSON)
                else column
                for column in query.selected_columns
            )
        )
        self._build = build

    async def one(self, key: str) -> T | None:
        """The row whose parameter is `key`, built."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(self._query, {"key": key})).mappings().first()
        return None if row is None else self._build(dict(row))

    async def aclose(self) -> None:
        """Nothing to close: the engine is disposed by its owner."""
