"""Databases for the tests that run on both backends: a SQLite file in tmp_path, or a fresh
PostgreSQL database on the server `VEO_GATEWAY_TEST_POSTGRES_URL` names (dropped afterwards).

A local stand-in until the shared backend switch lands; a test that needs PostgreSQL fails,
never skips, when the variable is unset.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

ENV = "VEO_GATEWAY_TEST_POSTGRES_URL"
# Each run takes its own backend's variant (--db, VEO_GATEWAY_TEST_DB); the other is deselected.
BACKENDS = (
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
    pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql"),
)


def _admin_url() -> sa.URL:
    admin = os.environ.get(ENV)
    if not admin:
        pytest.fail(
            f"this test needs PostgreSQL: set {ENV} to an admin URL of a server on which tests "
            "may CREATE and DROP DATABASE, e.g. postgresql://postgres@127.0.0.1:5432/postgres"
        )
    return sa.make_url(admin)


async def _admin(sql: str) -> None:
    url = _admin_url()
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_postgres(prefix: str = "limits") -> Iterator[str]:
    """A new, empty PostgreSQL database (an asyncpg URL), dropped when the block ends."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    url = _admin_url().set(drivername="postgresql+asyncpg", database=name)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database URL of `backend` ("sqlite" or "postgresql"), empty."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    else:
        with fresh_postgres() as url:
            yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend in turn."""
    with database(request.param, tmp_path) as url:
        yield url
