"""`AsyncClient`: the gateway's video API from asyncio code; the same methods as `Client`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from veo_gateway.client.common import (
    DEFAULT_MODEL,
    BytesCallback,
    ClientError,
    EtaTracker,
    ImageInput,
    ProgressCallback,
    Video,
    api_error,
    create_body,
    default_api_key,
    default_base_url,
    headers,
    list_page,
    list_params,
    network_error,
    no_listing_error,
    video_from_json,
)


async def _call(callback: Any, *args: Any) -> None:
    # Callbacks may be plain functions or coroutine functions.
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


class AsyncClient:
    """An asyncio client of one gateway, with one key. Close it, or use `async with`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or default_base_url()).rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers(api_key if api_key is not None else default_api_key()),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise network_error(self.base_url, exc) from exc
        if response.is_error:
            raise api_error(response)
        return response

    async def create(
        self,
        prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        image: ImageInput | None = None,
        last_frame: ImageInput | None = None,
        references: Sequence[ImageInput] = (),
        aspect_ratio: str | None = None,
        duration: int | None = None,
        resolution: str | None = None,
        negative_prompt: str | None = None,
        person_generation: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Video:
        """Start a video task; local image files are sent inline as data URIs."""
        # Reading and encoding local images is blocking file I/O: keep it off the loop.
        body = await asyncio.to_thread(
            create_body,
            prompt,
            model=model,
            image=image,
            last_frame=last_frame,
            references=references,
            aspect_ratio=aspect_ratio,
            duration=duration,
            resolution=resolution,
            negative_prompt=negative_prompt,
            person_generation=person_generation,
            metadata=metadata,
        )
        response = await self._request("POST", "/v1/videos", json=body)
        return video_from_json(response.json())

    async def extend(self, video_id: str, prompt: str, *, model: str = DEFAULT_MODEL) -> Video:
        """Start a task that extends the completed video `video_id` by 7 s (Veo 3.1)."""
        body = {"model": model, "prompt": prompt, "video": video_id}
        response = await self._request("POST", "/v1/videos", json=body)
        return video_from_json(response.json())

    async def get(self, video_id: str) -> Video:
        """The task's current status."""
        return video_from_json((await self._request("GET", f"/v1/videos/{video_id}")).json())

    async def delete(self, video_id: str) -> None:
        """Delete the task and its files on the gateway (a running one is cancelled)."""
        await self._request("DELETE", f"/v1/videos/{video_id}")

    async def list(self, limit: int | None = None) -> list[Video]:
        """The key's tasks, newest first: all of them, or the newest `limit`, a page at a time
        (`GET /v1/videos`)."""
        videos: list[Video] = []
        after: str | None = None
        while limit is None or len(videos) < limit:
            wanted = None if limit is None else limit - len(videos)
            try:
                response = await self._request(
                    "GET", "/v1/videos", params=list_params(after, wanted)
                )
            except ClientError as exc:
                if exc.status_code in (404, 405):
                    raise no_listing_error(self.base_url, exc.status_code) from exc
                raise
            page, after = list_page(response.json())
            videos.extend(page)
            if after is None:
                break
        return videos

    async def wait(
        self,
        video_id: str,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = 2.0,
    ) -> Video:
        """Poll until the task is completed or failed, calling `on_progress` with each status.

        `on_progress` may be a coroutine function. A failed task is returned, not raised. To
        bound the wait, wrap the call in `asyncio.timeout(...)`.
        """
        tracker = EtaTracker()
        while True:
            video = tracker.update(await self.get(video_id))
            if on_progress is not None:
                await _call(on_progress, video)
            if video.done:
                return video
            await asyncio.sleep(poll_interval)

    async def download(
        self,
        video_id: str,
        path: str | os.PathLike[str],
        *,
        on_bytes: BytesCallback | None = None,
        index: int = 0,
    ) -> Path:
        """Stream the finished MP4 (sample `index` of `sample_count`) to `path`, through a
        temporary file renamed at the end."""
        target = Path(path)
        partial = target.with_name(f".{target.name}.part")
        try:
            # follow_redirects: with CONTENT_REDIRECT the gateway hands the download to its
            # object store (httpx drops the key on the way to another origin).
            async with self._http.stream(
                "GET",
                f"/v1/videos/{video_id}/content",
                params={"index": index} if index else None,
                follow_redirects=True,
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise api_error(response)
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                        done += len(chunk)
                        if on_bytes is not None:
                            await _call(on_bytes, done, total)
            if total is not None and done != total:
                raise ClientError(f"download of {video_id} cut off at {done} of {total} bytes")
            partial.replace(target)
        except httpx.HTTPError as exc:
            raise network_error(self.base_url, exc) from exc
        except OSError as exc:
            raise ClientError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return target
