"""Process roles as real processes: `serve --no-worker` and `veo-gateway worker` on one SQLite
data directory, a second worker refused, and the worker's listener."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, start, stop, wait_http
from tests.worker.test_crash import FAST, HEADERS, serve_env, wait_for


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    """`veo-gateway emulator` in its own process, without faults."""
    port = free_port()
    log = tmp_path / "emulator.log"
    args = ["emulator", "--port", str(port), "--storage-dir", str(tmp_path / "emu")]
    process = start([*args, "--render", "once"], {"VEO_GATEWAY_EMULATOR_LATENCY": "0.5"}, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_emulator/stats", process, log, timeout=120)
        yield url
    finally:
        stop(process)


def distinct_ports(count: int) -> list[int]:
    """Free ports, all different (free_port alone may hand out the same one twice)."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def worker_env(tmp_path: Path, emulator_url: str, port: int) -> dict[str, str]:
    # Its own VEO_GATEWAY_PORT is not used: the worker listens on VEO_GATEWAY_WORKER_PORT.
    return {**serve_env(tmp_path, emulator_url, 1), "VEO_GATEWAY_WORKER_PORT": str(port)}


def test_an_api_only_serve_and_a_worker_share_a_sqlite_data_dir(
    tmp_path: Path, emulator_url: str
) -> None:
    api_port, worker_port, second_port = distinct_ports(3)
    api_url, worker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{worker_port}"
    api_log, worker_log, second_log = (tmp_path / f"{n}.log" for n in ("api", "worker", "second"))
    api = start(["serve", "--no-worker"], serve_env(tmp_path, emulator_url, api_port), api_log)
    worker: subprocess.Popen[bytes] | None = None
    try:
        # One after the other: two processes migrating an empty SQLite file at once can race.
        wait_http(f"{api_url}/healthz", api, api_log, timeout=120)
        worker = start(["worker"], worker_env(tmp_path, emulator_url, worker_port), worker_log)
        wait_http(f"{worker_url}/healthz", worker, worker_log, timeout=120)
        said = api_log.read_text()
        assert "API only: no worker in this process (--no-worker" in said  # the banner
        assert "this process runs the API only" in said  # the log
        assert "background work only, no public API" in worker_log.read_text()

        # The worker's listener: health, readiness, metrics, and nothing of the API.
        assert httpx.get(f"{worker_url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{worker_url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "storage": "ok", "upstreams": "ok"}
        metrics = httpx.get(f"{worker_url}/metrics")
        assert metrics.status_code == 200
        assert "veo_gateway_tasks" in metrics.text
        assert httpx.get(f"{worker_url}/v1/videos", headers=HEADERS).status_code == 404

        # A second worker on the same data directory refuses, saying why and what to do.
        second = subprocess.run(
            [sys.executable, "-m", "veo_gateway", "worker"],
            env={**os.environ, **worker_env(tmp_path, emulator_url, second_port)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        second_log.write_text(second.stdout + second.stderr)
        assert second.returncode == 1, second_log.read_text()
        (line,) = [text for text in second.stderr.splitlines() if "cannot start" in text]
        assert "another worker is running" in line
        assert f"pid {worker.pid}" in line
        assert str(tmp_path / "data" / "worker.lock") in line
        assert "PostgreSQL" in line

        # A task made through the API-only process is done by the worker process.
        created = httpx.post(
            f"{api_url}/v1/videos", headers=HEADERS, json={"model": FAST, "prompt": "split"}
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        final = wait_for(
            lambda: (
                body
                if (body := httpx.get(f"{api_url}/v1/videos/{task_id}", headers=HEADERS).json())[
                    "status"
                ]
                in ("completed", "failure")
                else None
            ),
            "the task to finish",
            timeout=120,
        )
        assert final["status"] == "completed", final
        video = httpx.get(f"{api_url}/v1/videos/{task_id}/content", headers=HEADERS)
        assert video.status_code == 200
        assert video.content[4:8] == b"ftyp"
    finally:
        if worker is not None:
            stop(worker)
        stop(api)
    assert f"task {task_id} submitted" in worker_log.read_text()
    assert f"task {task_id} submitted" not in api_log.read_text()


def test_worker_enabled_false_serves_the_api_only_and_says_so(
    tmp_path: Path, emulator_url: str
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**serve_env(tmp_path, emulator_url, port), "VEO_GATEWAY_WORKER_ENABLED": "false"}
    process = start(["serve"], env, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process, log, timeout=120)
        created = httpx.post(
            f"http://127.0.0.1:{port}/v1/videos",
            headers=HEADERS,
            json={"model": FAST, "prompt": "waits for a worker"},
        )
        assert created.status_code == 200, created.text
    finally:
        stop(process)
    said = log.read_text()
    assert "API only: no worker in this process" in said
    assert "this process runs the API only" in said
    # No worker here: the task was neither submitted inline nor by a loop.
    assert "submitted via" not in said
    # The data directory's worker lock was never taken: a worker may start on it.
    assert not (tmp_path / "data" / "worker.lock").exists()
