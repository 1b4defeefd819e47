"""The HTTP protocol `veo-gateway serve` runs: uvicorn's, with a bound on a request's head.

uvicorn's httptools protocol keeps reading a request's headers for as long as they come (a
50 MB header is held whole before the app sees it). This one stops reading once the head is
over the limit and answers 431 in the error envelope; h11, when chosen, has the same bound
through `h11_max_incomplete_event_size`. The app checks the exact size again
(api/limits.py), whatever server runs it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from veo_gateway.api.limits import headers_too_large
from veo_gateway.settings import Settings


class HeadLimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol that refuses a request head over the configured bytes.

    The limit is the config's `h11_max_incomplete_event_size`, h11's own name for the same bound.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_limit = config.h11_max_incomplete_event_size or 32 * 1024
        self._head_bytes = 0
        self._reading_head = True
        self._head_ended = False

    def data_received(self, data: bytes) -> None:
        in_head = self._reading_head
        self._head_ended = False
        super().data_received(data)
        # Counted after parsing, and only for chunks that begin and end inside a head: a body
        # after its head in the same chunk is not a head, a chunk of body that completes its
        # message is not the next one's head, and a head that ends within one chunk is left to
        # the app's exact check.
        if not in_head or self._head_ended or not self._reading_head:
            return
        if self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._head_limit:
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_ended = True
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True
        super().on_message_complete()

    def _refuse_head(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            body = json.dumps(headers_too_large(self._head_limit).to_dict()).encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\n"
                b"content-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (len(body), body)
            )
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings `serve` adds: the bounded protocol and its limit."""
    return {
        "http": HeadLimitedHttpTools,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
