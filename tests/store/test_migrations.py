"""The migrations build exactly the schema the code declares (store/tables.py), and step down,
on either backend; on PostgreSQL several processes may migrate one empty database at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tests.support.postgres import Database
from veo_gateway.store import database
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tables import metadata


def _differences(connection: sa.Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


def _downgrade_to_base(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(database._MIGRATIONS))
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


def test_the_migrated_schema_is_the_declared_one(database_url: str) -> None:
    async def scenario() -> tuple[list[Any], list[str]]:
        engine = create_engine(database_url)
        try:
            await migrate(engine)
            await migrate(engine)  # a second run finds nothing to do
            async with engine.connect() as conn:
                differences = await conn.run_sync(_differences)
            async with engine.begin() as conn:
                await conn.run_sync(_downgrade_to_base)
            async with engine.connect() as conn:
                left = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        finally:
            await engine.dispose()
        return differences, left

    differences, left = asyncio.run(scenario())
    assert differences == []
    assert left == ["alembic_version"]


# Each process waits for the same moment, then migrates: without the advisory lock their
# CREATE TABLEs collide (duplicate table, or a unique violation in the catalog).
_MIGRATE = """
import asyncio, sys, time
from veo_gateway.store.database import create_engine, migrate

async def main() -> None:
    engine = create_engine(sys.argv[1])
    async with engine.connect():
        pass  # connected: only the migration itself is left to race
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()

asyncio.run(main())
"""


@pytest.mark.postgresql
def test_processes_migrating_one_empty_database_at_once_all_succeed(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    start_at = str(time.time() + 4)
    logs = [tmp_path / f"migrate-{i}.log" for i in range(4)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE, database_url, start_at],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    codes = [process.wait(timeout=120) for process in processes]
    assert codes == [0] * len(processes), "\n".join(log.read_text() for log in logs)
    config = Config()
    config.set_main_option("script_location", str(database._MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert db.rows("SELECT version_num FROM alembic_version") == [{"version_num": head}]
    assert db.scalar("SELECT count(*) FROM tasks") == 0
