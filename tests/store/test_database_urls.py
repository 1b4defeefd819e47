"""VEO_GATEWAY_DATABASE_URL's accepted forms, and a clear refusal of any other."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from veo_gateway.settings import Settings
from veo_gateway.store.database import DatabaseUrlError, create_engine, database_url


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://veo:s3cr%40t@db.internal:5432/veo", "postgresql+asyncpg"),
        ("postgres://veo:s3cr%40t@db.internal:5432/veo", "postgresql+asyncpg"),
        ("postgresql+asyncpg://veo:s3cr%40t@db.internal:5432/veo", "postgresql+asyncpg"),
        ("sqlite:////var/lib/veo/veo-gateway.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:////var/lib/veo/veo-gateway.db", "sqlite+aiosqlite"),
    ],
)
def test_each_accepted_form_is_driven_by_an_asyncio_driver(given: str, driver: str) -> None:
    url = database_url(given)
    assert url.drivername == driver
    original = sa.make_url(given)
    assert (url.username, url.password, url.host, url.port, url.database) == (
        original.username,
        original.password,
        original.host,
        original.port,
        original.database,
    )


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    url = database_url("postgresql://veo@db:5432/veo?sslmode=require")
    assert dict(url.query) == {"ssl": "require"}


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("mysql://veo:hunter2@db/veo", "mysql:// is not supported"),
        ("postgresql+psycopg2://veo:hunter2@db/veo", "postgresql+psycopg2:// is not supported"),
        ("postgresql://veo:hunter2@db:5432", "names no database"),
        ("postgresql://veo:hunter2@db/veo?sslmode=sometimes", "sslmode must be one of"),
        ("not a url", "is not a database URL"),
    ],
)
def test_an_unusable_url_is_refused_naming_the_setting_not_the_password(
    given: str, says: str
) -> None:
    with pytest.raises(DatabaseUrlError) as refused:
        database_url(given)
    message = str(refused.value)
    assert "VEO_GATEWAY_DATABASE_URL" in message and says in message
    assert "hunter2" not in message
    with pytest.raises(ValueError, match="VEO_GATEWAY_DATABASE_URL"):
        Settings(database_url=given)


def test_serve_with_an_unusable_url_stops_at_once_saying_why(tmp_path: Path) -> None:
    env = {**os.environ, "VEO_GATEWAY_DATABASE_URL": "mysql://veo:hunter2@db/veo"}
    result = subprocess.run(
        [sys.executable, "-m", "veo_gateway", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "VEO_GATEWAY_DATABASE_URL" in result.stderr and "mysql://" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.postgresql
@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
def test_each_postgresql_form_reaches_the_server(database_url: str, scheme: str) -> None:
    given = sa.make_url(database_url).set(drivername=scheme).render_as_string(hide_password=False)

    async def ask() -> str:
        engine = create_engine(given)
        try:
            async with engine.connect() as conn:
                return str(await conn.scalar(sa.text("select current_database()")))
        finally:
            await engine.dispose()

    assert asyncio.run(ask()) == sa.make_url(database_url).database
