"""A PostgreSQL server that goes away and comes back costs no task: while it is gone requests
answer 503 in the error envelope and /readyz names the database; the worker backs off, logging
once, not per attempt; once it is back every task completes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.conftest import Gateway
from tests.support.postgres import PrivateServer, fresh_database
from veo_gateway.errors import DatabaseUnavailable
from veo_gateway.store.database import create_engine

FAST = "veo-3.1-fast-generate-preview"


@pytest.mark.postgresql
def test_a_restarted_database_costs_no_task(
    private_postgres: PrivateServer,
    make_gateway: Callable[..., Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fresh_database(private_postgres.url) as url:
        # Renders take a while, so the tasks are upstream when the database goes.
        gateway = make_gateway(database_url=url, emulator_latency="3", log_level="info")
        ids = [
            gateway.create({"model": FAST, "prompt": f"through a restart {n}"}).json()["id"]
            for n in range(4)
        ]
        assert gateway.get(ids[0]).status_code == 200

        caplog.set_level(logging.WARNING, logger="veo_gateway")
        private_postgres.stop()
        try:
            status = gateway.get(ids[0])
            assert status.status_code == 503, status.text
            error = status.json()["error"]
            assert error["code"] == 503 and error["status"] == "UNAVAILABLE"
            assert "database is unreachable" in error["message"]
            assert status.headers["retry-after"].isdigit()
            created = gateway.create({"model": FAST, "prompt": "while it is away"})
            assert created.status_code == 503, created.text
            assert created.json()["error"]["status"] == "UNAVAILABLE"
            listed = gateway.client.get("/v1/videos", headers=gateway.headers())
            assert listed.status_code == 503, listed.text
            ready = gateway.client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("error: ")
            # The worker keeps trying meanwhile (its polls are due every 0.2 s).
            time.sleep(3)
        finally:
            private_postgres.start()

        finals = [gateway.wait(task_id) for task_id in ids]
        assert [body["status"] for body in finals] == ["completed"] * len(ids), finals
        for task_id in ids:
            video = gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers())
            assert video.status_code == 200 and video.content[4:8] == b"ftyp"
        assert gateway.client.get("/readyz").status_code == 200
        usage = gateway.client.get("/v1/usage", headers=gateway.headers()).json()
        assert usage["total"]["videos"] == len(ids), usage  # each charged once

    # Many failed attempts, few lines: the step's trouble is logged once, then once a minute.
    steps = [r for r in caplog.records if "worker step failed" in r.getMessage()]
    assert len(steps) == 1, [r.getMessage() for r in caplog.records]


@pytest.mark.postgresql
async def test_a_cancelled_statement_stays_a_cancel(database_url: str) -> None:
    # A cut connection becomes DatabaseUnavailable, but a cancel (a shutdown) must not: a
    # worker that caught it as an error would never stop.
    engine = create_engine(database_url)
    try:
        started = asyncio.Event()

        async def sleep() -> None:
            async with engine.connect() as conn:
                started.set()
                await conn.execute(sa.text("SELECT pg_sleep(30)"))

        job = asyncio.create_task(sleep())
        await started.wait()
        await asyncio.sleep(0.5)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    finally:
        await engine.dispose()


@pytest.mark.postgresql
async def test_a_server_that_is_not_there_is_database_unavailable(
    private_postgres: PrivateServer,
) -> None:
    private_postgres.stop()
    engine = create_engine(private_postgres.url)
    try:
        with pytest.raises(DatabaseUnavailable):
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()
