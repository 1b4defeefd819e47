"""The Gemini API adapter: predictLongRunning, operation polling and file download over REST."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit

from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.errors import UpstreamError
from veo_gateway.providers.base import OperationStatus, Sample, running_or_failed, with_videos
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.payload import build_body, gemini_video

_FILE_ID = re.compile(r"files/([a-z0-9]+)")


def parse_operation(operation: dict[str, Any]) -> OperationStatus:
    """Read a Gemini API operation: running, failed, safety-blocked, or done with a video."""
    if (status := running_or_failed(operation)) is not None:
        return status
    result = (operation.get("response") or {}).get("generateVideoResponse") or {}
    samples = [
        Sample(ref=uri)
        for sample in result.get("generatedSamples") or []
        if (uri := (sample.get("video") or {}).get("uri"))
    ]
    return with_videos(result, samples)


class GeminiProvider:
    """Talks to `{base_url}/v1beta/...` with an `x-goog-api-key`."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        client: UpstreamHttp,
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
        return await self._client.call_json(method, url, self._headers, **kwargs)

    async def submit(self, model: str, request: VideoRequest[Image]) -> str:
        """POST models/{model}:predictLongRunning; returns the operation name."""
        url = f"{self._base}/v1beta/models/{model}:predictLongRunning"
        payload = build_body(request)
        if request.video is not None:
            payload["instances"][0]["video"] = gemini_video(request.video)
        body = await self._call("POST", url, json_body=payload)
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

    def download(self, video_ref: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Stream the video, by file id from our base URL, redirects followed by hand."""
        return self._client.stream(self.file_url(video_ref), self._headers)
