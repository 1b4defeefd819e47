"""One-command benchmark: `python bench/run.py` (needs `wrk`: apt-get install wrk).

Starts, on loopback, a bare Starlette baseline, the emulator (standing in for Google, one render
per output shape) and `veo-gateway serve` pointed at it, one uvicorn worker each. The gateway
runs with the shipped defaults (access log on, JSON lines to stderr, here a file): those are the
first figures. Other configurations (`VARIANTS`) run beside it for comparison. Measured in the
same run:

- status polls per second with p50/p99 latency (wrk -t2 -c50), each gateway vs. a bare endpoint
  that returns a fixed JSON object from memory, in interleaved rounds, and the emulator's
  counters to show zero upstream calls per client poll;
- create latency with no image and with a 5 MB image;
- a 200 MB video served to one slow client and to 20 clients at once: peak RSS growth of the
  server, time to first byte, throughput, gateway vs. a bare Starlette FileResponse, and status
  polls during the 20 downloads;
- 1,000 tasks in flight: how long after the upstream finishes each completion reaches clients,
  in poll intervals (bench/inflight.py);
- the worker's upstream client (`UpstreamHttp`, aiohttp) against an httpx client polling the
  emulator, 16 calls on the wire at a time: CPU and wall time per call (bench/upstream_http.py);
- the scheduler's fair-order query over 200,000 finished tasks, against the query it replaced
  (bench/scheduler.py);
- API replicas on PostgreSQL: status polls of one against the bare endpoint, creates per
  second with one and two (bench/postgres.py);
- object storage on moto's S3 server: 20 downloads of 200 MB streamed from S3 and redirected to
  it, and 200 MB streamed into it (bench/storage.py).

`--only polls,inflight,scheduler` runs some of the parts (`storage` needs moto[server], a test
dependency).

Prints a Markdown report (paste it into docs/benchmarks.md) and writes it to bench/results/.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
FAST = "veo-3.1-fast-generate-preview"
VIDEO_BYTES = 200 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRss:
    """Samples a process's RSS every 5 ms in a thread; `.growth_mib` is peak minus start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss_kib(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 1024


def wrk(
    url: str, seconds: int, headers: dict[str, str] | None = None, script: Path | None = None
) -> dict[str, float]:
    args = ["wrk", "-t2", "-c50", f"-d{seconds}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def download(url: str, headers: dict[str, str], rate: float | None = None) -> dict[str, float]:
    """GET url with curl (so the client is never the bottleneck); `rate` makes it a slow reader
    for five seconds. Returns time to first byte (ms), seconds and bytes."""
    args = [
        "curl",
        "-s",
        "-L",  # a redirect to object storage is followed (bench/storage.py)
        "-o",
        "/dev/null",
        "-w",
        "%{time_starttransfer} %{time_total} %{size_download}",
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if rate:
        args += ["--limit-rate", str(int(rate)), "--max-time", "5"]
    out = subprocess.run([*args, url], capture_output=True, text=True).stdout.split()
    return {"ttfb_ms": float(out[0]) * 1000, "seconds": float(out[1]), "bytes": float(out[2])}


def parallel_downloads(
    url: str, headers: dict[str, str], pid: int, n: int = 20
) -> dict[str, float]:
    results: list[dict[str, float]] = []
    lock = threading.Lock()

    def one() -> None:
        result = download(url, headers)
        with lock:
            results.append(result)

    with PeakRss(pid) as rss:
        started = time.perf_counter()
        threads = [threading.Thread(target=one) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    total = sum(r["bytes"] for r in results)
    return {
        "rss_growth_mib": rss.growth_mib,
        "ttfb_ms": max(r["ttfb_ms"] for r in results),
        "mib_per_s": total / elapsed / (1024 * 1024),
    }


BASELINE_APP = """
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route
import os
BODY = {"id": "video_x", "task_id": "video_x", "object": "video", "model": "m",
        "status": "in_progress", "progress": 50, "created_at": 1}
async def status(request):
    return JSONResponse(BODY)
async def video(request):
    return FileResponse(os.environ["BENCH_VIDEO"], media_type="video/mp4")
app = Starlette(
    routes=[Route("/status", status), Route("/status/{id}", status), Route("/video", video)]
)
"""


def start_baseline(port: int, video: Path, workdir: Path) -> subprocess.Popen[bytes]:
    (workdir / "bench_baseline.py").write_text(BASELINE_APP)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_baseline:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=workdir,
        env={**os.environ, "BENCH_VIDEO": str(video)},
    )


def start_emulator(port: int, storage: Path) -> subprocess.Popen[bytes]:
    # One render per output shape, served to every operation: the stand-in for Google, whose
    # renders run elsewhere, takes next to no CPU from the gateway measured beside it.
    env = {
        **os.environ,
        "VEO_GATEWAY_EMULATOR_LATENCY": "0.5",
        "VEO_GATEWAY_EMULATOR_RENDER": "once",
        "VEO_GATEWAY_LOG_LEVEL": "warning",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "veo_gateway",
            "emulator",
            "--port",
            str(port),
            "--storage-dir",
            str(storage),
        ],
        env=env,
    )


# Configurations measured beside the shipped defaults: name, settings changed.
VARIANTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("`VEO_GATEWAY_ACCESS_LOG=off`", {"VEO_GATEWAY_ACCESS_LOG": "off"}),
)


