"""A fresh PostgreSQL database per test, on the server of VEO_GATEWAY_TEST_POSTGRES_URL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator

import asyncpg
import pytest
import sqlalchemy as sa

ENV = "VEO_GATEWAY_TEST_POSTGRES_URL"


def admin_url() -> str:
    """The admin URL tests may CREATE and DROP databases on; fails the test when unset."""
    url = os.environ.get(ENV)
    if not url:
        pytest.fail(
            f"this test needs PostgreSQL: set {ENV} to an admin URL of a server it may create "
            "databases on, e.g. postgresql://postgres@127.0.0.1:5432/postgres"
        )
    return url


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(admin_url())
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_database(prefix: str = "roles") -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL (asyncpg), drop it afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.engine.make_url(admin_url()).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def terminate(application_name: str, database_url: str) -> int:
    """pg_terminate_backend every session of `application_name` on the database; how many."""
    database = sa.engine.make_url(database_url).database
    connection = await asyncpg.connect(admin_url())
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = $2",
            application_name,
            database,
        )
    finally:
        await connection.close()
    return len(rows)
