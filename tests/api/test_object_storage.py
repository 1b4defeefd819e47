"""The gateway on S3 storage end to end: the real app, the real emulator, and a real
S3-protocol server on loopback (moto's) that the gateway reaches through the AWS variables."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import requests

from tests.conftest import KEY_A, KEY_B, Gateway
from tests.support.media import data_uri, make_image
from tests.support.s3 import SECRET_KEY, Bucket
from tests.worker.test_retention import sweep
from veo_gateway.client import Client
from veo_gateway.media.probe import check_whole

FAST = "veo-3.1-fast-generate-preview"
DAY = 86400.0


def finished(gateway: Gateway, **extra: Any) -> str:
    body = {"model": FAST, "prompt": "a lighthouse", "metadata": {"durationSeconds": 4}, **extra}
    response = gateway.create(body)
    assert response.status_code == 200, response.text
    status = gateway.wait(response.json()["id"])
    assert status["status"] == "completed", status
    return str(status["id"])


def content(gateway: Gateway, task_id: str, **kwargs: Any) -> httpx.Response:
    headers = {**gateway.headers(), **kwargs.pop("headers", {})}
    return gateway.client.get(f"/v1/videos/{task_id}/content", headers=headers, **kwargs)


@pytest.fixture
def on_s3(make_gateway: Callable[..., Gateway], s3_bucket: Bucket) -> Callable[..., Gateway]:
    """Start a gateway whose storage is the test's bucket."""

    def start(**overrides: Any) -> Gateway:
        return make_gateway(storage_url=s3_bucket.url, **overrides)

    return start


