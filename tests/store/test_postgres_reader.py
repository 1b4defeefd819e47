"""Single-task reads on PostgreSQL (the status poll's path) see every committed change, tell
owners apart, and survive their connections being cut."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest
import sqlalchemy as sa

from veo_gateway.errors import DatabaseUnavailable
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.postgres_reader import PostgresReader
from veo_gateway.store.reader import EngineReader
from veo_gateway.store.tables import tasks
from veo_gateway.store.tasks import State, TaskStore, _task_from_columns

pytestmark = pytest.mark.postgresql


@pytest.fixture
def url(database_url: str) -> str:
    return database_url


def _dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _reader_pids(other: asyncpg.Connection) -> set[int]:
    rows = await other.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'veo-gateway reads'"
    )
    return {row["pid"] for row in rows}


async def test_reads_see_every_committed_change(url: str) -> None:
    engine = create_engine(url)
    await migrate(engine)
    store = TaskStore(engine)
    assert isinstance(store._reader, PostgresReader)
    # The same database read through the async engine.
    reference = TaskStore(engine)
    reference._reader = EngineReader(engine, tasks, tasks.c.id, _task_from_columns)
    other = await asyncpg.connect(_dsn(url))
    try:
        assert await store.get("missing") is None
        # An id no row can have (PostgreSQL's text holds no NUL): not found, not an error.
        assert await store.get("video_\x00x") is None
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

        # Another connection's change is seen once committed, and not before.
        async with other.transaction():
            await other.execute("UPDATE tasks SET fail_reason = 'x' WHERE id = 't1'")
            assert await store.get("t1") is moved
        changed = await store.get("t1")
        assert changed == dataclasses.replace(moved, fail_reason="x")
        # A change to the JSON column alone builds a new object too.
        await other.execute("""UPDATE tasks SET request = '{"prompt": "a dog"}' WHERE id = 't1'""")
        dog = await store.get("t1")
        assert dog is not None and dog.request == {"prompt": "a dog"}

        # Another owner's task does not exist for them; a deleted one not for its owner.
        assert await store.get("t1", "bob") is None
        assert await store.mark_deleted("t1", "alice", "deleted by its owner") is not None
        assert await store.get("t1", "alice") is None
        assert await store.get("t1") is not None
        assert await store.delete("t1")
        assert await store.get("t1") is None
    finally:
        await other.close()
        await store.aclose()
        await engine.dispose()


async def test_a_cut_connection_is_replaced_on_the_next_read(url: str) -> None:
    engine = create_engine(url)
    await migrate(engine)
    store = TaskStore(engine)
    other = await asyncpg.connect(_dsn(url))
    try:
        await store.create(task_id="t1", owner="alice", dialect="spec", model="m", request={})
        assert await store.get("t1", "alice") is not None
        # Several idle connections, as after a busy moment.
        connections = store._reader._connections  # type: ignore[attr-defined]
        taken = [await connections.take() for _ in range(3)]
        for conn in taken:
            connections.give_back(conn)
        before = await _reader_pids(other)
        assert len(before) == 3
        # As when PostgreSQL ends a session (a restart, an administrator, a network cut).
        for pid in before:
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
        task = await store.get("t1", "alice")
        assert task is not None and task.id == "t1"
        after = await _reader_pids(other)
        assert after and not after & before
    finally:
        await other.close()
        await store.aclose()
        await engine.dispose()


async def test_an_unreachable_database_is_unavailable_not_an_error(url: str) -> None:
    # A port nothing listens on: the read says the database is away (503), and nothing else.
    dead = sa.make_url(url).set(host="127.0.0.1", port=1)
    reader = PostgresReader(dead, tasks, tasks.c.id, dict)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await reader.one("t1")
        assert caught.value.code == 503
        assert caught.value.to_dict()["error"]["status"] == "UNAVAILABLE"
    finally:
        await reader.aclose()


async def test_many_reads_at_once_share_a_few_connections(url: str) -> None:
    engine = create_engine(url)
    await migrate(engine)
    store = TaskStore(engine)
    reader = PostgresReader(engine.url, tasks, tasks.c.id, _task_from_columns, size=2)
    other = await asyncpg.connect(_dsn(url))
    try:
        for n in range(5):
            await store.create(
                task_id=f"t{n}", owner="alice", dialect="spec", model="m", request={}
            )
        read = await asyncio.gather(*(reader.one(f"t{n % 6}") for n in range(60)))
        assert [task.id if task else None for task in read] == [
            f"t{n % 6}" if n % 6 < 5 else None for n in range(60)
        ]
        assert 1 <= len(await _reader_pids(other)) <= 2
        # A read cancelled while it waits for a connection gives nothing away.
        waiting = [asyncio.ensure_future(reader.one("t0")) for _ in range(6)]
        await asyncio.sleep(0)
        waiting[-1].cancel()
        done = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(task.id == "t0" for task in done[:-1])  # type: ignore[union-attr]
        assert isinstance(done[-1], asyncio.CancelledError)
        assert (await reader.one("t1")) is not None
        assert 1 <= len(await _reader_pids(other)) <= 2
        # Reads asked for while others are under way see what was committed before they were.
        for _ in range(5):
            earlier = [asyncio.ensure_future(reader.one("t2")) for _ in range(8)]
            await asyncio.sleep(0)
            attempts = await other.fetchval(
                "UPDATE tasks SET attempts = attempts + 1 WHERE id = 't2' RETURNING attempts"
            )
            later = await reader.one("t2")
            assert later is not None and later.attempts == attempts
            await asyncio.gather(*earlier)
    finally:
        await other.close()
        await reader.aclose()
        await store.aclose()
        await engine.dispose()
