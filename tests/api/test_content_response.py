"""The content response reads the file it opened: a file deleted mid-download still arrives
whole (the retention sweep may delete a video while a client is downloading it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from veo_gateway.api.content_response import CHUNK_BYTES, ContentResponse, OpenedFile


async def _serve(
    response: ContentResponse, *, method: str = "GET", on_start: Any = None
) -> tuple[dict[str, Any], bytes]:
    start: dict[str, Any] = {}
    body = bytearray()

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            if on_start is not None:
                on_start()
        else:
            body.extend(message["body"])

    await response({"type": "http", "method": method}, receive, send)
    return start, bytes(body)


@pytest.mark.parametrize(
    "ranges", [None, [(5, CHUNK_BYTES * 2 + 7)], [(0, 10), (CHUNK_BYTES, CHUNK_BYTES * 3)]]
)
async def test_a_file_deleted_after_the_headers_still_arrives_whole(
    tmp_path: Path, ranges: list[tuple[int, int]] | None
) -> None:
    data = bytes(range(256)) * (CHUNK_BYTES * 4 // 256 + 3)
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    source = await OpenedFile.open(path)
    response = ContentResponse(source, media_type="video/mp4", filename="v.mp4", ranges=ranges)
    start, body = await _serve(response, on_start=path.unlink)
    assert not path.exists()
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(headers["content-length"]) == len(body)
    if ranges is None:
        assert start["status"] == 200 and body == data
    elif len(ranges) == 1:
        assert start["status"] == 206 and body == data[ranges[0][0] : ranges[0][1]]
    else:
        for s, e in ranges:
            assert data[s:e] in body
    assert source._file.closed  # the handle is closed once the response is sent


async def test_head_sends_no_body_and_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(b"x" * 1000)
    source = await OpenedFile.open(path)
    response = ContentResponse(source, media_type="video/mp4", filename="v.mp4", ranges=None)
    start, body = await _serve(response, method="HEAD")
    assert body == b"" and dict(start["headers"])[b"content-length"] == b"1000"
    assert source._file.closed


async def test_a_directory_or_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await OpenedFile.open(tmp_path)
    with pytest.raises(FileNotFoundError):
        await OpenedFile.open(tmp_path / "nope.mp4")
