"""The Vertex AI adapter: predictLongRunning, fetchPredictOperation, inline or GCS results."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from veo_gateway.config import UpstreamConfig
from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.errors import UpstreamError
from veo_gateway.providers.base import OperationStatus, Sample, running_or_failed, with_videos
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.payload import build_body, vertex_video

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
GCS_BASE_URL = "https://storage.googleapis.com"
_OPERATION_MODEL = re.compile(r"/models/([^/]+)/operations/")
_GCS_URI = re.compile(r"gs://([^/]+)/(.+)")
# Refresh a token this long before it expires, so no call goes out with a dying one.
_REFRESH_MARGIN = datetime.timedelta(minutes=5)


class TokenSource(Protocol):
    """Where OAuth access tokens for Vertex come from."""

    async def token(self) -> str:
        """A valid access token."""
        ...


class StaticToken:
    """A token handed over by the operator (`access_token` in the config)."""

    def __init__(self, value: str) -> None:
        self._value = value

    async def token(self) -> str:
        return self._value


class GoogleAuthTokens:
    """Tokens from google-auth (a service-account file, or Application Default Credentials),
    cached and refreshed shortly before they expire. Refreshing blocks, so it runs in a thread."""

    def __init__(self, service_account_file: Path | None) -> None:
        self._file = service_account_file
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    def _load_and_refresh(self) -> str:
        import google.auth
        import google.auth.transport.requests
        from google.oauth2 import service_account

        if self._credentials is None:
            if self._file is not None:
                self._credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                    str(self._file), scopes=SCOPES
                )
            else:
                self._credentials, _ = google.auth.default(scopes=SCOPES)
        expiry = self._credentials.expiry
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        if not self._credentials.valid or (expiry is not None and expiry - now < _REFRESH_MARGIN):
            self._credentials.refresh(google.auth.transport.requests.Request())
        return str(self._credentials.token)

    async def token(self) -> str:
        async with self._lock:
            try:
                return await asyncio.to_thread(self._load_and_refresh)
            except Exception as exc:  # google-auth raises many kinds; all mean "no token"
                raise UpstreamError(
                    f"no Vertex AI access token: {exc}",
                    code=401,
                    status="UNAUTHENTICATED",
                    retryable=False,
                ) from exc


def token_source_for(upstream: UpstreamConfig) -> TokenSource:
    """The token source an upstream's config asks for."""
    if upstream.access_token:
        return StaticToken(upstream.access_token)
    return GoogleAuthTokens(upstream.service_account_file)


# Locations served by a multi-region host rather than `{location}-aiplatform` (as in the SDK).
_MULTI_REGIONS = frozenset({"us", "eu"})


def vertex_base_url(location: str, base_url: str | None = None) -> str:
    """Where Vertex AI is reached for `location`, by the google-genai SDK's rule: `global` at
    aiplatform.googleapis.com, `us`/`eu` at their multi-region hosts, others regional; a
    configured base URL wins."""
    if base_url:
        return base_url.rstrip("/")
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in _MULTI_REGIONS:
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def parse_vertex_operation(operation: dict[str, Any]) -> OperationStatus:
    """Read a Vertex operation: running, failed, safety-blocked, inline bytes or a GCS URI."""
    if (status := running_or_failed(operation)) is not None:
        return status
    result = operation.get("response") or {}
    samples = []
    for video in result.get("videos") or []:
        if uri := video.get("gcsUri"):
            samples.append(Sample(ref=str(uri)))
        elif encoded := video.get("bytesBase64Encoded"):
            try:
                samples.append(Sample(data=base64.b64decode(encoded)))
            except (binascii.Error, ValueError):
                return OperationStatus(done=True, error="the upstream sent undecodable video bytes")
    return with_videos(result, samples)


class VertexProvider:
    """Talks to `{location}-aiplatform.googleapis.com` (or a configured base URL)."""

    def __init__(
        self,
        *,
        project: str,
        location: str,
        tokens: TokenSource,
        client: UpstreamHttp,
        base_url: str | None = None,
        storage_uri: str | None = None,
        name: str = "vertex",
    ) -> None:
        self.name = name
        base = vertex_base_url(location, base_url)
        self._models = f"{base}/v1/projects/{project}/locations/{location}/publishers/google/models"
        self._storage_base = (base_url or GCS_BASE_URL).rstrip("/")
        self._storage_uri = storage_uri
        self._tokens = tokens
        self._client = client

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self._tokens.token()}"}

    async def submit(self, model: str, request: VideoRequest[Image]) -> str:
        """POST models/{model}:predictLongRunning; returns the operation name."""
        body = build_body(request)
        if request.video is not None:
            body["instances"][0]["video"] = vertex_video(request.video)
        if self._storage_uri:
            body.setdefault("parameters", {}).setdefault("storageUri", self._storage_uri)
        url = f"{self._models}/{model}:predictLongRunning"
        reply = await self._client.call_json("POST", url, await self._headers(), json_body=body)
        name = reply.get("name")
        if not isinstance(name, str) or not name:
            raise UpstreamError("the upstream accepted the job but returned no operation name")
        return name

    async def poll(self, operation_name: str) -> OperationStatus:
        """POST models/{model}:fetchPredictOperation with the operation's name."""
        match = _OPERATION_MODEL.search(operation_name)
        if match is None:
            raise UpstreamError(f"not a Vertex operation name: {operation_name!r}", retryable=False)
        url = f"{self._models}/{match.group(1)}:fetchPredictOperation"
        reply = await self._client.call_json(
            "POST", url, await self._headers(), json_body={"operationName": operation_name}
        )
        return parse_vertex_operation(reply)

    def download(self, video_ref: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Stream a `gs://bucket/object` result through the GCS JSON API."""
        return self._download(self.gcs_url(video_ref))

    @asynccontextmanager
    async def _download(self, url: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._client.stream(url, await self._headers()) as chunks:
            yield chunks

    def gcs_url(self, video_ref: str) -> str:
        """The JSON API media URL of a `gs://` URI."""
        match = _GCS_URI.fullmatch(video_ref)
        if match is None:
            raise UpstreamError(f"not a gs:// URI: {video_ref[:200]!r}", retryable=False)
        bucket, obj = match.groups()
        return f"{self._storage_base}/storage/v1/b/{bucket}/o/{quote(obj, safe='')}?alt=media"
