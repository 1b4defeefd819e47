"""The gateway and the emulator as real processes: a SIGKILL while a submission is on the wire,
and a second `serve` on the data directory of a running one."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.postgres import Database
from tests.support.processes import free_port, start, stop, wait_http

KEY = "crash-key"
FAST = "veo-3.1-fast-generate-preview"
HEADERS = {"Authorization": f"Bearer {KEY}"}
STALL = 3.0  # seconds the emulator holds each submission


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def finished(url: str, task_id: str, what: str, timeout: float = 30.0) -> dict[str, Any]:
    """The task's status once it is completed or failed (polled over HTTP)."""

    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(f"{url}/v1/videos/{task_id}", headers=HEADERS).json()
        return body if body["status"] in ("completed", "failure") else None

    result: dict[str, Any] = wait_for(done, what, timeout=timeout)
    return result


@pytest.fixture
def emulator_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """`veo-gateway emulator` in its own process, with the faults of the test's `faults`
    marker (none without one)."""
    marker = request.node.get_closest_marker("faults")
    faults = marker.args[0] if marker else ""
    port = free_port()
    log = tmp_path / "emulator.log"
    process = start(
        [
            "emulator",
            "--port",
            str(port),
            "--storage-dir",
            str(tmp_path / "emu"),
            "--faults",
            faults,
            "--render",
            "once",
        ],
        {"VEO_GATEWAY_EMULATOR_LATENCY": "0.5"},
        log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_emulator/stats", process, log)
        yield url
    finally:
        stop(process)


def serve_env(tmp_path: Path, emulator_url: str, port: int) -> dict[str, str]:
    return {
        "GEMINI_API_KEY": "any-upstream-key",
        "VEO_GATEWAY_GEMINI_BASE_URL": emulator_url,
        "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "VEO_GATEWAY_API_KEYS": KEY,
        "VEO_GATEWAY_POLL_INTERVAL": "0.2",
        "VEO_GATEWAY_FIRST_POLL_AFTER": "0.3",
        "VEO_GATEWAY_INLINE_SUBMIT_TIMEOUT": "0",
        "VEO_GATEWAY_PORT": str(port),
    }


# SQLite's sole worker requeues at start; on PostgreSQL the submission is taken over when its
# lease runs out (tests/worker/test_claims.py, tests/chaos).
@pytest.mark.sqlite
@pytest.mark.faults(f"submit.stall=1,stall_seconds={STALL}")
def test_sigkill_mid_submission_requeues_the_task_and_submits_it_again(
    tmp_path: Path, emulator_url: str, db: Database
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = serve_env(tmp_path, emulator_url, port)
    log = tmp_path / "gateway.log"
    stats = lambda: httpx.get(f"{emulator_url}/_emulator/stats").json()  # noqa: E731
    gateway = start(["serve"], env, log)
    try:
        wait_http(f"{url}/healthz", gateway, log)
        created = httpx.post(
            f"{url}/v1/videos", headers=HEADERS, json={"model": FAST, "prompt": "on the wire"}
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        # The emulator holds the submission: it is on the wire, unanswered.
        wait_for(lambda: stats()["faults"].get("submit.stall") == 1, "the submission to stall")
        state = db.scalar("select state from tasks where id = :id", id=task_id)
        assert state == "submitting"
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()

        gateway = start(["serve"], env, log)
        wait_http(f"{url}/healthz", gateway, log)
        final = finished(url, task_id, "the task to finish after the restart")
        assert final["status"] == "completed", final
        assert "requeued 1 interrupted submission(s)" in log.read_text()
    finally:
        stop(gateway)
    after = stats()
    # Two submissions of the one task reached the emulator: the one cut off by the kill and
    # the one made after the restart. The emulator was still holding the first (its stall
    # comes before it reads the body) when the connection died, so it never accepted it: one
    # operation, the one the task completed with. The kill after it accepted is the next test.
    assert after["faults"]["submit.stall"] == 2
    assert after["submissions"] == 1
    assert len(after["operations"]) == 1


@pytest.mark.sqlite  # the data directory's file lock; part of process roles on PostgreSQL
def test_a_second_serve_on_the_same_sqlite_data_dir_runs_no_worker_and_says_why(
    tmp_path: Path, emulator_url: str
) -> None:
    first_port, second_port = free_port(), free_port()
    log_first, log_second = tmp_path / "first.log", tmp_path / "second.log"
    first = start(["serve"], serve_env(tmp_path, emulator_url, first_port), log_first)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"http://127.0.0.1:{first_port}/healthz", first, log_first)
        second = start(["serve"], serve_env(tmp_path, emulator_url, second_port), log_second)
        wait_http(f"http://127.0.0.1:{second_port}/healthz", second, log_second)
        output = log_second.read_text()
        (line,) = [text for text in output.splitlines() if "worker.lock" in text]
        assert f"pid {first.pid}" in line
        assert "one worker per SQLite data directory" in line
        assert "PostgreSQL" in line
        # It serves the API; the first process's worker does the work of both.
        created = httpx.post(
            f"http://127.0.0.1:{second_port}/v1/videos",
            headers=HEADERS,
            json={"model": FAST, "prompt": "made through the second"},
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        wait_for(
            lambda: (
                httpx.get(
                    f"http://127.0.0.1:{second_port}/v1/videos/{task_id}", headers=HEADERS
                ).json()["status"]
                == "completed"
            ),
            "the task to complete",
        )
    finally:
        if second is not None:
            stop(second)
        stop(first)
    # Only the first process ever ran a worker: it alone logged the submission.
    assert f"task {task_id} submitted" in log_first.read_text()
    assert f"task {task_id} submitted" not in log_second.read_text()


@pytest.mark.sqlite  # holds SQLite's write lock to keep the answer from being recorded
@pytest.mark.faults("submit.stall=1,stall_seconds=1")
def test_sigkill_after_google_accepted_but_before_the_gateway_recorded_submits_twice(
    tmp_path: Path, emulator_url: str
) -> None:
    """The one double the gateway allows, made on purpose: the emulator accepts the
    submission, but the gateway cannot record the operation (the test holds the database's
    write lock) before it is killed. After the restart the task is submitted again."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = serve_env(tmp_path, emulator_url, port)
    log = tmp_path / "gateway.log"
    stats = lambda: httpx.get(f"{emulator_url}/_emulator/stats").json()  # noqa: E731
    gateway = start(["serve"], env, log)
    try:
        wait_http(f"{url}/healthz", gateway, log)
        created = httpx.post(
            f"{url}/v1/videos", headers=HEADERS, json={"model": FAST, "prompt": "accepted twice"}
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        wait_for(lambda: stats()["faults"].get("submit.stall") == 1, "the submission to stall")
        # While the emulator holds it, take the write lock: the answer cannot be recorded.
        db = sqlite3.connect(tmp_path / "data" / "veo-gateway.db", isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            wait_for(lambda: stats()["submissions"] == 1, "the emulator to accept it")
            gateway.send_signal(signal.SIGKILL)
            gateway.wait()
            (state,) = db.execute("select state from tasks where id = ?", (task_id,)).fetchone()
            assert state == "submitting"  # the operation never recorded
            db.execute("ROLLBACK")
        finally:
            db.close()

        gateway = start(["serve"], env, log)
        wait_http(f"{url}/healthz", gateway, log)
        final = finished(url, task_id, "the task to finish after the restart")
        assert final["status"] == "completed", final
    finally:
        stop(gateway)
    after = stats()
    assert after["submissions"] == 2  # the double: two operations upstream for one task
    assert len(after["operations"]) == 2
    db = sqlite3.connect(tmp_path / "data" / "veo-gateway.db")
    try:
        (operation,) = db.execute(
            "select operation_name from tasks where id = ?", (task_id,)
        ).fetchone()
        charges = db.execute("select state from usage where task_id = ?", (task_id,)).fetchall()
    finally:
        db.close()
    # The task follows the second (made after the restart); the first runs unwatched.
    assert operation.rsplit("/", 1)[-1] == list(after["operations"])[-1]
    assert charges == [("charged",)]  # and the client is charged once
