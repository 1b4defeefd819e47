"""The migrations build exactly the schema the code declares (store/tables.py), and step down."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

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


def test_the_migrated_schema_is_the_declared_one(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], list[str]]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
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
