"""Serving a stored video or JPEG: whole, by byte range (206, multipart for several), or HEAD.

The source is a `Blob` the storage opened before the first byte is sent (a file held open, or
an object's version read by ranged GETs), and it is read through to the end, so the retention
sweep, which may delete it at any moment, cannot cut a download of a file short: an open file
outlives its name. (Starlette's FileResponse opens the file only after it has sent the headers,
and a file deleted in between ended the response mid-body.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from secrets import token_hex

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from veo_gateway.media.storage import Blob
from veo_gateway.media.storage.files import CHUNK_BYTES, OpenedFile

__all__ = ["CHUNK_BYTES", "ContentResponse", "OpenedFile"]


class ContentResponse(Response):
    """`source` whole (`ranges` None) or the given half-open byte ranges, then closed."""

    def __init__(
        self,
        source: Blob,
        *,
        media_type: str,
        filename: str,
        ranges: list[tuple[int, int]] | None,
    ) -> None:
        self.source = source
        self.ranges = ranges
        self.media_type = media_type
        self.background = None
        self.status_code = 200 if ranges is None else 206
        self._boundary = token_hex(13)
        headers = {
            "accept-ranges": "bytes",
            "etag": source.etag,
            "last-modified": source.last_modified,
            "content-disposition": f'inline; filename="{filename}"',
        }
        if ranges is None:
            headers["content-length"] = str(source.size)
        elif len(ranges) == 1:
            start, end = ranges[0]
            headers["content-range"] = f"bytes {start}-{end - 1}/{source.size}"
            headers["content-length"] = str(end - start)
        else:
            headers["content-length"] = str(
                sum(len(self._part_head(s, e)) + (e - s) + 2 for s, e in ranges)
                + len(self._closing())
            )
        self.init_headers(headers)
        if ranges is not None and len(ranges) > 1:
            self.headers["content-type"] = f"multipart/byteranges; boundary={self._boundary}"

    def _part_head(self, start: int, end: int) -> bytes:
        return (
            f"--{self._boundary}\r\nContent-Type: {self.media_type}\r\n"
            f"Content-Range: bytes {start}-{end - 1}/{self.source.size}\r\n\r\n"
        ).encode("latin-1")

    def _closing(self) -> bytes:
        return f"--{self._boundary}--".encode("latin-1")

    async def _body(self) -> AsyncIterator[bytes]:
        if self.ranges is None:
            async for chunk in self.source.chunks(0, self.source.size):
                yield chunk
        elif len(self.ranges) == 1:
            async for chunk in self.source.chunks(*self.ranges[0]):
                yield chunk
        else:
            for start, end in self.ranges:
                yield self._part_head(start, end)
                async for chunk in self.source.chunks(start, end):
                    yield chunk
                yield b"\r\n"
            yield self._closing()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            if scope.get("method", "GET").upper() == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    async for chunk in self._body():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    group.cancel_scope.cancel()

                async def watch_disconnect() -> None:
                    # Servers on ASGI spec 2.3 (uvicorn) drop sends after a disconnect
                    # instead of raising, so a gone client is noticed here.
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(watch_disconnect)
        finally:
            self.source.close()
