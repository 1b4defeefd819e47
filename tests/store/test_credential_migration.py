"""Migration 0008 on each backend: it builds the credential tables as declared, gives the tasks
already running upstream their slots, and steps down."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from veo_gateway.store import database
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tables import metadata

CREDENTIAL_TABLES = {"credential_slots", "credential_requests", "credential_state"}


def _to(revision: str, *, down: bool = False) -> Any:
    def run(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(database._MIGRATIONS))
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    return run


def _tables(connection: sa.Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


async def test_0008_builds_the_declared_tables_keeps_running_slots_and_steps_down(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to("0007"))
            for task_id, state, upstream in [
                ("running", "in_progress", "k"),
                ("sending", "submitting", "k"),
                ("waiting", "queued", None),
                ("done", "completed", "k"),
            ]:
                await conn.execute(
                    sa.text(
                        "INSERT INTO tasks (id, owner, dialect, model, state, request, upstream, "
                        "created_at, updated_at) VALUES (:id, 'o', 'spec', 'm', :state, '{}', "
                        ":upstream, 1, 2)"
                    ),
                    {"id": task_id, "state": state, "upstream": upstream},
                )
        await migrate(engine)
        async with engine.connect() as conn:
            differences = await conn.run_sync(
                lambda c: list(compare_metadata(MigrationContext.configure(c), metadata))
            )
            slots = await conn.execute(sa.text("SELECT task_id, credential FROM credential_slots"))
            held = sorted(slots.all())
        assert differences == []
        assert held == [("running", "k"), ("sending", "k")]
        async with engine.begin() as conn:
            await conn.run_sync(_to("0007", down=True))
            assert not CREDENTIAL_TABLES & await conn.run_sync(_tables)
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) >= CREDENTIAL_TABLES
    finally:
        await engine.dispose()
