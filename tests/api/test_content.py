"""`/content`: Range, HEAD, 416, not ready, unknown id."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Gateway

FAST = "veo-3.1-fast-generate-preview"


def test_content_ranges_and_head(gateway: Gateway) -> None:
    task_id = gateway.create(
        {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}}
    ).json()["id"]
    assert gateway.wait(task_id)["status"] == "completed"
    url = f"/v1/videos/{task_id}/content"
    full = gateway.client.get(url, headers=gateway.headers())
    size = len(full.content)
    assert full.headers["accept-ranges"] == "bytes"
    assert full.content[4:8] == b"ftyp"

    part = gateway.client.get(url, headers={**gateway.headers(), "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.content == full.content[100:200]

    tail = gateway.client.get(url, headers={**gateway.headers(), "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == full.content[-50:]
    opened = gateway.client.get(url, headers={**gateway.headers(), "Range": f"bytes={size - 10}-"})
    assert opened.status_code == 206 and opened.content == full.content[-10:]

    bad = gateway.client.get(url, headers={**gateway.headers(), "Range": f"bytes={size + 5}-"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == f"bytes */{size}"
    assert bad.json()["error"]["status"] == "OUT_OF_RANGE"
    for malformed in ("bytes=abc", "pages=1-2", "bytes=5-1", "bytes=-"):
        response = gateway.client.get(url, headers={**gateway.headers(), "Range": malformed})
        assert response.status_code == 400, malformed
        assert response.json()["error"]["param"] == "Range"
    several = gateway.client.get(url, headers={**gateway.headers(), "Range": "bytes=0-9,20-29"})
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges")
    boundary = several.headers["content-type"].split("boundary=")[1]
    assert int(several.headers["content-length"]) == len(several.content)
    parts = several.content.split(f"--{boundary}".encode())
    assert parts[0] == b"" and parts[-1] == b"--"
    for part, (start, end) in zip(parts[1:-1], [(0, 9), (20, 29)], strict=True):
        head, _, body = part.partition(b"\r\n\r\n")
        assert f"Content-Range: bytes {start}-{end}/{size}".encode() in head
        assert body == full.content[start : end + 1] + b"\r\n"

    # If-Range: the ETag the client holds still matches, so the range is served; a stale one
    # (the file changed) gets the whole file.
    etag = full.headers["etag"]
    fresh = gateway.client.get(
        url, headers={**gateway.headers(), "Range": "bytes=0-9", "If-Range": etag}
    )
    assert fresh.status_code == 206 and fresh.content == full.content[:10]
    stale = gateway.client.get(
        url, headers={**gateway.headers(), "Range": "bytes=0-9", "If-Range": '"old"'}
    )
    assert stale.status_code == 200 and stale.content == full.content

    head = gateway.client.head(url, headers=gateway.headers())
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == size


def test_content_before_completion_is_a_clear_error(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(emulator_latency="30")
    task_id = gateway.create({"model": FAST, "prompt": "p"}).json()["id"]
    response = gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "FAILED_PRECONDITION" and "not ready" in error["message"]


def test_content_of_unknown_id_is_404(gateway: Gateway) -> None:
    response = gateway.client.get("/v1/videos/video_nope/content", headers=gateway.headers())
    assert response.status_code == 404
    assert gateway.get("video_nope").status_code == 404
