"""Primary-key reads on SQLite through a plain read-only sqlite3 connection, on the event loop.

A status poll is one primary-key read, and the hottest path of the gateway. Through the async
engine it costs several hops to aiosqlite's thread and back; on a connection of its own it
takes a few microseconds and, in WAL mode, never waits for writers (docs/benchmarks.md).

Clients poll the same rows again and again, and turning a row into its object (JSON decoding,
a dataclass of twenty-odd fields) costs more than reading it. So each row's object is kept with
the row it came from and reused while the row read back is equal to it: every read still goes
to the database, and any change to any column builds a new object.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

T = TypeVar("T")


class RowReader(Generic[T]):
    """Runs one select with a single `?` parameter; `one(key)` is its row, built, or None."""

    def __init__(
        self,
        path: str,
        query: sa.Select[Any],
        build: Callable[[dict[str, Any]], T],
        *,
        cache_size: int = 2048,
    ) -> None:
        # Compiled from the table, so columns added by a migration are read without a change here.
        self._sql = str(query.compile(dialect=sqlite.dialect()))
        self._names = tuple(query.selected_columns.keys())
        self._build = build
        self._cache: dict[Any, tuple[tuple[Any, ...], T]] = {}
        self._cache_size = cache_size
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("PRAGMA query_only=1")
        self._conn.execute("PRAGMA busy_timeout=1000")

    def one(self, key: Any) -> T | None:
        """The row whose parameter is `key`, built (or reused while the row is unchanged)."""
        row = self._conn.execute(self._sql, (key,)).fetchone()
        if row is None:
            self._cache.pop(key, None)
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == row:
            return cached[1]
        value = self._build(dict(zip(self._names, row, strict=True)))
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[key] = (row, value)
        return value

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
        self._cache.clear()
