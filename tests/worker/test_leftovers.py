"""What a kill leaves behind is swept at the next start, and a DELETE of a task stuck in
submission gives its credential slot back at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Gateway

FAST = "veo-3.1-fast-generate-preview"


# The worker lock, and so this sweep at start, is SQLite's.
@pytest.mark.sqlite
def test_the_worker_lock_holder_sweeps_download_temp_files_at_start(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    videos = tmp_path / "data" / "videos"
    videos.mkdir(parents=True)
    killed_download = videos / ".tmp-abc123.mp4"  # a download cut off by SIGKILL
    live_jpeg = videos / ".tmp-def456.jpg"  # may be another process's request, under way
    for path in (killed_download, live_jpeg):
        path.write_bytes(b"partial")
    make_gateway()
    assert not killed_download.exists()
    assert live_jpeg.exists()


def test_the_worker_off_sweeps_nothing(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    videos = tmp_path / "data" / "videos"
    videos.mkdir(parents=True)
    download = videos / ".tmp-abc123.mp4"
    download.write_bytes(b"partial")
    make_gateway(worker_enabled=False)
    assert download.exists()


def slots(gateway: Gateway) -> int:
    return sum(c["in_flight"] for c in gateway.client.get("/readyz").json()["credentials"])


def test_delete_of_a_task_stuck_in_submission_gives_its_slot_back(
    make_gateway: Callable[..., Gateway],
) -> None:
    # The emulator holds every submission for a while: the task stays `submitting`.
    gateway = make_gateway(
        emulator_faults="submit.stall=1,stall_seconds=5", inline_submit_timeout=0.0
    )
    task_id = gateway.create({"model": FAST, "prompt": "stuck on the wire"}).json()["id"]
    deadline = time.monotonic() + 10
    while slots(gateway) == 0:
        assert time.monotonic() < deadline, "the submission never started"
        time.sleep(0.02)
    deleted = gateway.client.delete(f"/v1/videos/{task_id}", headers=gateway.headers())
    assert deleted.status_code == 200
    assert slots(gateway) == 0  # at once, not when the stalled call returns
