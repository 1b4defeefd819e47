"""A full disk: creates get 507, DELETE still works, /readyz and /metrics show the free space,
finished videos wait (logged once, not per attempt) and are stored once space returns, and a
start on the full disk says so in one line.

The data directory is a small filesystem the test mounts (a tmpfs, or an ext4 image on a loop
device), filled to the last byte by a file the test writes; the emulator's files live outside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_pool_e2e import gemini_config
from tests.conftest import Gateway, gateway_settings
from tests.observability.test_metrics import scrape, total
from tests.support.processes import free_port, start, stop, wait_http
from tests.support.servers import serve_app
from veo_gateway.app import create_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app

FAST = "veo-3.1-fast-generate-preview"
SIZE_MB = 32
FLOOR = 2 * 1024 * 1024


def _mount(directory: Path, image: Path) -> list[str]:
    """Mount a small filesystem on `directory`; returns the command that unmounts it."""
    tmpfs = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(directory)],
        capture_output=True,
    )
    if tmpfs.returncode == 0:
        return ["umount", "-l", str(directory)]
    with image.open("wb") as handle:
        handle.truncate(SIZE_MB * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(directory)], check=True)
    return ["umount", "-d", "-l", str(directory)]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs these tests as root)")
    directory = tmp_path / "data"  # where `make_gateway` puts the data directory
    directory.mkdir()
    unmount = _mount(directory, tmp_path / "small.img")
    try:
        yield directory
    finally:
        subprocess.run(unmount, check=False)


class Filler:
    """A file that takes every free byte of a filesystem, and gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for block in (1024 * 1024, 64 * 1024, 4096, 512, 1):
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * block):
                        pass
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.path.parent).free < FLOOR

    def give_back(self, size: int) -> None:
        """Free `size` bytes (the disk is then short of space, but not full)."""
        os.truncate(self.path, self.path.stat().st_size - size)

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(1.0, 1.0), api_keys=frozenset({"k1"}), storage_dir=tmp_path / "emulator"
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def create(gateway: Gateway, prompt: str) -> httpx.Response:
    return gateway.create({"model": FAST, "prompt": prompt, "metadata": {"durationSeconds": 4}})


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.name.startswith("veo_gateway")]