def start_gateway(
    port: int, data: Path, emulator: str, log: Path, settings: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`veo-gateway serve` with the shipped defaults, but for `settings`; its log to `log`.

    The emulator runs in a process of its own, as Google would be elsewhere: its work must not
    share the gateway's interpreter while the gateway is measured. Only what has no default is
    set (where the data goes, the port, a client key, the upstream); the log goes, as shipped,
    JSON lines to stderr, here a file, as under systemd or docker.
    """
    env = {
        **os.environ,
        "VEO_GATEWAY_DATA_DIR": str(data),
        "VEO_GATEWAY_API_KEYS": KEY,
        "VEO_GATEWAY_PORT": str(port),
        "GEMINI_API_KEY": "bench-upstream-key",
        "VEO_GATEWAY_GEMINI_BASE_URL": emulator,
        **(settings or {}),
    }
    for name in list(env):
        # A setting of the calling shell would make these something other than the defaults.
        if (
            name.startswith("VEO_GATEWAY_")
            and name not in _REQUIRED
            and name not in (settings or {})
        ):
            del env[name]
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "veo_gateway", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )


_REQUIRED = frozenset(
    {
        "VEO_GATEWAY_DATA_DIR",
        "VEO_GATEWAY_API_KEYS",
        "VEO_GATEWAY_PORT",
        "VEO_GATEWAY_GEMINI_BASE_URL",
    }
)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


# One client for every create: a new httpx client per call spends ~10 ms building its TLS
# context, which would be counted as the gateway's latency.
CLIENT = httpx.Client(timeout=60, headers={"Authorization": f"Bearer {KEY}"})


def create_task(base: str, body: dict[str, object]) -> tuple[str, float]:
    started = time.perf_counter()
    response = CLIENT.post(f"{base}/v1/videos", json=body)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return response.json()["id"], elapsed


def wait_done(base: str, task_id: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    for _ in range(3000):
        if httpx.get(f"{base}/v1/videos/{task_id}", headers=headers).json()["status"] in (
            "completed",
            "failure",
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"task {task_id} did not finish")


def five_mb_png() -> str:
    from PIL import Image

    # Random pixels do not compress: about 5 MB of PNG.
    side = 1300
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    path = Path(tempfile.mkstemp(suffix=".png")[1])
    image.save(path, format="PNG", compress_level=0)
    data = path.read_bytes()
    path.unlink()
    return base64.b64encode(data).decode()


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15, help="wrk duration per run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="status-poll rounds (bare, then each gateway)"
    )
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of: {', '.join(PARTS)} (default: all)",
    )
    args = parser.parse_args()
    parts = [part.strip() for part in args.only.split(",") if part.strip()]
    if unknown := set(parts) - set(PARTS):
        sys.exit(f"unknown parts: {', '.join(sorted(unknown))}; known: {', '.join(PARTS)}")
    lines = [
        f"Machine: {machine()}. Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
    ]
    if "polls" in parts:
        lines += [*_polls_and_downloads(args.seconds, args.rounds), ""]
    if "inflight" in parts:
        import inflight

        work = Path(tempfile.mkdtemp(prefix="veo-bench-"))
        try:
            lines += [*inflight.run(work), ""]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if "upstream" in parts:
        import upstream_http

        work = Path(tempfile.mkdtemp(prefix="veo-bench-"))
        try:
            lines += [*upstream_http.run(work), ""]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if "scheduler" in parts:
        import scheduler

        lines += [*scheduler.run(), ""]
    if "postgres" in parts:
        import postgres

        lines += [*postgres.run(args.seconds, args.rounds), ""]
    if "storage" in parts:
        import storage

        lines += [*storage.run(), ""]
    report = "\n".join(lines).rstrip()
    print(report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(report + "\n")


PARTS = ("polls", "inflight", "upstream", "scheduler", "postgres", "storage")


def _polls_and_downloads(seconds: int, rounds: int) -> list[str]:
    """Status polls, creates and downloads against the bare baseline: the report's lines."""
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="veo-bench-"))
    video = work / "big.mp4"
    with video.open("wb") as handle:
        for _ in range(VIDEO_BYTES // (1 << 20)):
            handle.write(os.urandom(1 << 20))
    base_port, emu_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emu_port}"
    baseline = start_baseline(base_port, video, work)
    emulator = start_emulator(emu_port, work / "emulator")
    # The shipped defaults first, then each variant, all started together and polled in turn.
    names = ["defaults", *(name for name, _ in VARIANTS)]
    gateways: dict[str, tuple[str, subprocess.Popen[bytes], Path]] = {}
    for i, (name, settings) in enumerate([("defaults", {}), *VARIANTS]):
        port, log = free_port(), work / f"gateway-{i}.log"
        process = start_gateway(port, work / f"data-{i}", emulator_url, log, settings)
        gateways[name] = (f"http://127.0.0.1:{port}", process, log)
    base, gateway, gateway_log = gateways["defaults"]
    bare = f"http://127.0.0.1:{base_port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    lines: list[str] = []
    try:
        wait_up(f"{bare}/status")
        wait_up(f"{emulator_url}/_emulator/stats")
        polled: dict[str, str] = {}
        for name, (url, _, _) in gateways.items():
            wait_up(f"{url}/healthz")
            polled[name], _ = create_task(
                url, {"model": FAST, "prompt": "bench", "metadata": {"durationSeconds": 4}}
            )
        for name, (url, _, _) in gateways.items():
            wait_done(url, polled[name])
        task_id = polled["defaults"]
        # Serve a 200 MB file as this task's video (the emulator renders a few MB at most).
        db = sqlite3.connect(work / "data-0" / "veo-gateway.db")
        stored = Path(
            db.execute("select video_path from tasks where id = ?", (task_id,)).fetchone()[0]
        )
        db.close()
        shutil.copyfile(video, stored)

        load_before = load_average()
        emulator_before = _emulator_calls(emulator_url)
        log_before = _line_count(gateway_log)
        cpu_polls = 0.0  # the defaults' CPU seconds during their own runs
        runs: dict[str, list[dict[str, float]]] = {"bare": [], **{name: [] for name in names}}
        for _ in range(rounds):
            runs["bare"].append(wrk(f"{bare}/status", seconds))
            for name, (url, process, _) in gateways.items():
                cpu_before = cpu_seconds(process.pid)
                runs[name].append(wrk(f"{url}/v1/videos/{polled[name]}", seconds, auth))
                if name == "defaults":
                    cpu_polls += cpu_seconds(process.pid) - cpu_before
        access_lines = _line_count(gateway_log) - log_before
        emulator_after = _emulator_calls(emulator_url)
        load_after = load_average()
        default_polls = sum(run["rps"] for run in runs["defaults"]) * seconds

        created = [
            create_task(
                base, {"model": FAST, "prompt": f"c{i}", "metadata": {"durationSeconds": 4}}
            )
            for i in range(30)
        ]
        image = five_mb_png()
        image_created = [
            create_task(
                base,
                {
                    "model": FAST,
                    "prompt": f"i{i}",
                    "images": [image],
                    "metadata": {"durationSeconds": 4},
                },
            )
            for i in range(10)
        ]
        creates = [ms for _, ms in created]
        image_creates = [ms for _, ms in image_created]
        # Let them finish: the download runs must have the CPU alone.
        for created_id, _ in created + image_created:
            wait_done(base, created_id)

        content = f"{base}/v1/videos/{task_id}/content"
        slow_gw = _slow(content, auth, gateway.pid)
        slow_bare = _slow(f"{bare}/video", {}, baseline.pid)
        many_bare = parallel_downloads(f"{bare}/video", {}, baseline.pid)
        many_gw = parallel_downloads(content, auth, gateway.pid)
        polls_during = _polls_during_downloads(base, task_id, content, auth, seconds)
        idle = _median_run(runs["defaults"])

        lines += [
            f"Status polls: `wrk -t2 -c50 -d{seconds}s`, {rounds} rounds, each round the bare "
            "endpoint and then each gateway in turn; medians of the rounds, ratios against "
            f"the bare endpoint of the same round. Load average before {load_before}, after "
            f"{load_after}.",
            "",
            "| status polls | polls/s (each round) | p50 (ms) | p99 (ms) | ratio to bare "
            "(each round) | p99 ratio |",
            "|---|---|---|---|---|---|",
            _poll_row("bare Starlette endpoint", runs["bare"], runs["bare"]),
            _poll_row("**gateway, shipped defaults**", runs["defaults"], runs["bare"]),
            *(_poll_row(f"gateway, {name}", runs[name], runs["bare"]) for name in names[1:]),
            "",
            f"- With the defaults, {access_lines:,} lines were written to the gateway's log "
            f"during its {default_polls:,.0f} polls (the access log, one JSON line each); its "
            f"CPU time during its runs: {cpu_polls / max(default_polls, 1) * 1e6:.0f} µs a "
            "poll, all threads (the log writer's included).",
            f"- Upstream (emulator) calls during all client polls: "
            f"{emulator_after - emulator_before} (no task was running, so the worker had "
            "nothing to poll either).",
            f"- Non-2xx answers during the gateway poll runs: "
            f"{sum(run['errors'] for name in names for run in runs[name]):.0f}.",
            "",
            "| downloads (gateway with the shipped defaults) | bare Starlette | gateway | "
            "ratio (gateway / bare) |",
            "|---|---|---|---|",
            f"| 200 MB to a slow client (40 MB/s, 5 s): RSS growth (MiB) | "
            f"{slow_bare['rss_growth_mib']:.1f} | {slow_gw['rss_growth_mib']:.1f} | |",
            f"| 200 MB to 20 clients: RSS growth (MiB) | {many_bare['rss_growth_mib']:.1f} | "
            f"{many_gw['rss_growth_mib']:.1f} | |",
            f"| 200 MB to 20 clients: slowest first byte (ms) | {many_bare['ttfb_ms']:.1f} | "
            f"{many_gw['ttfb_ms']:.1f} | |",
            f"| 200 MB to 20 clients: throughput (MiB/s) | {many_bare['mib_per_s']:,.0f} | "
            f"{many_gw['mib_per_s']:,.0f} | {many_gw['mib_per_s'] / many_bare['mib_per_s']:.2f} |",
            f"| status polls/s during the 20 downloads | | {polls_during['rps']:,.0f} | "
            f"{polls_during['rps'] / idle['rps']:.2f} of idle |",
            f"| poll p99 during the 20 downloads (ms) | | {polls_during['p99']:.2f} | "
            f"{polls_during['p99'] / idle['p99']:.2f} of idle |",
            "",
            f"- Create latency, no image (30 sequential): p50 {statistics.median(creates):.1f} ms,"
            f" max {max(creates):.1f} ms.",
            f"- Create latency, 5 MB PNG inline (10 sequential): p50 "
            f"{statistics.median(image_creates):.1f} ms, max {max(image_creates):.1f} ms.",
        ]
    finally:
        for process in (baseline, emulator, *(process for _, process, _ in gateways.values())):
            process.terminate()
            process.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    return lines


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _poll_row(label: str, runs: list[dict[str, float]], bare: list[dict[str, float]]) -> str:
    ratios = [run["rps"] / base["rps"] for run, base in zip(runs, bare, strict=True)]
    p99_ratios = [run["p99"] / base["p99"] for run, base in zip(runs, bare, strict=True)]
    median = _median_run(runs)
    each = " / ".join(f"{run['rps']:,.0f}" for run in runs)
    return (
        f"| {label} | {median['rps']:,.0f} ({each}) | "
        f"{median['p50']:.2f} | {median['p99']:.2f} | **{statistics.median(ratios):.2f}** "
        f"({' / '.join(f'{r:.2f}' for r in ratios)}) | {statistics.median(p99_ratios):.2f} |"
    )


def _line_count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _emulator_calls(emulator: str) -> int:
    """Every call the emulator (the upstream) has answered so far."""
    stats = httpx.get(f"{emulator}/_emulator/stats", timeout=5).json()
    return int(stats["submissions"] + stats["polls"] + stats["downloads"])


def _slow(url: str, headers: dict[str, str], pid: int) -> dict[str, float]:
    with PeakRss(pid) as rss:
        download(url, headers, rate=40 * 1024 * 1024)
    return {"rss_growth_mib": rss.growth_mib}


def _polls_during_downloads(
    base: str, task_id: str, content: str, headers: dict[str, str], seconds: int
) -> dict[str, float]:
    stop = threading.Event()

    def keep_downloading() -> None:
        while not stop.is_set():
            download(content, headers)

    threads = [threading.Thread(target=keep_downloading, daemon=True) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    try:
        return wrk(f"{base}/v1/videos/{task_id}", seconds, headers)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)


if __name__ == "__main__":
    main()
