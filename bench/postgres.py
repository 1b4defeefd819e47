"""API replicas on PostgreSQL (`python bench/run.py --only postgres`).

Starts a PostgreSQL server of its own (initdb into a temporary directory, as the `postgres`
user when run as root, fsync on as shipped), or, with `VEO_BENCH_POSTGRES_URL` set to an admin
URL, a fresh database on that server (dropped afterwards). Then, on loopback: the bare Starlette
baseline, the emulator, and two API replicas (`veo-gateway serve` with
`VEO_GATEWAY_WORKER_ENABLED=false`) on that one database. Measured in the same run:

- status polls of one replica (wrk -t2 -c50, each request one of 100 tasks at random) against
  the bare endpoint (the same script, the same paths), in interleaved rounds, ratios per round;
- creates per second (wrk, POST /v1/videos without an image) on one replica, then on both at
  once (one wrk each, half the connections each), and the error answers among them; and, for
  comparison, on one replica on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from run import (
    FAST,
    KEY,
    create_task,
    free_port,
    load_average,
    start_baseline,
    start_emulator,
    start_gateway,
    wait_up,
    wrk,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.postgres import PrivateServer

URL_VARIABLE = "VEO_BENCH_POSTGRES_URL"

# Polls spread over many tasks, as clients poll theirs (one task polled by every connection
# would let the reader's batches read one row for all of them).
POLLED_TASKS = 100
POLL_SCRIPT = """
ids = {%s}
request = function()
  return wrk.format("GET", "%s" .. ids[math.random(#ids)])
end
"""

CREATE_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
wrk.body = '{"model": "%s", "prompt": "bench", "metadata": {"durationSeconds": 4}}'
"""


def _dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(engine URL of an empty database, where it is) for the run."""
    admin = os.environ.get(URL_VARIABLE)
    if not admin:
        server = PrivateServer(fsync=True)
        try:
            server.start()
            url = sa.make_url(server.url).set(drivername="postgresql+asyncpg")
            yield url.render_as_string(hide_password=False), "a private server (initdb, fsync on)"
        finally:
            server.close()
        return
    name = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        url = sa.make_url(admin).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False), f"a fresh database on ${URL_VARIABLE}"
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _creates(urls: list[str], seconds: int, script: Path) -> dict[str, float]:
    """Creates per second over all of `urls` at once (50 connections shared among them)."""
    connections = 50 // len(urls)
    runs = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in (f"{base}/v1/videos" for base in urls)
    ]
    outs = [run.communicate()[0] for run in runs]
    rps = errors = 0.0
    for out in outs:
        rps += float(out.split("Requests/sec:")[1].split()[0])
        if "Non-2xx or 3xx responses:" in out:
            errors += float(out.split("Non-2xx or 3xx responses:")[1].split()[0])
    return {"rps": rps, "errors": errors}


def run(seconds: int, rounds: int) -> list[str]:
    """The report's lines."""
    work = Path(tempfile.mkdtemp(prefix="veo-bench-pg-"))
    script = work / "create.lua"
    script.write_text(CREATE_SCRIPT % (KEY, FAST))
    video = work / "small.mp4"
    video.write_bytes(b"\0" * 1024)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        url, where = cleanup.enter_context(database())
        base_port, emu_port = free_port(), free_port()
        emulator_url = f"http://127.0.0.1:{emu_port}"
        processes = [start_baseline(base_port, video, work), start_emulator(emu_port, work / "emu")]
        replicas: list[str] = []
        try:
            settings = {"VEO_GATEWAY_DATABASE_URL": url, "VEO_GATEWAY_WORKER_ENABLED": "false"}
            for i in range(2):
                port = free_port()
                processes.append(
                    start_gateway(
                        port, work / f"data-{i}", emulator_url, work / f"gw-{i}.log", settings
                    )
                )
                replicas.append(f"http://127.0.0.1:{port}")
                # One at a time: the first runs the migrations on the empty database.
                wait_up(f"{replicas[-1]}/healthz", timeout=60)
            # The same API replica on SQLite (its own data directory), for the creates.
            port = free_port()
            processes.append(
                start_gateway(
                    port,
                    work / "data-sqlite",
                    emulator_url,
                    work / "gw-sqlite.log",
                    {"VEO_GATEWAY_WORKER_ENABLED": "false"},
                )
            )
            on_sqlite = f"http://127.0.0.1:{port}"
            wait_up(f"{on_sqlite}/healthz", timeout=60)
            bare = f"http://127.0.0.1:{base_port}"
            wait_up(f"{bare}/status")
            ids = [
                create_task(replicas[0], {"model": FAST, "prompt": f"bench {n}"})[0]
                for n in range(POLLED_TASKS)
            ]
            quoted = ", ".join(f'"{task_id}"' for task_id in ids)
            gateway_polls, bare_polls = work / "poll.lua", work / "bare.lua"
            gateway_polls.write_text(POLL_SCRIPT % (quoted, "/v1/videos/"))
            bare_polls.write_text(POLL_SCRIPT % (quoted, "/status/"))
            auth = {"Authorization": f"Bearer {KEY}"}
            load_before = load_average()
            bare_runs, gateway_runs = [], []
            for _ in range(rounds):
                bare_runs.append(wrk(bare, seconds, script=bare_polls))
                gateway_runs.append(wrk(replicas[0], seconds, auth, script=gateway_polls))
            one = _creates(replicas[:1], seconds, script)
            both = _creates(replicas, seconds, script)
            sqlite = _creates([on_sqlite], seconds, script)
            load_after = load_average()
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=15)
    ratios = [g["rps"] / b["rps"] for g, b in zip(gateway_runs, bare_runs, strict=True)]
    p99s = [g["p99"] / b["p99"] for g, b in zip(gateway_runs, bare_runs, strict=True)]

    def each(values: list[float], fmt: str) -> str:
        return " / ".join(format(value, fmt) for value in values)

    bare_rps = [run["rps"] for run in bare_runs]
    gw_rps = [run["rps"] for run in gateway_runs]
    return [
        f"PostgreSQL: {where}. API replicas with `VEO_GATEWAY_WORKER_ENABLED=false`, shipped "
        f"defaults otherwise. Status polls: `wrk -t2 -c50 -d{seconds}s`, {rounds} rounds (bare, "
        f"then one replica), each request one of {POLLED_TASKS} tasks at random. "
        f"Load average before {load_before}, after {load_after}.",
        "",
        "| on PostgreSQL | each round | median | ratio |",
        "|---|---|---|---|",
        f"| bare Starlette endpoint, polls/s | {each(bare_rps, ',.0f')} | "
        f"{statistics.median(bare_rps):,.0f} | 1 |",
        f"| one API replica, polls/s | {each(gw_rps, ',.0f')} | "
        f"{statistics.median(gw_rps):,.0f} | **{statistics.median(ratios):.2f}** of bare "
        f"({each(ratios, '.2f')}) |",
        f"| poll p99, ms: bare | {each([b['p99'] for b in bare_runs], '.1f')} | "
        f"{statistics.median(b['p99'] for b in bare_runs):.1f} | 1 |",
        f"| poll p99, ms: one API replica | {each([g['p99'] for g in gateway_runs], '.1f')} | "
        f"{statistics.median(g['p99'] for g in gateway_runs):.1f} | "
        f"{statistics.median(p99s):.2f} of bare |",
        f"| creates/s, one replica (wrk -t1 -c50) | | {one['rps']:,.0f} | 1 |",
        f"| creates/s, two replicas (one wrk -t1 -c25 each) | | {both['rps']:,.0f} | "
        f"**{both['rps'] / one['rps']:.2f}** of one replica |",
        f"| for comparison: creates/s, one replica on SQLite (wrk -t1 -c50) | | "
        f"{sqlite['rps']:,.0f} | {sqlite['rps'] / one['rps']:.2f} of one replica on "
        "PostgreSQL |",
        "",
        f"- Non-2xx answers: polls {sum(run['errors'] for run in gateway_runs):.0f}, creates "
        f"{one['errors'] + both['errors']:.0f}.",
    ]