def test_a_full_disk_refuses_new_work_keeps_deletes_and_resumes_when_space_returns(
    make_gateway: Callable[..., Gateway],
    small_disk: Path,
    emulator_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="veo_gateway")
    config = gemini_config(tmp_path, emulator_url, ["k1"])
    settings: dict[str, Any] = {
        "config": config,
        "min_free_bytes": FLOOR,
        "inline_submit_timeout": 0.0,
    }
    gateway = make_gateway(**settings)
    kept = create(gateway, "made before the disk filled")
    assert kept.status_code == 200, kept.text
    kept_id = kept.json()["id"]
    assert gateway.wait(kept_id)["status"] == "completed"

    # Two tasks running upstream when the disk fills up.
    waiting = [create(gateway, f"finishes on a full disk {i}").json()["id"] for i in range(2)]
    wait_for(
        lambda: all(gateway.get(i).json()["status"] == "in_progress" for i in waiting),
        "the tasks to be submitted",
    )
    filler = Filler(small_disk / "filler")
    filler.fill()
    tracebacks_before = len(tracebacks(caplog))

    refused = create(gateway, "no room for me")
    assert refused.status_code == 507, refused.text
    error = refused.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and "out of storage space" in error["message"]
    assert refused.headers["retry-after"]

    ready = gateway.client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["storage"]["free_bytes"] < FLOOR
    assert "out of storage space" in body["checks"]["storage"]
    assert f"({body['storage']['free_bytes']} bytes) free" in body["checks"]["storage"]
    assert total(scrape(gateway), "veo_gateway_storage_free_bytes") < FLOOR

    sheet = gateway.client.get(
        f"/v1/videos/{kept_id}/content",
        params={"variant": "spritesheet"},
        headers=gateway.headers(),
    )
    assert sheet.status_code == 507, sheet.text

    # The disk is full to the last byte: the database cannot even take a lease. The worker
    # backs off and says so once, instead of a traceback per attempt.
    worker_warnings = lambda: [  # noqa: E731
        r for r in caplog.records if r.name == "veo_gateway.worker" and r.levelno >= logging.WARNING
    ]
    wait_for(worker_warnings, "the worker to report the full disk")
    deleted = gateway.client.delete(f"/v1/videos/{kept_id}", headers=gateway.headers())
    assert deleted.status_code == 200, deleted.text  # and it freed the video's space
    assert not list(gateway.settings.resolved_videos_dir.glob(f"{kept_id}*"))
    assert gateway.get(kept_id).status_code == 404

    # Short of space but not full: the database works, and the finished videos wait at the
    # upstream rather than fill the disk; the worker says so once, not per look.
    filler.give_back(FLOOR // 2)
    polls = scrape(gateway)
    wait_for(
        lambda: any("tasks wait" in r.getMessage() for r in caplog.records),
        "the worker to report that videos wait for space",
    )
    wait_for(
        lambda: (
            total(scrape(gateway), "veo_gateway_upstream_calls_total", kind="poll")
            >= total(polls, "veo_gateway_upstream_calls_total", kind="poll") + 6
        ),
        "more polls",
    )
    for task_id in waiting:
        assert gateway.get(task_id).json()["status"] == "in_progress"
    assert not list(gateway.settings.resolved_videos_dir.glob("*.mp4"))
    assert len(worker_warnings()) <= 3, [r.getMessage() for r in worker_warnings()]
    assert len(tracebacks(caplog)) - tracebacks_before <= 2

    filler.free()
    for task_id in waiting:
        assert gateway.wait(task_id)["status"] == "completed"
    again = create(gateway, "room again")
    assert again.status_code == 200, again.text
    assert gateway.wait(again.json()["id"])["status"] == "completed"
    assert gateway.client.get("/readyz").status_code == 200


def test_a_start_short_of_space_says_so_in_one_line_and_serves_reads(
    make_gateway: Callable[..., Gateway],
    small_disk: Path,
    emulator_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = gemini_config(tmp_path, emulator_url, ["k1"])
    settings: dict[str, Any] = {"config": config, "min_free_bytes": FLOOR}
    with contextlib.ExitStack() as first_run:
        # A first run makes the database; then the process ends, and the disk fills up.
        url = first_run.enter_context(
            serve_app(create_app(gateway_settings(small_disk, **settings)))
        )
        assert httpx.get(f"{url}/healthz").status_code == 200
    filler = Filler(small_disk / "filler")
    filler.fill()
    filler.give_back(FLOOR // 2)
    caplog.clear()
    caplog.set_level(logging.INFO, logger="veo_gateway")
    gateway = make_gateway(**settings)
    problems = [r for r in caplog.records if "out of storage space" in r.getMessage()]
    assert len(problems) == 1 and problems[0].levelno == logging.ERROR
    assert not problems[0].exc_info
    assert "VEO_GATEWAY_MIN_FREE_BYTES" in problems[0].getMessage()
    assert not tracebacks(caplog)
    assert gateway.client.get("/healthz").status_code == 200
    assert gateway.client.get("/readyz").status_code == 503
    assert create(gateway, "refused").status_code == 507


@pytest.mark.sqlite  # the database on the full disk: SQLite's file in the data directory
def test_serve_on_a_full_disk_stops_with_one_line(
    small_disk: Path, emulator_url: str, tmp_path: Path
) -> None:
    env = {
        "VEO_GATEWAY_DATA_DIR": str(small_disk),
        "VEO_GATEWAY_CONFIG": str(gemini_config(tmp_path, emulator_url, ["k1"])),
        "VEO_GATEWAY_API_KEYS": "k",
        "VEO_GATEWAY_PORT": str(free_port()),
        "VEO_GATEWAY_MIN_FREE_BYTES": str(FLOOR),
    }
    log = tmp_path / "serve.log"
    first = start(["serve"], env, log)
    try:
        wait_http(f"http://127.0.0.1:{env['VEO_GATEWAY_PORT']}/healthz", first, log)
    finally:
        stop(first)
    Filler(small_disk / "filler").fill()  # to the last byte: SQLite cannot open its WAL index
    log.write_text("")
    again = start(["serve"], env, log)
    assert again.wait(timeout=60) == 1
    output = log.read_text()
    assert "Traceback" not in output, output
    (line,) = [text for text in output.splitlines() if "cannot start" in text]
    assert f"the disk of {small_disk} is full" in line
