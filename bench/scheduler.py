"""The scheduler's fair-order query over a large history: `python bench/run.py --only scheduler`.

Builds a real SQLite file through the real migrations, fills it with plain sqlite3 (finished
tasks spread over 30 days and many owners, a few running, a few queued), then times rounds of
`TaskStore.due_queued(50)`, the query the worker runs on every scheduling round. As a baseline
in the same run, the query it replaced (before migration 0007) runs on the same file.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tables import tasks
from veo_gateway.store.tasks import State, TaskStore

MODEL = "veo-3.1-fast-generate-preview"


def fill(path: Path, *, finished: int, owners: int, running: int, queued: int) -> None:
    """Insert the history with plain sqlite3: `finished` done tasks over 30 days, then
    `running` in progress and `queued` waiting, spread over `owners` owners."""
    rng = random.Random(7)
    now = time.time()
    request = json.dumps({"model": MODEL, "prompt": "bench"})
    columns = (
        "id, owner, dialect, model, state, request, attempts, created_at, submitted_at, "
        "completed_at, updated_at, due_at, lease_until"
    )

    def row(i: int, state: State, created: float) -> tuple[Any, ...]:
        submitted = None if state is State.QUEUED else created + 1
        done = created + 60 if state in (State.COMPLETED, State.FAILED) else None
        return (
            f"task_{i:07d}",
            f"owner-{rng.randrange(owners):02d}",
            "openai",
            MODEL,
            state.value,
            request,
            0,
            created,
            submitted,
            done,
            done or created,
            0.0,
            0.0,
        )

    rows = [
        row(
            i,
            State.COMPLETED if rng.random() < 0.95 else State.FAILED,
            now - 30 * 86400 + i * (30 * 86400 / finished),
        )
        for i in range(finished)
    ]
    rows += [row(finished + i, State.IN_PROGRESS, now - 30) for i in range(running)]
    rows += [row(finished + running + i, State.QUEUED, now - 10 + i) for i in range(queued)]
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            f"insert into tasks ({columns}) values ({', '.join('?' * 13)})",
            rows,
        )
    db.close()


def previous_query(now: float, limit: int) -> sa.Select[Any]:
    """The fair-order query before migration 0007 (commit 1f6b666's parent): a grouping over
    every task submitted in the last hour or in flight, joined to the waiting tasks."""
    rank = (
        sa.func.row_number()
        .over(partition_by=tasks.c.owner, order_by=(tasks.c.created_at, tasks.c.id))
        .label("rank")
    )
    ranked = (
        sa.select(tasks.c.id, tasks.c.owner, tasks.c.created_at, rank)
        .where(
            tasks.c.state == State.QUEUED.value,
            tasks.c.due_at <= now,
            tasks.c.lease_until <= now,
        )
        .subquery()
    )
    in_flight = tasks.c.state.in_([State.SUBMITTING.value, State.IN_PROGRESS.value])
    served = (
        sa.select(
            tasks.c.owner,
            sa.func.count().filter(in_flight).label("running"),
            sa.func.max(tasks.c.submitted_at).label("last_served"),
        )
        .where(sa.or_(in_flight, tasks.c.submitted_at > now - 3600))
        .group_by(tasks.c.owner)
        .subquery()
    )
    turn = ranked.c.rank + sa.func.coalesce(served.c.running, 0)
    return (
        tasks.select()
        .join(ranked, ranked.c.id == tasks.c.id)
        .outerjoin(served, served.c.owner == ranked.c.owner)
        .order_by(
            turn,
            sa.nulls_first(served.c.last_served.asc()),
            ranked.c.created_at,
            ranked.c.id,
        )
        .limit(limit)
    )


async def _measure(
    path: Path, rounds: int, baseline_rounds: int
) -> tuple[list[float], list[float], int]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    store = TaskStore(engine)
    try:
        await migrate(engine)  # already at head: a no-op, as at every start
        await store.due_queued(50)  # warm the connection and SQLite's page cache
        current: list[float] = []
        for _ in range(rounds):
            started = time.perf_counter()
            picked = await store.due_queued(50)
            current.append((time.perf_counter() - started) * 1000)
        previous: list[float] = []
        for _ in range(baseline_rounds):
            started = time.perf_counter()
            async with engine.connect() as conn:
                rows = (await conn.execute(previous_query(time.time(), 50))).all()
            previous.append((time.perf_counter() - started) * 1000)
        if [row.id for row in rows] != [task.id for task in picked]:
            raise RuntimeError("the previous and current queries picked different tasks")
        return current, previous, len(picked)
    finally:
        await engine.dispose()


async def _migrated(path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def run(
    *,
    finished: int = 200_000,
    owners: int = 50,
    running: int = 20,
    queued: int = 30,
    rounds: int = 200,
    baseline_rounds: int = 10,
) -> list[str]:
    """Build the database, time the rounds, and return the report's Markdown lines."""
    with tempfile.TemporaryDirectory(prefix="veo-bench-scheduler-") as tmp:
        path = Path(tmp) / "veo-gateway.db"
        asyncio.run(_migrated(path))
        started = time.perf_counter()
        fill(path, finished=finished, owners=owners, running=running, queued=queued)
        fill_seconds = time.perf_counter() - started
        size_mib = path.stat().st_size / (1024 * 1024)
        current, previous, picked = asyncio.run(_measure(path, rounds, baseline_rounds))
    now_p50, before_p50 = statistics.median(current), statistics.median(previous)
    return [
        f"Fair-order query (`TaskStore.due_queued(50)`), SQLite through the real migrations: "
        f"{finished:,} finished tasks over {owners} owners and 30 days, {running} in progress, "
        f"{queued} queued ({size_mib:.0f} MiB, filled in {fill_seconds:.1f} s); "
        f"{picked} tasks picked per round, the same by both queries.",
        "",
        "| query | rounds | p50 (ms) | p99 (ms) | max (ms) |",
        "|---|---|---|---|---|",
        f"| before migration 0007 (baseline, same file) | {len(previous)} | {before_p50:.1f} | "
        f"{_pct(previous, 99):.1f} | {max(previous):.1f} |",
        f"| now (`due_queued`) | {len(current)} | {now_p50:.2f} | {_pct(current, 99):.2f} | "
        f"{max(current):.2f} |",
        "",
        f"- Ratio now / before (p50): {now_p50 / before_p50:.4f} "
        f"({before_p50 / now_p50:,.0f} times faster).",
    ]


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    print("\n".join(run()))
