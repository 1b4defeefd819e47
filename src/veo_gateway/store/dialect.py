"""What differs between SQLite and PostgreSQL, in one place.

The rest of `store/` is SQL both databases run the same way, written once with SQLAlchemy Core.
Only what cannot be said the same way lives here, behind `Dialect`: how an engine is made, the
insert that skips a row already there, how "disk full" and "unreachable" look, the lock around
migrations, per-key locks (credential slots, client-key limits), the status poll's fast reader
and the notifier. `dialect_of(engine)` gives the one in use; no
other module asks which database it has.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from veo_gateway.store.notifier import LocalNotifier, Notifier
from veo_gateway.store.reader import Build, EngineReader, Reader, SqliteReader

T = TypeVar("T")


class Dialect(Protocol):
    """One database's ways where SQLite and PostgreSQL differ."""

    name: str
    # Queue this process's writers in front of the database (SQLite has one writer at a time).
    serial_writes: bool
    # One worker process per database (SQLite: the data directory's lock), or any number.
    single_worker: bool

    def create_engine(self, url: sa.URL) -> AsyncEngine:
        """An async engine on `url`, set up for this database."""
        ...

    def insert_ignore(self, table: sa.Table) -> Any:
        """INSERT into `table` that skips (rowcount 0) a row whose key is already there."""
        ...

    def insert(self, table: sa.Table) -> Any:
        """An INSERT that takes `.on_conflict_do_nothing()` and `.on_conflict_do_update()`."""
        ...

    async def lock(self, conn: AsyncConnection, key: str) -> None:
        """Serialise, until `conn`'s transaction ends, every transaction that locks `key`."""
        ...

    def claimable(self, query: sa.Select[tuple[str]]) -> sa.Select[tuple[str]]:
        """`query` (rows to claim) made to lock the rows it returns for this transaction,
        passing over rows another transaction holds."""
        ...

    def is_disk_full(self, error: BaseException) -> bool:
        """True when the driver's `error` says the database's disk is full."""
        ...

    def is_unreachable(self, error: BaseException) -> bool:
        """True when `error` says the database server cannot be reached (down, restarting)."""
        ...

    def lock_migrations(self, connection: sa.Connection) -> None:
        """Hold off other processes' migrations until `connection`'s transaction ends."""
        ...

    def reader(
        self, engine: AsyncEngine, table: sa.Table, key: sa.Column[Any], build: Build[T]
    ) -> Reader[T]:
        """The status poll's reader of `table`'s rows by `key`: this database's leanest path."""
        ...

    def notifier(self, engine: AsyncEngine) -> Notifier:
        """Wake-ups and revocations for the processes on this database (store/notifier.py)."""
        ...


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets status reads run while the worker writes; NORMAL sync is durable in WAL mode
    # across process crashes (only an OS crash can lose the last commits).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _file_of(url: sa.URL) -> str | None:
    return url.database if url.database not in (None, "", ":memory:") else None


