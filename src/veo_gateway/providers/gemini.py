"""The Gemini API adapter: predictLongRunning, operation polling and file download over REST."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.errors import UpstreamError, UpstreamUnavailable
from veo_gateway.providers.base import OperationStatus
from veo_gateway.providers.payload import build_body

_FILE_ID = re.compile(r"files/([a-z0-9]+)")
_MAX_REDIRECTS = 5


def upstream_error(response: httpx.Response) -> UpstreamError:
    """Google's error envelope as an UpstreamError (or a plain one when the body is not JSON)."""
    try:
        error = response.json().get("error", {})
        message = str(error.get("message") or response.reason_phrase)
        status = str(error.get("status") or "UNKNOWN")
    except (ValueError, AttributeError):
        message, status = f"upstream answered HTTP {response.status_code}", "UNKNOWN"
    return UpstreamError(message, code=response.status_code, status=status)


def parse_operation(operation: dict[str, Any]) -> OperationStatus:
    """Read a Gemini API operation: running, failed, safety-blocked, or done with a video."""
    if not operation.get("done"):
        return OperationStatus(done=False)
    if error := operation.get("error"):
        message = error.get("message") or "the operation failed"
        return OperationStatus(done=True, error=f"{message} (upstream code {error.get('code')})")
    result = (operation.get("response") or {}).get("generateVideoResponse") or {}
    for sample in result.get("generatedSamples") or []:
        uri = (sample.get("video") or {}).get("uri")
        if uri:
            return OperationStatus(done=True, video_ref=uri)
    filtered = result.get("raiMediaFilteredCount") or 0
    if filtered:
        reasons = "; ".join(result.get("raiMediaFilteredReasons") or []) or "no reason given"
        return OperationStatus(
            done=True,
            error=f"blocked by Google's safety filters ({filtered} video(s) filtered): {reasons}",
        )
    return OperationStatus(done=True, error="the upstream finished without returning a video")


class GeminiProvider:
    """Talks to `{base_url}/v1beta/...` with an `x-goog-api-key`."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        client: httpx.AsyncClient,
        name: str = "gemini",
    ) -> None:
        self.name = name
        self._key = api_key
        self._base = base_url.rstrip("/")
        self._client = client

    @property
    def _headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._key}

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, url, headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"the upstream could not be reached: {exc!r}") from exc
        if response.status_code >= 400:
            raise upstream_error(response)
        try:
            body = response.json()
        except json.JSONDecodeError as exc:
            raise UpstreamError("the upstream answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise UpstreamError("the upstream answered an unexpected JSON value")
        return body

    async def submit(self, model: str, request: VideoRequest[Image]) -> str:
        """POST models/{model}:predictLongRunning; returns the operation name."""
        url = f"{self._base}/v1beta/models/{model}:predictLongRunning"
        body = await self._call("POST", url, json=build_body(request))
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise UpstreamError("the upstream accepted the job but returned no operation name")
        return name

    async def poll(self, operation_name: str) -> OperationStatus:
        """GET the operation by name."""
        return parse_operation(await self._call("GET", f"{self._base}/v1beta/{operation_name}"))

    def file_url(self, video_uri: str) -> str:
        """Where to download a sample: the file id taken out of its URI, on our base URL.

        As the google-genai SDK does: never follow the URI itself off the configured base URL.
        """
        match = _FILE_ID.search(urlsplit(video_uri).path)
        if not video_uri.startswith("https://") or match is None:
            raise UpstreamError(
                f"the upstream returned a video URI the gateway cannot use: {video_uri[:200]!r}"
            )
        return f"{self._base}/v1beta/files/{match.group(1)}:download?alt=media"

    @asynccontextmanager
    async def download(self, video_ref: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream the video. Redirects are followed by hand so the key goes only to our base."""
        url = self.file_url(video_ref)
        origin = urlsplit(self._base).netloc
        for _ in range(_MAX_REDIRECTS + 1):
            headers = self._headers if urlsplit(url).netloc == origin else {}
            request = self._client.build_request("GET", url, headers=headers)
            try:
                response = await self._client.send(request, stream=True)
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
