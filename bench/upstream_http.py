"""The worker's upstream client against httpx: `python bench/run.py --only upstream`.

The worker's hot path is its upstream calls: a poll of every task in flight every few seconds.
This starts the emulator in a process of its own and has one operation polled, 16 calls on the
wire at a time as the worker's default `POLL_CONCURRENCY` allows, through the gateway's own
client (`UpstreamHttp`, what the adapters use) and through a plain `httpx.AsyncClient` (the
baseline, what the adapters used before), each on uvloop as `veo-gateway serve` runs, in turn,
twice. Reported: this process's CPU per call and the wall time per call, and the ratio.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import uvloop
from run import free_port, wait_up

from veo_gateway.providers.http import UpstreamHttp

CALLS = 3000
CONCURRENCY = 16
KEY = "bench-upstream-key"
EMULATOR = """
import sys
from pathlib import Path

import uvicorn

from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app

port, storage = int(sys.argv[1]), Path(sys.argv[2])
config = EmulatorConfig(
    latency=(3600.0, 3600.0), storage_dir=storage, render="once", api_keys=frozenset({sys.argv[3]})
)
uvicorn.run(
    create_emulator_app(config), host="127.0.0.1", port=port, log_level="warning",
    access_log=False,
)
"""


async def _timed(call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call, after a warm-up."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one() for _ in range(200)))
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(one() for _ in range(CALLS)))
    return (time.process_time() - cpu) / CALLS, (time.monotonic() - wall) / CALLS


async def _httpx(url: str) -> tuple[float, float]:
    async with httpx.AsyncClient(timeout=30) as client:

        async def call() -> object:
            response = await client.get(url, headers={"x-goog-api-key": KEY})
            response.raise_for_status()
            return response.json()

        return await _timed(call)


async def _gateway(url: str) -> tuple[float, float]:
    async with UpstreamHttp(timeout=30) as client:
        return await _timed(lambda: client.call_json("GET", url, {"x-goog-api-key": KEY}))


def run(work: Path) -> list[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    emulator = subprocess.Popen(
        [sys.executable, "-c", EMULATOR, str(port), str(work / "emulator"), KEY]
    )
    try:
        wait_up(f"{base}/_emulator/stats")
        created = httpx.post(
            f"{base}/v1beta/models/veo-3.1-fast-generate-preview:predictLongRunning",
            headers={"x-goog-api-key": KEY},
            json={"instances": [{"prompt": "a poll"}]},
            timeout=30,
        ).json()
        url = f"{base}/v1beta/{created['name']}"
        results: dict[str, list[tuple[float, float]]] = {"httpx": [], "gateway": []}
        for _ in range(2):
            results["httpx"].append(uvloop.run(_httpx(url)))
            results["gateway"].append(uvloop.run(_gateway(url)))
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    bare_cpu = min(cpu for cpu, _ in results["httpx"])
    bare_wall = min(wall for _, wall in results["httpx"])
    lines = [
        f"Upstream polls: one operation polled {CALLS:,} times, {CONCURRENCY} on the wire at a "
        "time, against the emulator in a process of its own (best of two rounds each).",
        "",
        "| client | CPU per call (ms) | wall per call (ms) | CPU vs httpx |",
        "|---|---|---|---|",
    ]
    for name, label in (("httpx", "httpx.AsyncClient (baseline)"), ("gateway", "UpstreamHttp")):
        cpu = min(c for c, _ in results[name])
        wall = min(w for _, w in results[name])
        lines.append(
            f"| {label} | {cpu * 1000:.3f} | {wall * 1000:.3f} | {cpu / bare_cpu:.2f} "
            f"(wall {wall / bare_wall:.2f}) |"
        )
    return lines