class SQLite:
    """A SQLite file in WAL mode, read on the event loop by a direct sqlite3 connection."""

    name = "sqlite"
    serial_writes = True
    single_worker = True

    def create_engine(self, url: sa.URL) -> AsyncEngine:
        """The engine, with the file's directory created and WAL turned on."""
        if (path := _file_of(url)) is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=5, max_overflow=10)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine

    def insert_ignore(self, table: sa.Table) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING."""
        return sqlite.insert(table).on_conflict_do_nothing()

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

    def claimable(self, query: sa.Select[tuple[str]]) -> sa.Select[tuple[str]]:
        """`query` itself: writers queue for the database's one write lock (and for the store's
        own lock in this process), so no row is ever locked by another writer while we read."""
        return query

    def is_disk_full(self, error: BaseException) -> bool:
        """SQLITE_FULL (in its extended forms too)."""
        code = getattr(error, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == sqlite3.SQLITE_FULL

    def is_unreachable(self, error: BaseException) -> bool:
        """Never: the file is opened in this process."""
        return False

    def lock_migrations(self, connection: sa.Connection) -> None:
        """Nothing: a SQLite file has one worker process (the data directory's lock)."""

    def reader(
        self, engine: AsyncEngine, table: sa.Table, key: sa.Column[Any], build: Build[T]
    ) -> Reader[T]:
        """A plain read-only sqlite3 connection on the file; an in-memory database, which only
        the engine's own connection sees, is read through the engine."""
        path = _file_of(engine.url)
        if path is None:
            return EngineReader(engine, table, key, build)
        return SqliteReader(path, table, key, build)

    def notifier(self, engine: AsyncEngine) -> Notifier:
        """This process's subscribers only: one process works on a SQLite file."""
        return LocalNotifier()


# Taken around migrations (pg_advisory_xact_lock): any 64-bit number no other code uses.
_MIGRATION_LOCK = 0x7665_6F5F_6D69_6772  # "veo_migr"
_PG_DISK_FULL = "53100"  # SQLSTATE disk_full
# SQLSTATEs of a server that is going away or not back yet: admin_shutdown, crash_shutdown,
# cannot_connect_now, and class 08 (connection exceptions).
_PG_UNREACHABLE = ("57P01", "57P02", "57P03")


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of an asyncpg error (SQLAlchemy's adaptation of it carries it too)."""
    code = getattr(error, "sqlstate", None)
    return None if code is None else str(code)


class PostgreSQL:
    """A PostgreSQL server through asyncpg, shared by any number of processes."""

    name = "postgresql"
    serial_writes = False
    single_worker = False

    def create_engine(self, url: sa.URL) -> AsyncEngine:
        """A pooled engine that checks each connection before use (a restarted server leaves
        dead ones in the pool) and gives up connecting after 10 s instead of asyncpg's 60."""
        return create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_timeout=30,
            # Below the idle timeouts of common proxies and load balancers.
            pool_recycle=1800,
            connect_args={"timeout": 10},
        )

    def insert_ignore(self, table: sa.Table) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING."""
        return postgresql.insert(table).on_conflict_do_nothing()

    def insert(self, table: sa.Table) -> Any:
        """PostgreSQL's INSERT ... ON CONFLICT."""
        return postgresql.insert(table)

    async def lock(self, conn: AsyncConnection, key: str) -> None:
        """pg_advisory_xact_lock on a 64-bit digest of `key` (held until commit or rollback)."""
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id(key))))

    def claimable(self, query: sa.Select[tuple[str]]) -> sa.Select[tuple[str]]:
        """FOR UPDATE SKIP LOCKED: workers claiming at once take disjoint rows instead of
        queueing on the same first ones (the compare-and-swap still guards every row)."""
        return query.with_for_update(skip_locked=True)

    def is_disk_full(self, error: BaseException) -> bool:
        """SQLSTATE 53100 (disk_full)."""
        return _PG_DISK_FULL in (_sqlstate(error), _sqlstate(error.__cause__ or error))

    def is_unreachable(self, error: BaseException) -> bool:
        """A refused, timed out or cut connection, or a server shutting down or starting up."""
        found: BaseException | None = error
        while found is not None:
            if isinstance(found, OSError | TimeoutError):
                return True
            code = _sqlstate(found)
            if code is not None and (code in _PG_UNREACHABLE or code.startswith("08")):
                return True
            if type(found).__name__ == "ConnectionDoesNotExistError":
                return True
            found = found.__cause__
        return False

    def lock_migrations(self, connection: sa.Connection) -> None:
        """pg_advisory_xact_lock: released when the migration's transaction ends, so the
        processes that waited find the schema at head and have nothing to do."""
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))

    def reader(
        self, engine: AsyncEngine, table: sa.Table, key: sa.Column[Any], build: Build[T]
    ) -> Reader[T]:
        """A few asyncpg connections of its own running one prepared select
        (store/postgres_reader.py)."""
        from veo_gateway.store.postgres_reader import PostgresReader

        return PostgresReader(engine.url, table, key, build)

    def notifier(self, engine: AsyncEngine) -> Notifier:
        """LISTEN/NOTIFY on a connection of its own (store/pg_notifier.py)."""
        from veo_gateway.store.pg_notifier import PostgresNotifier

        return PostgresNotifier(engine)


def lock_id(key: str) -> int:
    """A stable signed 64-bit number for `key` (PostgreSQL's advisory lock ids are bigints)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


_DIALECTS: dict[str, Dialect] = {"sqlite": SQLite(), "postgresql": PostgreSQL()}


def dialect_named(name: str) -> Dialect:
    """The Dialect of a SQLAlchemy backend name ("sqlite", "postgresql")."""
    return _DIALECTS[name]


def dialect_of(bind: AsyncEngine | AsyncConnection) -> Dialect:
    """The Dialect of an engine or connection."""
    try:
        return _DIALECTS[bind.dialect.name]
    except KeyError:
        raise ValueError(f"unsupported database: {bind.dialect.name}") from None
