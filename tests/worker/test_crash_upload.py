"""A SIGKILL of the gateway in the middle of a video's upload to S3 storage (moto's server on
loopback): no object under the final key, and the task is finished by the next attempt."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, start, stop, wait_http
from tests.support.s3 import Bucket
from tests.worker.test_crash import FAST, HEADERS, emulator_url, finished, serve_env, wait_for
from veo_gateway.media.probe import check_whole

__all__ = ["emulator_url"]  # the fixture, shared with the other crash tests

SLOW = 6.0  # seconds the emulator takes to send a video's bytes


@pytest.mark.sqlite  # SQLite's sole worker takes the task back at once on restart
@pytest.mark.faults(f"download.slow=1,slow_seconds={SLOW}")
def test_sigkill_mid_upload_leaves_no_object_and_the_task_completes_after_restart(
    tmp_path: Path, emulator_url: str, s3_bucket: Bucket
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**serve_env(tmp_path, emulator_url, port), "VEO_GATEWAY_STORAGE_URL": s3_bucket.url}
    log = tmp_path / "gateway.log"
    gateway = start(["serve"], env, log)
    try:
        wait_http(f"{url}/healthz", gateway, log)
        created = httpx.post(
            f"{url}/v1/videos", headers=HEADERS, json={"model": FAST, "prompt": "mid-upload"}
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        key = f"gateway/videos/{task_id}/video.mp4"
        # The video trickles in from the emulator: its upload is begun and not complete.
        wait_for(lambda: key in s3_bucket.pending_uploads(), "the upload to begin", timeout=60)
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()
        assert s3_bucket.keys() == []  # nothing under the final key, nor anywhere

        gateway = start(["serve"], env, log)
        wait_http(f"{url}/healthz", gateway, log)
        final = finished(url, task_id, "the task to finish after the restart", timeout=90)
        assert final["status"] == "completed", final
        stored = s3_bucket.read(f"videos/{task_id}/video.mp4")
        (tmp_path / "stored.mp4").write_bytes(stored)
        check_whole(tmp_path / "stored.mp4")
        served = httpx.get(f"{url}/v1/videos/{task_id}/content", headers=HEADERS, timeout=30)
        assert served.status_code == 200 and served.content == stored
    finally:
        stop(gateway)
