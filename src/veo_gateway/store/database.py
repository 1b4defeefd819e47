"""The database: its URL's accepted forms, the engine, and schema migrations.

`VEO_GATEWAY_DATABASE_URL` takes SQLite (`sqlite:///path`, the default inside the data
directory) or PostgreSQL (`postgresql://user:pass@host:5432/db`, `postgres://...` or SQLAlchemy's
`postgresql+asyncpg://...`); both are driven by asyncio drivers (aiosqlite, asyncpg), and what
differs between them lives in `store/dialect.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from veo_gateway.errors import DatabaseUnavailable, InsufficientStorage
from veo_gateway.store.dialect import dialect_named

_MIGRATIONS = Path(__file__).parent / "migrations"
_SETTING = "VEO_GATEWAY_DATABASE_URL"
_DRIVERS = {
    ("sqlite", None): "sqlite+aiosqlite",
    ("sqlite", "aiosqlite"): "sqlite+aiosqlite",
    ("postgresql", None): "postgresql+asyncpg",
    ("postgres", None): "postgresql+asyncpg",
    ("postgresql", "asyncpg"): "postgresql+asyncpg",
}
# libpq's sslmode values are asyncpg's `ssl` values.
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class DatabaseUrlError(ValueError):
    """A database URL the gateway cannot use (the message names the setting and the forms)."""


def database_url(raw: str) -> sa.URL:
    """`raw` as the SQLAlchemy URL of its asyncio driver; DatabaseUrlError when unusable."""
    forms = (
        "use sqlite:///PATH, or postgresql://USER:PASSWORD@HOST:5432/DATABASE "
        "(also postgres:// and postgresql+asyncpg://)"
    )
    try:
        url = sa.engine.make_url(raw.strip())
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise DatabaseUrlError(f"{_SETTING} is not a database URL; {forms}") from exc
    backend, _, driver = url.drivername.partition("+")
    name = _DRIVERS.get((backend, driver or None))
    if name is None:
        raise DatabaseUrlError(f"{_SETTING}: {url.drivername}:// is not supported; {forms}")
    url = url.set(drivername=name)
    if name.startswith("postgresql"):
        if not url.database:
            raise DatabaseUrlError(f"{_SETTING} names no database (…/DATABASE at its end)")
        sslmode = url.query.get("sslmode")
        if sslmode is not None:
            if sslmode not in _SSL_MODES:
                raise DatabaseUrlError(f"{_SETTING}: sslmode must be one of {_SSL_MODES}")
            url = url.difference_update_query(["sslmode"]).update_query_dict({"ssl": sslmode})
    return url


def is_disk_full(exc: BaseException) -> bool:
    """True when the database refused a write because its disk is full."""
    if not isinstance(exc, sa.exc.DBAPIError) or exc.orig is None:
        return False
    # The error does not say which database raised it; each dialect knows its own codes.
    return any(dialect_named(name).is_disk_full(exc.orig) for name in ("sqlite", "postgresql"))


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


# A database that cannot be reached raises DatabaseUnavailable (503, the worker backs off), both
# when connecting and when a connection breaks under a statement: SQLAlchemy hands the first to
# `do_connect` and the second to `handle_error`.


def _connect(dialect: sa.Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        if dialect_named(dialect.name).is_unreachable(exc):
            raise DatabaseUnavailable() from exc
        raise


def _broken(context: sa.engine.ExceptionContext) -> None:
    if context.is_pre_ping or not isinstance(context.original_exception, Exception):
        # The pool replaces a dead connection itself; a cancelled statement (CancelledError,
        # a BaseException) stays a cancel.
        return
    dialect = dialect_named(context.dialect.name)
    if context.is_disconnect or dialect.is_unreachable(context.original_exception):
        raise DatabaseUnavailable() from context.original_exception


def create_engine(url: str | sa.URL) -> AsyncEngine:
    """An async engine for `url` (any accepted form), set up for its database."""
    parsed = database_url(url) if isinstance(url, str) else url
    engine = dialect_named(parsed.get_backend_name()).create_engine(parsed)
    sa.event.listen(engine.sync_engine, "do_connect", _connect)
    sa.event.listen(engine.sync_engine, "handle_error", _broken)
    return engine


def _upgrade(connection: sa.Connection) -> None:
    dialect_named(connection.dialect.name).lock_migrations(connection)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema up to the newest migration (one process at a time: the others wait
    for it, then find nothing to do)."""
    with disk_full_errors():
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
