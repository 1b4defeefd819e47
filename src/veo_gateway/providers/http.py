"""The adapters' HTTP client: JSON calls and streamed downloads, errors translated.

Upstream calls are the worker's hot path (a poll of every task in flight every few seconds, a
download per finished task), so they go through aiohttp, whose requests cost a tenth of the
CPU of an httpx request and stay flat with many on the wire at once (httpx's pool grows
dearer with each concurrent request: see docs/benchmarks.md). Nothing else in the gateway
knows which library this is.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from veo_gateway.errors import UpstreamError, UpstreamUnavailable

MAX_REDIRECTS = 5
CHUNK_BYTES = 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Failures before the request left: nothing can have reached the server.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_FAILED = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
_PROXY_VARIABLES = tuple(
    case(name) for name in ("https_proxy", "http_proxy", "all_proxy") for case in (str, str.upper)
)


def upstream_error(status: int, reason: str | None, body: bytes) -> UpstreamError:
    """Google's error envelope as an UpstreamError (or a plain one when the body is not JSON)."""
    try:
        error = json.loads(body).get("error", {})
        message = str(error.get("message") or reason or f"upstream answered HTTP {status}")
        code = str(error.get("status") or "UNKNOWN")
    except (ValueError, AttributeError):
        message, code = f"upstream answered HTTP {status}", "UNKNOWN"
    return UpstreamError(message, code=status, status=code)


def maybe_received(error: BaseException) -> bool:
    """Whether the request may have reached the server before `error`: anything but a failure
    to connect may have come after the request was sent."""
    return not isinstance(error, _NOT_SENT)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class UpstreamHttp:
    """One connection pool for every upstream call of a process.

    `timeout` bounds each wait for the server (an answer, or the next bytes of a download), as
    `connect_timeout` bounds a new connection; a download may take as long as its bytes keep
    coming. The session opens on first use, inside the event loop that uses it. Proxies are
    taken from the environment (`HTTPS_PROXY`, `NO_PROXY`), as Google's SDK does.
    """

    def __init__(self, *, timeout: float, connect_timeout: float = 10.0) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                # Proxies from the environment only when one is set: otherwise aiohttp would
                # read ~/.netrc again for every request.
                trust_env=any(os.environ.get(name) for name in _PROXY_VARIABLES),
                auto_decompress=True,
                connector=aiohttp.TCPConnector(limit=100, limit_per_host=0),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> UpstreamHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call_json(
        self, method: str, url: str, headers: dict[str, str], *, json_body: Any = None
    ) -> dict[str, Any]:
        """One JSON call; Google's errors and network failures become UpstreamError. A body
        that is not strict JSON (a NaN) raises ValueError before anything is sent."""
        data = None
        sent = dict(headers)
        if json_body is not None:
            data = json.dumps(
                json_body, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode()
            sent["Content-Type"] = "application/json"
        try:
            async with self._open().request(
                method, url, headers=sent, data=data, allow_redirects=False
            ) as response:
                body = await response.read()
                status, reason = response.status, response.reason
        except _FAILED as exc:
            raise UpstreamUnavailable(
                f"the upstream could not be reached: {_describe(exc)}",
                maybe_received=maybe_received(exc),
            ) from exc
        if status >= 400:
            raise upstream_error(status, reason, body)
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise UpstreamError("the upstream answered something that is not JSON") from exc
        if not isinstance(answer, dict):
            raise UpstreamError("the upstream answered an unexpected JSON value")
        return answer

    @asynccontextmanager
    async def stream(
        self, url: str, headers: dict[str, str]
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream `url`. Redirects are followed by hand so `headers` (credentials) only go to
        the first URL's host, never to wherever it redirects."""
        origin = urlsplit(url).netloc
        session = self._open()
        for _ in range(MAX_REDIRECTS + 1):
            sent = headers if urlsplit(url).netloc == origin else {}
            try:
                response = await session.get(url, headers=sent, allow_redirects=False)
            except _FAILED as exc:
                raise UpstreamUnavailable(f"the video download failed: {_describe(exc)}") from exc
            try:
                if response.status in _REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status >= 400:
                    try:
                        body = await response.read()
                    except _FAILED:
                        body = b""
                    raise upstream_error(response.status, response.reason, body)
                yield _chunks(response)
                return
            finally:
                response.release()
        raise UpstreamError("the video download redirected too many times")


async def _chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            yield chunk
    except _FAILED as exc:
        raise UpstreamUnavailable(f"the video download broke off: {_describe(exc)}") from exc
