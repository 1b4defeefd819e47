"""Caps on a request's size: its head (URL and headers, 431) and its body, enforced while it
streams in (413), both answered in the error envelope."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veo_gateway.errors import GatewayError, HeadersTooLarge, PayloadTooLarge


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than the {limit // (1024 * 1024)} MiB limit")


class BodySizeLimit:
    """Refuses bodies over `limit` bytes, by Content-Length up front or by counting."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_large(self.limit)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Send) -> None:
        await refuse(send, _too_large(self.limit))


async def refuse(send: Send, error: GatewayError) -> None:
    """Answer `error` in the envelope and close the connection (the rest is not read)."""
    body = json.dumps(error.to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def head_size(scope: Scope) -> int:
    """The bytes of a request's head as the client sent it: target, header names and values."""
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
    for name, value in scope["headers"]:
        size += len(name) + len(value) + 4  # ": " and CRLF
    return size


class HeaderSizeLimit:
    """Refuses requests whose URL and headers together are over `limit` bytes (431).

    Whatever server runs the app; `veo-gateway serve` also stops reading such a head early
    (http_server.py), before it is held in memory whole.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and head_size(scope) > self.limit:
            await refuse(send, headers_too_large(self.limit))
            return
        await self.app(scope, receive, send)


def headers_too_large(limit: int) -> HeadersTooLarge:
    """The 431 for a head over `limit` bytes."""
    return HeadersTooLarge(
        f"request headers and URL are larger than the {limit // 1024} KiB limit",
        param="headers",
    )
