"""1,000 tasks in flight: `python bench/run.py --only inflight`.

Starts the emulator in a process of its own with a fixed latency, so that every operation is
running upstream at the same time, and `veo-gateway serve` pointed at it with room for all of
them (in flight, submissions per minute). Creates the tasks concurrently, then polls every
unfinished task's status as clients do, sweep after sweep, and records when each one first
answers `completed`. The emulator says when each operation became done (`/_emulator/operations`),
so for every task:

    delay = first client answer `completed` - upstream done, in gateway poll intervals.

That is an upper bound: the task became visible between the previous sweep's request for it and
this one, so the window between them is reported beside it. Each unfinished task is asked for
once a second (a sweep starts a second after the one before, or when it ends if it took longer).
The gateway's own `completed_at` (when it committed the completion, visible to the next read)
gives a second, lower figure.

The emulator renders one video per output shape and serves it to every operation
(`render="once"`): it stands in for Google, whose renders run elsewhere, and must not take the
CPU the gateway is measured on. Its CPU time and the gateway's are read from /proc before and
after, so the report says what a completed task cost the gateway.

The client retries a request when the server closed the connection under it (a keep-alive
connection idle past uvicorn's 5 s is closed just as it is reused): status polls are
idempotent, and creates carry an `Idempotency-Key`, so a retry never makes a second task.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
from run import KEY, cpu_seconds, free_port, load_average, wait_up
from wire import WireClient

MODEL = "veo-3.1-fast-generate-preview"  # the default model, with its audio track
# How often each waiting client asks for its task's status.
SWEEP_SECONDS = 1.0
EMULATOR = """
import sys
from pathlib import Path

import uvicorn

from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app

port, storage, latency = int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
storage.mkdir(parents=True, exist_ok=True)
config = EmulatorConfig(latency=(latency, latency), storage_dir=storage, render="once")
uvicorn.run(
    create_emulator_app(config), host="127.0.0.1", port=port, log_level="warning",
    access_log=False,
)
"""


def start_emulator(port: int, storage: Path, latency: float) -> subprocess.Popen[bytes]:
    """The emulator alone, no quotas, every operation taking exactly `latency` seconds."""
    return subprocess.Popen([sys.executable, "-c", EMULATOR, str(port), str(storage), str(latency)])


def gateway_env(data: Path, port: int, emulator: str, *, tasks: int) -> dict[str, str]:
    """The gateway's settings: room upstream for every task at once; polling as by default."""
    return {
        **os.environ,
        "VEO_GATEWAY_DATA_DIR": str(data),
        "VEO_GATEWAY_API_KEYS": KEY,
        "VEO_GATEWAY_PORT": str(port),
        "GEMINI_API_KEY": "bench-upstream-key",
        "VEO_GATEWAY_GEMINI_BASE_URL": emulator,
        "VEO_GATEWAY_MAX_IN_FLIGHT": str(2 * tasks),
        "VEO_GATEWAY_UPSTREAM_RPM": str(100 * tasks),
        "VEO_GATEWAY_POLL_INTERVAL": "5",
        "VEO_GATEWAY_POLL_CONCURRENCY": "16",
    }


