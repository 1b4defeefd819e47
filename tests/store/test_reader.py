"""Single-task reads on SQLite (the status poll's path) see every change, and match the engine's."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.reader import EngineReader, SqliteReader
from veo_gateway.store.tables import tasks
from veo_gateway.store.tasks import State, TaskStore, _task_from_columns


@pytest.mark.sqlite
async def test_reads_see_every_change_and_agree_with_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    store = TaskStore(engine)
    # The same database read through the async engine.
    reference = TaskStore(engine)
    reference._reader = EngineReader(engine, tasks, tasks.c.id, _task_from_columns)
    assert isinstance(store._reader, SqliteReader)
    try:
        await store.create(
            task_id="t1", owner="alice", dialect="spec", model="m", request={"prompt": "a cat"}
        )
        first = await store.get("t1", "alice")
        assert first is not None and first.state is State.QUEUED
        assert first.request == {"prompt": "a cat"}
        assert first == await reference.get("t1", "alice")
        # Unchanged row: the same object again, so a poll does not rebuild it.
        assert await store.get("t1", "alice") is first

        assert await store.update("t1", State.QUEUED, state=State.IN_PROGRESS, attempts=1)
        moved = await store.get("t1", "alice")
        assert moved is not None and moved.state is State.IN_PROGRESS and moved.attempts == 1
        assert moved == await reference.get("t1", "alice")

        # A change made by another connection (another process) is seen too.
        with sqlite3.connect(path) as other:
            other.execute("UPDATE tasks SET fail_reason = 'x' WHERE id = 't1'")
        changed = await store.get("t1")
        assert changed == dataclasses.replace(moved, fail_reason="x")

        assert await store.get("t1", "bob") is None
        assert await store.mark_deleted("t1", "alice", "deleted by its owner") is not None
        assert await store.get("t1", "alice") is None
        assert await store.get("t1") is not None
        assert await store.delete("t1")
        assert await store.get("t1") is None
        assert await store.get("missing") is None
    finally:
        await store.aclose()
        await engine.dispose()
