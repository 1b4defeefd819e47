"""SIGKILL the gateway with tasks queued and running: after a restart every task finishes, the
emulator (a separate process) has seen each submitted exactly once, and each task's usage
reservation was settled exactly once (charged when delivered, released when not)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.support.postgres import Database
from tests.support.processes import free_port, start, stop, wait_http

KEY = "restart-key"
FAST = "veo-3.1-fast-generate-preview"


def ledger(db: Database) -> list[tuple[str, str]]:
    """(task id, state) of every usage entry, read from the gateway's database."""
    rows = db.rows("select task_id, state from usage order by task_id")
    return [(row["task_id"], row["state"]) for row in rows]


def test_sigkill_loses_nothing_and_submits_nothing_twice(tmp_path: Path, db: Database) -> None:
    emulator_port, gateway_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    # One render per shape: the emulator is not the process killed, and its pictures are not
    # what this test looks at.
    emulator = start(
        [
            "emulator",
            "--port",
            str(emulator_port),
            "--storage-dir",
            str(tmp_path / "emu"),
            "--render",
            "once",
        ],
        {"VEO_GATEWAY_EMULATOR_LATENCY": "2"},
        tmp_path / "emulator.log",
    )
    env = {
        "GEMINI_API_KEY": "any-upstream-key",
        "VEO_GATEWAY_GEMINI_BASE_URL": emulator_url,
        "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "VEO_GATEWAY_API_KEYS": KEY,
        "VEO_GATEWAY_MAX_IN_FLIGHT": "2",
        "VEO_GATEWAY_POLL_INTERVAL": "0.3",
        "VEO_GATEWAY_PORT": str(gateway_port),
    }
    headers = {"Authorization": f"Bearer {KEY}"}
    gateway = start(["serve"], env, tmp_path / "gateway.log")
    try:
        wait_http(f"{emulator_url}/_emulator/stats", emulator, tmp_path / "emulator.log")
        wait_http(f"{gateway_url}/healthz", gateway, tmp_path / "gateway.log")
        ids = [
            httpx.post(
                f"{gateway_url}/v1/videos",
                headers=headers,
                timeout=30,
                json={"model": FAST, "prompt": prompt, "metadata": {"durationSeconds": 4}},
            ).json()["id"]
            # The last one fails upstream, so its reservation must be released, not charged.
            for prompt in [*(f"task {i}" for i in range(5)), "task 5 [emulator:fail]"]
        ]
        # Wait for the moment two run upstream and four wait: then no submission is under way.
        deadline = time.monotonic() + 30
        while True:
            states = [
                httpx.get(f"{gateway_url}/v1/videos/{i}", headers=headers).json()["status"]
                for i in ids
            ]
            if states.count("in_progress") == 2 and states.count("") == 4:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.05)
        assert ledger(db) == sorted((i, "reserved") for i in ids)
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()

        gateway = start(["serve"], env, tmp_path / "gateway.log")
        wait_http(f"{gateway_url}/healthz", gateway, tmp_path / "gateway.log")
        deadline = time.monotonic() + 120
        while True:
            bodies = [
                httpx.get(f"{gateway_url}/v1/videos/{i}", headers=headers).json() for i in ids
            ]
            if [b["status"] for b in bodies] == ["completed"] * 5 + ["failure"]:
                break
            assert not any(b["status"] == "failure" for b in bodies[:5]), bodies
            assert time.monotonic() < deadline, bodies
            time.sleep(0.2)
        stats = httpx.get(f"{emulator_url}/_emulator/stats").json()
        assert stats["submissions"] == 6
        # One entry per task, each settled once: five charged, the failed one released.
        assert ledger(db) == sorted([(i, "charged") for i in ids[:5]] + [(ids[5], "released")])
        usage = httpx.get(f"{gateway_url}/v1/usage", headers=headers).json()
        assert usage["total"] == {"videos": 5, "seconds": 20, "cost_usd": 2.0}
        assert usage["reserved"]["videos"] == 0
        for task_id in ids[:5]:
            content = httpx.get(f"{gateway_url}/v1/videos/{task_id}/content", headers=headers)
            assert content.status_code == 200 and content.content[4:8] == b"ftyp"
    finally:
        stop(gateway)
        stop(emulator)


def test_sigkill_with_the_embedded_emulator_finishes_every_task(tmp_path: Path) -> None:
    """`serve` with no Google key embeds the emulator: its key and its operations live in the
    data directory, so a restart finishes what the killed process had submitted."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    env = {
        "GEMINI_API_KEY": "",  # none: the built-in emulator
        "VEO_GATEWAY_DATA_DIR": str(data),
        "VEO_GATEWAY_API_KEYS": KEY,
        "VEO_GATEWAY_MAX_IN_FLIGHT": "4",
        "VEO_GATEWAY_POLL_INTERVAL": "0.3",
        "VEO_GATEWAY_FIRST_POLL_AFTER": "0.3",
        "VEO_GATEWAY_EMULATOR_LATENCY": "3",
        "VEO_GATEWAY_PORT": str(port),
    }
    headers = {"Authorization": f"Bearer {KEY}"}
    log = tmp_path / "gateway.log"
    gateway = start(["serve"], env, log)
    try:
        wait_http(f"{url}/healthz", gateway, log)
        ids = [
            httpx.post(
                f"{url}/v1/videos",
                headers=headers,
                timeout=30,
                json={"model": FAST, "prompt": f"task {i}", "metadata": {"durationSeconds": 4}},
            ).json()["id"]
            for i in range(4)
        ]
        deadline = time.monotonic() + 30
        while True:  # every task submitted upstream, none finished there yet
            states = [
                httpx.get(f"{url}/v1/videos/{i}", headers=headers).json()["status"] for i in ids
            ]
            if states == ["in_progress"] * 4:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.05)
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()

        gateway = start(["serve"], env, log)
        wait_http(f"{url}/healthz", gateway, log)
        deadline = time.monotonic() + 120
        while True:
            bodies = [httpx.get(f"{url}/v1/videos/{i}", headers=headers).json() for i in ids]
            assert not any(b["status"] == "failure" for b in bodies), bodies
            if all(b["status"] == "completed" for b in bodies):
                break
            assert time.monotonic() < deadline, bodies
            time.sleep(0.2)
        for task_id in ids:
            content = httpx.get(f"{url}/v1/videos/{task_id}/content", headers=headers)
            assert content.status_code == 200 and content.content[4:8] == b"ftyp"
    finally:
        stop(gateway)
    # Each task was submitted once: one operation apiece, kept by the emulator across the kill.
    assert len(list((data / "emulator" / "operations").glob("*.json"))) == 4
    key = data / "emulator" / "api-key"
    assert key.stat().st_mode & 0o777 == 0o600