async def _create_all(client: WireClient, n: int) -> list[str]:
    run_id = os.urandom(6).hex()

    async def one(i: int) -> str:
        response = await client.request(
            "POST",
            "/v1/videos",
            {"model": MODEL, "prompt": f"inflight {i}"},
            headers={"Idempotency-Key": f"inflight-{run_id}-{i}"},
        )
        if response.status != 200:
            raise RuntimeError(f"create answered {response.status}: {response.body[:300]!r}")
        return str(response.json()["id"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


@dataclass
class Watched:
    """What the clients saw."""

    ids: list[str] = field(default_factory=list)
    create_seconds: float = 0.0
    create_cpu: float = 0.0  # the gateway's CPU seconds while the tasks were being created
    seen: dict[str, float] = field(default_factory=dict)  # first answer `completed` or failure
    final: dict[str, str] = field(default_factory=dict)  # the status then
    # Per task: from sending the last request answered "not finished" to `seen`. The task became
    # visible within this window, so it is how coarse the client's figure is.
    window: dict[str, float] = field(default_factory=dict)
    sweeps: list[float] = field(default_factory=list)
    retried: list[int] = field(default_factory=lambda: [0])  # requests sent again
    client_cpu: float = 0.0  # the clients' own CPU seconds, creates and sweeps


async def _watch(client: WireClient, watched: Watched, give_up_after: float) -> None:
    """Sweep every unfinished task until all have finished."""
    pending_sent: dict[str, float] = {}

    async def check(task_id: str) -> None:
        sent = time.time()
        response = await client.request("GET", f"/v1/videos/{task_id}")
        received = time.time()
        status = response.json()["status"]
        if status not in ("completed", "failure"):
            pending_sent[task_id] = sent
            return
        watched.seen[task_id] = received
        watched.final[task_id] = status
        watched.window[task_id] = received - pending_sent.get(task_id, sent)

    deadline = time.monotonic() + give_up_after
    while len(watched.seen) < len(watched.ids) and time.monotonic() < deadline:
        started = time.monotonic()
        await asyncio.gather(
            *(check(task_id) for task_id in watched.ids if task_id not in watched.seen)
        )
        watched.sweeps.append(time.monotonic() - started)
        # Each waiting client looks once a second (the gateway's `openai-poll-after-ms` asks
        # for 1 to 10 s), or as often as the gateway can answer when it is slower than that.
        await asyncio.sleep(max(0.0, started + SWEEP_SECONDS - time.monotonic()))


class CpuTimeline:
    """Samples a process's CPU seconds twice a second in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), cpu_seconds(self.pid)))
            time.sleep(0.5)

    def __enter__(self) -> CpuTimeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def share(self, start: float, end: float) -> float:
        """CPU seconds per second (1.0 = one core) between two moments."""
        inside = [(t, c) for t, c in self.samples if start <= t <= end]
        if len(inside) < 2:
            return float("nan")
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def busiest(self, start: float, end: float, seconds: float = 5.0) -> float:
        """The highest share over any `seconds` window between two moments."""
        inside = [(t, c) for t, c in self.samples if start <= t <= end]
        best = float("nan")
        for i, (t0, c0) in enumerate(inside):
            for t1, c1 in inside[i + 1 :]:
                if t1 - t0 >= seconds:
                    share = (c1 - c0) / (t1 - t0)
                    best = share if best != best else max(best, share)
                    break
        return best


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def run(work: Path, *, tasks: int = 1000, latency: float = 60.0) -> list[str]:
    """Run the measurement in `work` and return the report's Markdown lines."""
    emu_port, gw_port = free_port(), free_port()
    emulator_url, base = f"http://127.0.0.1:{emu_port}", f"http://127.0.0.1:{gw_port}"
    env = gateway_env(work / "data", gw_port, emulator_url, tasks=tasks)
    interval = float(env["VEO_GATEWAY_POLL_INTERVAL"])
    emulator = start_emulator(emu_port, work / "emulator", latency)
    with (work / "gateway.log").open("ab") as log:
        # The log as shipped (info, one JSON access line per request), to a file.
        gateway = subprocess.Popen(
            [sys.executable, "-m", "veo_gateway", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_up(f"{emulator_url}/_emulator/stats")
        wait_up(f"{base}/healthz")
        load_before = load_average()
        cpu_before = cpu_seconds(gateway.pid), cpu_seconds(emulator.pid)
        with CpuTimeline(gateway.pid) as gateway_cpu:
            watched = uvloop.run(_client_side(gw_port, tasks, latency, interval, gateway.pid))
        calls = _upstream_call_times(httpx.get(f"{base}/metrics", timeout=30).text)
        cpu_gateway = cpu_seconds(gateway.pid) - cpu_before[0]
        cpu_emulator = cpu_seconds(emulator.pid) - cpu_before[1]
        load_after = load_average()
        timeline = httpx.get(f"{emulator_url}/_emulator/operations", timeout=30).json()
        stats = httpx.get(f"{emulator_url}/_emulator/stats", timeout=30).json()
    finally:
        for process in (gateway, emulator):
            process.terminate()
            process.wait(timeout=30)
    done_at = {op["name"]: op["done_at"] for op in timeline}
    upstream_latency = [op["done_at"] - op["created_at"] for op in timeline if op["done_at"]]
    db = sqlite3.connect(work / "data" / "veo-gateway.db")
    rows = db.execute(
        "select id, operation_name, completed_at from tasks where id in (select value from "
        "json_each(?))",
        (json.dumps(watched.ids),),
    ).fetchall()
    db.close()
    client_delay: list[float] = []
    gateway_delay: list[float] = []
    for task_id, operation, completed in rows:
        upstream_done = done_at.get(operation)
        if task_id not in watched.seen or upstream_done is None:
            continue
        client_delay.append((watched.seen[task_id] - upstream_done) / interval)
        gateway_delay.append((completed - upstream_done) / interval)
    completed_count = sum(1 for status in watched.final.values() if status == "completed")
    window = [seconds / interval for seconds in watched.window.values()]
    done_times = [op["done_at"] for op in timeline if op["done_at"]]
    video_bytes = sorted(size for (size,) in _sizes(work, watched.ids))
    return [
        f"{tasks:,} tasks (`{MODEL}`, default duration) created concurrently in "
        f"{watched.create_seconds:.1f} s (so the upstream finished them over as long a span), "
        f"upstream latency {latency:.0f} s fixed (measured: {min(upstream_latency):.2f} to "
        f"{max(upstream_latency):.2f} s); the emulator rendered {stats.get('renders', '?')} "
        f"video(s) for them all, {video_bytes[len(video_bytes) // 2] / 1e6:.2f} MB each. "
        f"Gateway as shipped (log level info, one access line per request, to a file) but for "
        f"`VEO_GATEWAY_POLL_INTERVAL={interval:g}` (the default; jittered ±20 %), "
        f"`VEO_GATEWAY_POLL_CONCURRENCY={env['VEO_GATEWAY_POLL_CONCURRENCY']}`, "
        f"`VEO_GATEWAY_MAX_IN_FLIGHT={env['VEO_GATEWAY_MAX_IN_FLIGHT']}`, "
        f"`VEO_GATEWAY_UPSTREAM_RPM={env['VEO_GATEWAY_UPSTREAM_RPM']}`.",
        "",
        "| delay after the upstream finished, in poll intervals | p50 | p99 | max | within 2 |",
        "|---|---|---|---|---|",
        _row("first client poll answering `completed`", client_delay),
        _row("the gateway's `completed_at` (committed)", gateway_delay),
        _row("client's uncertainty: last answer not done to first done", window, target=False),
        "",
        f"- Finished: {completed_count:,} completed, "
        f"{len(watched.final) - completed_count:,} failed, "
        f"{tasks - len(watched.final):,} unfinished at the end; upstream finish times spread "
        f"over {max(done_times) - min(done_times):.1f} s.",
        f"- Client sweeps over the unfinished tasks: {len(watched.sweeps)}, longest "
        f"{max(watched.sweeps) * 1000:.0f} ms (32 requests at a time, a sweep every "
        f"{SWEEP_SECONDS:g} s at most); requests sent again "
        f"after the server closed a kept-alive connection: {watched.retried[0]}.",
        f"- CPU from the first create to the last completion seen: gateway {cpu_gateway:.1f} s, "
        f"{cpu_gateway / max(completed_count, 1) * 1000:.1f} ms per completed task (its create, "
        f"submission, polls, download and the clients' polls of it), of which the creates "
        f"(with their submissions) {watched.create_cpu / tasks * 1000:.1f} ms; the emulator "
        f"{cpu_emulator:.1f} s; the clients {watched.client_cpu:.1f} s. "
        f"Load average before {load_before}, after {load_after}.",
        f"- The gateway's CPU while the completions arrived (first upstream finish to last "
        f"completion seen): {gateway_cpu.share(min(done_times), max(watched.seen.values())):.2f} "
        f"of one core on average, "
        f"{gateway_cpu.busiest(min(done_times), max(watched.seen.values())):.2f} in the busiest "
        f"5 s.",
        f"- Upstream calls: {stats['submissions']:,} submissions, {stats['polls']:,} polls, "
        f"{stats['downloads']:,} downloads ({stats['polls'] / tasks:.1f} polls per task); "
        "their mean time as the gateway's worker saw it (its event loop's waits included): "
        + ", ".join(f"{kind} {mean * 1000:.0f} ms" for kind, (_, mean) in sorted(calls.items()))
        + ".",
    ]


def _upstream_call_times(metrics: str) -> dict[str, tuple[int, float]]:
    """Per kind of upstream call (submit, poll, download): how many, and their mean seconds as
    the gateway's worker saw them (from sending to the last byte, waits for its own event loop
    included)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for line in metrics.splitlines():
        for suffix, into in (("_sum{", sums), ("_count{", counts)):
            if line.startswith(f"veo_gateway_upstream_call_duration_seconds{suffix}"):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                value = float(line.rsplit(" ", 1)[1])
                into[kind] = into.get(kind, 0) + value  # type: ignore[assignment]
    return {kind: (int(counts[kind]), sums[kind] / max(counts[kind], 1)) for kind in counts}


def _sizes(work: Path, ids: list[str]) -> list[tuple[int]]:
    db = sqlite3.connect(work / "data" / "veo-gateway.db")
    try:
        return db.execute(
            "select coalesce(video_bytes, 0) from tasks where id in (select value from "
            "json_each(?))",
            (json.dumps(ids),),
        ).fetchall()
    finally:
        db.close()


def _row(label: str, values: list[float], *, target: bool = True) -> str:
    within = sum(1 for value in values if value <= 2)
    return (
        f"| {label} | {statistics.median(values):.2f} | {_pct(values, 99):.2f} | "
        f"{max(values):.2f} | {f'{within:,} of {len(values):,}' if target else ''} |"
    )


async def _client_side(
    port: int, tasks: int, latency: float, interval: float, gateway_pid: int
) -> Watched:
    watched = Watched()
    # 32 requests at a time: each connection carries one.
    client = WireClient("127.0.0.1", port, {"Authorization": f"Bearer {KEY}"}, size=32)
    client.retried = watched.retried
    own_cpu = time.process_time()
    try:
        started, cpu_before = time.monotonic(), cpu_seconds(gateway_pid)
        watched.ids = await _create_all(client, tasks)
        watched.create_seconds = time.monotonic() - started
        watched.create_cpu = cpu_seconds(gateway_pid) - cpu_before
        # Nothing can finish before the latency has passed: sweeping starts shortly before, so
        # that the sweeps load the gateway as waiting clients would, but not for a minute idle.
        await asyncio.sleep(max(0.0, started + latency - 2 * interval - time.monotonic()))
        await _watch(client, watched, give_up_after=latency + 20 * interval)
    finally:
        await client.close()
        watched.client_cpu = time.process_time() - own_cpu
    return watched
