"""One-command benchmark: `python bench/run.py` (needs `wrk`: apt-get install wrk).

Starts, on loopback, a bare Starlette baseline and `veo-gateway serve` (built-in emulator, one
uvicorn worker each), then measures in the same run:

- status polls per second with p50/p99 latency (wrk -t2 -c50), gateway vs. a bare endpoint that
  returns a fixed JSON object from memory, and the emulator's counters to show zero upstream calls
  per client poll;
- create latency with no image and with a 5 MB image;
- a 200 MB video served to one slow client and to 20 clients at once: peak RSS growth of the
  server, time to first byte, throughput, gateway vs. a bare Starlette FileResponse, and status
  polls during the 20 downloads;
- 1,000 tasks in flight: how long after the upstream finishes each completion reaches clients,
  in poll intervals (bench/inflight.py);
- the scheduler's fair-order query over 200,000 finished tasks, against the query it replaced
  (bench/scheduler.py).

`--only polls,inflight,scheduler` runs some of the parts.

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


def wait_up(url: str, timeout: float = 30) -> None:
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


def wrk(url: str, seconds: int, headers: dict[str, str] | None = None) -> dict[str, float]:
    args = ["wrk", "-t2", "-c50", f"-d{seconds}s", "--latency"]
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
app = Starlette(routes=[Route("/status", status), Route("/video", video)])
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
    env = {**os.environ, "VEO_GATEWAY_EMULATOR_LATENCY": "0.5", "VEO_GATEWAY_LOG_LEVEL": "warning"}
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


def start_gateway(port: int, data: Path, emulator: str) -> subprocess.Popen[bytes]:
    # The emulator runs in a process of its own, as Google would be elsewhere: its rendering
    # must not share the gateway's interpreter while the gateway is measured.
    env = {
        **os.environ,
        "VEO_GATEWAY_DATA_DIR": str(data),
        "VEO_GATEWAY_API_KEYS": KEY,
        "VEO_GATEWAY_PORT": str(port),
        "GEMINI_API_KEY": "bench-upstream-key",
        "VEO_GATEWAY_GEMINI_BASE_URL": emulator,
        "VEO_GATEWAY_POLL_INTERVAL": "0.5",
        "VEO_GATEWAY_LOG_LEVEL": "warning",
    }
    return subprocess.Popen([sys.executable, "-m", "veo_gateway", "serve"], env=env)


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
        lines += [*_polls_and_downloads(args.seconds), ""]
    if "inflight" in parts:
        import inflight

        work = Path(tempfile.mkdtemp(prefix="veo-bench-"))
        try:
            lines += [*inflight.run(work), ""]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if "scheduler" in parts:
        import scheduler

        lines += [*scheduler.run(), ""]
    report = "\n".join(lines).rstrip()
    print(report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(report + "\n")


PARTS = ("polls", "inflight", "scheduler")


def _polls_and_downloads(seconds: int) -> list[str]:
    """Status polls, creates and downloads against the bare baseline: the report's lines."""
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="veo-bench-"))
    video = work / "big.mp4"
    with video.open("wb") as handle:
        for _ in range(VIDEO_BYTES // (1 << 20)):
            handle.write(os.urandom(1 << 20))
    base_port, gw_port, emu_port = free_port(), free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emu_port}"
    baseline = start_baseline(base_port, video, work)
    emulator = start_emulator(emu_port, work / "emulator")
    gateway = start_gateway(gw_port, work / "data", emulator_url)
    bare, base = f"http://127.0.0.1:{base_port}", f"http://127.0.0.1:{gw_port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    lines: list[str] = []
    try:
        wait_up(f"{bare}/status")
        wait_up(f"{emulator_url}/_emulator/stats")
        wait_up(f"{base}/healthz")
        task_id, _ = create_task(
            base, {"model": FAST, "prompt": "bench", "metadata": {"durationSeconds": 4}}
        )
        wait_done(base, task_id)
        # Serve a 200 MB file as this task's video (the emulator renders a few MB at most).
        db = sqlite3.connect(work / "data" / "veo-gateway.db")
        stored = Path(
            db.execute("select video_path from tasks where id = ?", (task_id,)).fetchone()[0]
        )
        db.close()
        shutil.copyfile(video, stored)

        emulator_before = _emulator_calls(emulator_url)
        bare_polls = wrk(f"{bare}/status", seconds)
        gw_polls = wrk(f"{base}/v1/videos/{task_id}", seconds, auth)
        emulator_after = _emulator_calls(emulator_url)

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
        # Let the emulator finish rendering them: the download runs must have the CPU alone.
        for created_id, _ in created + image_created:
            wait_done(base, created_id)

        content = f"{base}/v1/videos/{task_id}/content"
        slow_gw = _slow(content, auth, gateway.pid)
        slow_bare = _slow(f"{bare}/video", {}, baseline.pid)
        many_bare = parallel_downloads(f"{bare}/video", {}, baseline.pid)
        many_gw = parallel_downloads(content, auth, gateway.pid)
        polls_during = _polls_during_downloads(base, task_id, content, auth, seconds)

        lines += [
            "| measure | bare Starlette | gateway | ratio (gateway / bare) |",
            "|---|---|---|---|",
            f"| status polls/s (wrk -t2 -c50 -d{seconds}s) | {bare_polls['rps']:,.0f} | "
            f"{gw_polls['rps']:,.0f} | {gw_polls['rps'] / bare_polls['rps']:.2f} |",
            f"| poll p50 latency (ms) | {bare_polls['p50']:.2f} | {gw_polls['p50']:.2f} | "
            f"{gw_polls['p50'] / bare_polls['p50']:.2f} |",
            f"| poll p99 latency (ms) | {bare_polls['p99']:.2f} | {gw_polls['p99']:.2f} | "
            f"{gw_polls['p99'] / bare_polls['p99']:.2f} |",
            f"| 200 MB to a slow client (40 MB/s, 5 s): RSS growth (MiB) | "
            f"{slow_bare['rss_growth_mib']:.1f} | {slow_gw['rss_growth_mib']:.1f} | |",
            f"| 200 MB to 20 clients: RSS growth (MiB) | {many_bare['rss_growth_mib']:.1f} | "
            f"{many_gw['rss_growth_mib']:.1f} | |",
            f"| 200 MB to 20 clients: slowest first byte (ms) | {many_bare['ttfb_ms']:.1f} | "
            f"{many_gw['ttfb_ms']:.1f} | |",
            f"| 200 MB to 20 clients: throughput (MiB/s) | {many_bare['mib_per_s']:,.0f} | "
            f"{many_gw['mib_per_s']:,.0f} | {many_gw['mib_per_s'] / many_bare['mib_per_s']:.2f} |",
            f"| status polls/s during the 20 downloads | | {polls_during['rps']:,.0f} | "
            f"{polls_during['rps'] / gw_polls['rps']:.2f} of idle |",
            f"| poll p99 during the 20 downloads (ms) | | {polls_during['p99']:.2f} | "
            f"{polls_during['p99'] / gw_polls['p99']:.2f} of idle |",
            "",
            f"- Upstream (emulator) calls during {gw_polls['rps'] * seconds:,.0f} client "
            f"polls: {emulator_after - emulator_before} (no task was running, so the worker "
            "had nothing to poll either).",
            f"- Non-2xx answers during the gateway poll run: {gw_polls['errors']:.0f}.",
            f"- Create latency, no image (30 sequential): p50 {statistics.median(creates):.1f} ms,"
            f" max {max(creates):.1f} ms.",
            f"- Create latency, 5 MB PNG inline (10 sequential): p50 "
            f"{statistics.median(image_creates):.1f} ms, max {max(image_creates):.1f} ms.",
        ]
    finally:
        for process in (baseline, gateway, emulator):
            process.terminate()
            process.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    return lines


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
