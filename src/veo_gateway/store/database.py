"""The database engine: creation (SQLite in WAL mode by default) and schema migrations."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from veo_gateway.errors import InsufficientStorage

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_DISK_FULL = "53100"  # PostgreSQL's SQLSTATE disk_full


def is_disk_full(exc: BaseException) -> bool:
    """True when the database refused a write because its disk is full."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == sqlite3.SQLITE_FULL)
    return _PG_DISK_FULL in (getattr(orig, "sqlstate", None), getattr(orig, "pgcode", None))


@contextlib.contextmanager
def disk_full_errors() -> Iterator[None]:
    """Turn the database's "disk is full" into InsufficientStorage (507, not a 500)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if is_disk_full(exc):
            raise InsufficientStorage(
                "the gateway's database is out of storage space and cannot record new work "
                "now; try again later"
            ) from exc
        raise


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets status reads run while the worker writes; NORMAL sync is durable in WAL mode
    # across process crashes (only an OS crash can lose the last commits).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; SQLite files get their directory created and WAL turned on."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=5, max_overflow=10)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema up to the newest migration."""
    with disk_full_errors():
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
