"""HTTP plumbing the adapters share: JSON calls and streamed downloads, errors translated."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from veo_gateway.errors import UpstreamError, UpstreamUnavailable

MAX_REDIRECTS = 5


def upstream_error(response: httpx.Response) -> UpstreamError:
    """Google's error envelope as an UpstreamError (or a plain one when the body is not JSON)."""
    try:
        error = response.json().get("error", {})
        message = str(error.get("message") or response.reason_phrase)
        status = str(error.get("status") or "UNKNOWN")
    except (ValueError, AttributeError):
        message, status = f"upstream answered HTTP {response.status_code}", "UNKNOWN"
    return UpstreamError(message, code=response.status_code, status=status)


def maybe_received(error: httpx.HTTPError) -> bool:
    """Whether the request may have reached the server before `error`: anything but a failure
    to connect (or to get a connection) may have come after the request was sent."""
    return not isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


async def call_json(
    client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> dict[str, Any]:
    """One JSON call; Google's errors and network failures become UpstreamError."""
    try:
        response = await client.request(method, url, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(
            f"the upstream could not be reached: {exc!r}", maybe_received=maybe_received(exc)
        ) from exc
    if response.status_code >= 400:
        raise upstream_error(response)
    try:
        body = response.json()
    except json.JSONDecodeError as exc:
        raise UpstreamError("the upstream answered something that is not JSON") from exc
    if not isinstance(body, dict):
        raise UpstreamError("the upstream answered an unexpected JSON value")
    return body


@asynccontextmanager
async def stream_download(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> AsyncIterator[AsyncIterator[bytes]]:
    """Stream `url`. Redirects are followed by hand so `headers` (credentials) only go to the
    first URL's host, never to wherever it redirects."""
    origin = urlsplit(url).netloc
    for _ in range(MAX_REDIRECTS + 1):
        sent = headers if urlsplit(url).netloc == origin else {}
        try:
            response = await client.send(
                client.build_request("GET", url, headers=sent), stream=True
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"the video download failed: {exc!r}") from exc
        if response.is_redirect and "location" in response.headers:
            await response.aclose()
            url = urljoin(url, response.headers["location"])
            continue
        try:
            if response.status_code >= 400:
                await response.aread()
                raise upstream_error(response)
            yield _chunks(response)
        finally:
            await response.aclose()
        return
    raise UpstreamError("the video download redirected too many times")


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes(1024 * 1024):
            yield chunk
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"the video download broke off: {exc!r}") from exc
