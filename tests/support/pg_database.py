"""A fresh PostgreSQL database per test, on the server named by VEO_GATEWAY_TEST_POSTGRES_URL
(an admin URL on which the tests may CREATE and DROP DATABASE), dropped when the test ends."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
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


def admin_url() -> str:
    """The admin URL of the test server; the test fails (never skips) without one."""
    url = os.environ.get(ENV)
    if not url:
        pytest.fail(
            f"this test needs a PostgreSQL server: set {ENV} to an admin URL on which tests may "
            "create and drop databases, e.g. postgresql://postgres@127.0.0.1:5432/postgres"
        )
    return url


@contextlib.asynccontextmanager
async def fresh_postgres(prefix: str = "claims") -> AsyncIterator[str]:
    """The SQLAlchemy (asyncpg) URL of a new, empty database, dropped afterwards."""
    admin = sa.engine.make_url(admin_url()).set(drivername="postgresql")
    name = f"{prefix}_{secrets.token_hex(6)}"
    server = admin.render_as_string(hide_password=False)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A new database on `backend`: a SQLite file in `tmp_path`, or a PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
        return
    async with fresh_postgres() as url:
        yield url