def test_a_video_is_stored_in_the_bucket_and_served_from_it(
    on_s3: Callable[..., Gateway], s3_bucket: Bucket, tmp_path: Path
) -> None:
    gateway = on_s3()
    task_id = finished(gateway)
    key = f"videos/{task_id}/video.mp4"
    assert s3_bucket.keys() == [key]
    assert s3_bucket.pending_uploads() == []
    assert not (gateway.settings.data_dir / "videos").exists()  # nothing on the local disk
    stored = s3_bucket.read(key)
    (tmp_path / "stored.mp4").write_bytes(stored)
    check_whole(tmp_path / "stored.mp4")

    whole = content(gateway, task_id)
    assert whole.status_code == 200 and whole.content == stored
    assert whole.headers["content-length"] == str(len(stored))
    assert whole.headers["accept-ranges"] == "bytes"
    etag = whole.headers["etag"]
    assert etag == s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"gateway/{key}")["ETag"]

    part = content(gateway, task_id, headers={"range": "bytes=100-4195"})
    assert part.status_code == 206 and part.content == stored[100:4196]
    assert part.headers["content-range"] == f"bytes 100-4195/{len(stored)}"
    tail = content(gateway, task_id, headers={"range": "bytes=-10", "if-range": etag})
    assert tail.status_code == 206 and tail.content == stored[-10:]
    stale = content(gateway, task_id, headers={"range": "bytes=0-9", "if-range": '"other"'})
    assert stale.status_code == 200 and stale.content == stored
    several = content(gateway, task_id, headers={"range": "bytes=0-9,2000-2009"})
    assert several.status_code == 206
    assert stored[:10] in several.content and stored[2000:2010] in several.content
    beyond = content(gateway, task_id, headers={"range": f"bytes={len(stored)}-"})
    assert beyond.status_code == 416 and beyond.json()["error"]["status"] == "OUT_OF_RANGE"
    head = gateway.client.head(f"/v1/videos/{task_id}/content", headers=gateway.headers())
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(stored)) and head.headers["etag"] == etag

    thumb = content(gateway, task_id, params={"variant": "thumbnail"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    assert s3_bucket.keys() == [f"videos/{task_id}/thumbnail.jpg", key]
    assert content(gateway, task_id, params={"variant": "thumbnail"}).content == thumb.content

    assert content(gateway, task_id, headers=gateway.headers(KEY_B)).status_code == 404
    deleted = gateway.client.delete(f"/v1/videos/{task_id}", headers=gateway.headers())
    assert deleted.status_code == 200
    assert s3_bucket.keys() == []
    assert content(gateway, task_id).status_code == 404


def test_image_inputs_are_stored_in_the_bucket(
    on_s3: Callable[..., Gateway], s3_bucket: Bucket
) -> None:
    gateway = on_s3()
    png = make_image("PNG")
    task_id = finished(gateway, images=[data_uri(png)])
    assert s3_bucket.read(f"inputs/{task_id}/image.png") == png
    assert content(gateway, task_id).status_code == 200
    gateway.client.delete(f"/v1/videos/{task_id}", headers=gateway.headers())
    assert s3_bucket.keys() == []


def test_retention_deletes_the_objects_and_the_metrics_count_what_is_kept(
    on_s3: Callable[..., Gateway], s3_bucket: Bucket
) -> None:
    gateway = on_s3(retention_days=1)
    png = make_image("PNG")
    task_id = finished(gateway, images=[data_uri(png)])
    size = len(s3_bucket.read(f"videos/{task_id}/video.mp4"))

    def metric(name: str) -> float:
        text = gateway.client.get("/metrics").text
        (line,) = [row for row in text.splitlines() if row.startswith(name + " ")]
        return float(line.split()[1])

    assert metric("veo_gateway_stored_video_bytes") == size
    assert sweep(gateway, time.time() + 2 * DAY) == [task_id]
    assert s3_bucket.keys() == []
    gone = content(gateway, task_id)
    assert gone.status_code == 410 and "retention" in gone.json()["error"]["message"]
    assert metric("veo_gateway_stored_video_bytes") == 0


def test_the_byte_cap_deletes_the_oldest_objects(
    on_s3: Callable[..., Gateway], s3_bucket: Bucket
) -> None:
    gateway = on_s3(storage_max_bytes=10**12)  # the app's own cap is far; the sweep brings one
    older, newer = finished(gateway), finished(gateway, prompt="a harbour")
    keys = {task: f"videos/{task}/video.mp4" for task in (older, newer)}
    room = len(s3_bucket.read(keys[newer]))
    assert sweep(gateway, time.time(), max_bytes=room) == [older]
    assert s3_bucket.keys() == [keys[newer]]
    gone = content(gateway, older)
    assert gone.status_code == 410 and "size limit" in gone.json()["error"]["message"]
    assert content(gateway, newer).status_code == 200


def test_readiness_checks_the_bucket(on_s3: Callable[..., Gateway], s3_bucket: Bucket) -> None:
    gateway = on_s3()
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["storage"] == "ok"
    assert ready.json()["storage"] == {"free_bytes": None, "min_free_bytes": None}
    s3_bucket.client.delete_bucket(Bucket=s3_bucket.name)  # empty: it can go
    away = gateway.client.get("/readyz")
    assert away.status_code == 503
    assert away.json()["checks"]["storage"].startswith(f"error: {s3_bucket.url} is unreachable")


def test_a_store_out_of_reach_keeps_the_video_waiting_at_the_upstream(
    on_s3: Callable[..., Gateway], s3_bucket: Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = on_s3(submit_attempts=2)
    s3_bucket.client.delete_bucket(Bucket=s3_bucket.name)
    with caplog.at_level("WARNING", logger="veo_gateway"):
        created = gateway.create({"model": FAST, "prompt": "a bucket away"})
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        deadline = time.monotonic() + 60
        # More failed uploads than the attempts a job may fail: none counts.
        while sum("storage is unreachable" in r.getMessage() for r in caplog.records) < 1:
            assert time.monotonic() < deadline, "the worker never tried to store the video"
            time.sleep(0.1)
        attempts = gateway.db.scalar("select attempts from tasks where id = :id", id=task_id)
        time.sleep(3)  # a few more looks (every second here)
    assert gateway.get(task_id).json()["status"] == "in_progress"
    assert gateway.db.scalar("select attempts from tasks where id = :id", id=task_id) == attempts
    s3_bucket.client.create_bucket(Bucket=s3_bucket.name)
    assert gateway.wait(task_id)["status"] == "completed"
    assert s3_bucket.keys() == [f"videos/{task_id}/video.mp4"]


def test_a_create_whose_inputs_cannot_be_stored_is_a_503(
    on_s3: Callable[..., Gateway], s3_bucket: Bucket
) -> None:
    gateway = on_s3()
    s3_bucket.client.delete_bucket(Bucket=s3_bucket.name)
    refused = gateway.create(
        {"model": FAST, "prompt": "a kite", "images": [data_uri(make_image())]}
    )
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["status"] == "UNAVAILABLE"
    assert "storage is unreachable" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "5"
    listed = gateway.client.get("/v1/videos", headers=gateway.headers()).json()
    assert listed["data"] == []  # nothing was kept of it


# -- the redirect mode -------------------------------------------------------------------------


@pytest.fixture
def redirecting(on_s3: Callable[..., Gateway], s3_bucket: Bucket) -> tuple[Gateway, str, bytes]:
    """A gateway in redirect mode, one finished task, and its video's bytes in the bucket."""
    gateway = on_s3(content_redirect=True, content_redirect_seconds=120)
    task_id = finished(gateway)
    return gateway, task_id, s3_bucket.read(f"videos/{task_id}/video.mp4")


def test_redirect_names_the_store_after_the_key_check(
    redirecting: tuple[Gateway, str, bytes], s3_bucket: Bucket
) -> None:
    gateway, task_id, stored = redirecting
    answer = content(gateway, task_id)
    assert answer.status_code == 307
    location = answer.headers["location"]
    assert location.startswith(f"{s3_bucket.endpoint}/{s3_bucket.name}/gateway/videos/{task_id}/")
    assert "X-Amz-Expires=120" in location and SECRET_KEY not in location
    assert KEY_A not in location
    assert httpx.get(location).content == stored  # the URL alone is enough
    # No key, another's key: no URL.
    anonymous = gateway.client.get(f"/v1/videos/{task_id}/content")
    assert anonymous.status_code == 401 and "location" not in anonymous.headers
    other = content(gateway, task_id, headers=gateway.headers(KEY_B))
    assert other.status_code == 404 and "location" not in other.headers
    # HEAD, the JPEGs and the gateway's own page (the playground) are answered by the gateway.
    own_page = content(gateway, task_id, headers={"sec-fetch-site": "same-origin"})
    assert own_page.status_code == 200 and own_page.content == stored
    head = gateway.client.head(f"/v1/videos/{task_id}/content", headers=gateway.headers())
    assert head.status_code == 200 and head.headers["content-length"] == str(len(stored))
    thumb = content(gateway, task_id, params={"variant": "thumbnail"})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    # Deleted by the retention: 410, not a URL to nothing.
    sweep(gateway, time.time() + 400 * DAY, max_bytes=1)
    gone = content(gateway, task_id)
    assert gone.status_code == 410 and "location" not in gone.headers


def test_requests_follows_the_redirect_with_ranges(redirecting: tuple[Gateway, str, bytes]) -> None:
    gateway, task_id, stored = redirecting
    url = f"{gateway.url}/v1/videos/{task_id}/content"
    whole = requests.get(url, headers=gateway.headers(), timeout=30)
    assert whole.status_code == 200 and whole.content == stored
    assert [r.status_code for r in whole.history] == [307]
    part = requests.get(url, headers={**gateway.headers(), "Range": "bytes=10-29"}, timeout=30)
    assert part.status_code == 206 and part.content == stored[10:30]


def test_the_openai_sdk_downloads_through_the_redirect(
    redirecting: tuple[Gateway, str, bytes], tmp_path: Path
) -> None:
    gateway, task_id, stored = redirecting
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0)
    path = tmp_path / "sdk.mp4"
    client.videos.download_content(task_id).write_to_file(path)
    assert path.read_bytes() == stored


def test_the_gateway_client_and_curl_follow_the_redirect(
    redirecting: tuple[Gateway, str, bytes], tmp_path: Path
) -> None:
    gateway, task_id, stored = redirecting
    with Client(gateway.url, api_key=KEY_A) as client:
        assert client.download(task_id, tmp_path / "client.mp4").read_bytes() == stored
    out = tmp_path / "curl.mp4"
    subprocess.run(
        [
            "curl", "-sSfL", "-o", str(out), "-H", f"Authorization: Bearer {KEY_A}",
            f"{gateway.url}/v1/videos/{task_id}/content",
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    assert out.read_bytes() == stored


def test_redirect_mode_on_file_storage_serves_as_usual(
    make_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="veo_gateway"):
        gateway = make_gateway(content_redirect=True, log_level="info")
    task_id = finished(gateway)
    answer = content(gateway, task_id)
    assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4"
    assert any("served by the gateway as usual" in r.getMessage() for r in caplog.records)
