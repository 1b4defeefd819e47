"""Object storage (S3 and S3-compatible stores, Google Cloud Storage) through obstore.

Layout under the URL's prefix, one "directory" per task so a task's objects are listed at once:

    inputs/{task}/{name}          the request's images
    videos/{task}/video.mp4       the finished video (its first sample)
    videos/{task}/video-{n}.mp4   its other samples, n from 1
    videos/{task}/{variant}.jpg   a thumbnail or spritesheet made from it

A video an upstream already wrote to this store's bucket (Vertex AI's results with `storageUri`
on a route whose storage is `gs://` of the same bucket) is copied inside the store instead
(`copy_video`): no byte of it passes through the gateway. The upstream's own object is left
where it wrote it (under the upstream's prefix: the operator's lifecycle rule for it applies).

A video is streamed from the upstream into a multipart upload that is completed only once the
last byte is in and the video was found whole, so no reader ever sees part of one: a process
killed mid-upload leaves an unfinished upload (invisible, and removed by the bucket's lifecycle
rule for incomplete multipart uploads), never an object under the final key. Reads are ranged
GETs, a window at a time, so memory stays flat however large the video and however slow the
client. There is no free space to run out of: the floor and the 507s belong to the file backend.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import obstore
from obstore.exceptions import (
    BaseError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from obstore.store import GCSStore, S3Store

from veo_gateway.errors import StorageUnavailable
from veo_gateway.media.storage.base import CheckVideo, Health, MakeStill
from veo_gateway.media.storage.space import TEMP_PREFIX, space_errors

if TYPE_CHECKING:
    from obstore import ObjectMeta

log = logging.getLogger("veo_gateway.storage")

# Bytes of one ranged GET while a video is served: each window is its own short request (the
# client's pace cannot stretch one past the store client's request timeout).
WINDOW_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
# A multipart upload's part, and how many are in flight: at most this much of a video is in
# memory while it is uploaded.
PART_BYTES = 5 * 1024 * 1024
PART_CONCURRENCY = 3
STALE_SCRATCH_SECONDS = 3600.0
_VIDEO_SCRATCH = TEMP_PREFIX + "video-"
# What a copy from an upstream's object may meet that a download through the upstream may not
# (it reads with the upstream's own credentials).
_UNREADABLE = (FileNotFoundError, NotFoundError, PermissionDeniedError, UnauthenticatedError)

SignableStore = S3Store | GCSStore


def _short(exc: BaseException) -> str:
    """An obstore error in one line (its messages run to a dozen, with a debug dump)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}"


@contextlib.contextmanager
def _reachable(what: str, *, writing: bool = False) -> Iterator[None]:
    """Turn the store's own errors into StorageUnavailable. FileNotFoundError passes (no such
    object), except `writing`: a write told "not found" has no bucket to write to."""
    try:
        yield
    except FileNotFoundError as exc:
        if not writing:
            raise
        log.warning("object storage: could not %s (no such bucket: %s)", what, _short(exc))
        raise StorageUnavailable() from exc
    except BaseError as exc:
        log.warning("object storage: could not %s (%s)", what, _short(exc))
        raise StorageUnavailable() from exc


class StoredObject:
    """An object as it was when opened (a `Blob`): read by ranged GETs of that version only."""

    def __init__(self, store: SignableStore, key: str, meta: ObjectMeta) -> None:
        self._store = store
        self._key = key
        self.size = int(meta["size"])
        self._etag = meta["e_tag"]
        self._modified = meta["last_modified"]

    @classmethod
    async def open(cls, store: SignableStore, key: str) -> StoredObject:
        """Its metadata now; FileNotFoundError when there is no such object."""
        with _reachable(f"read {key}"):
            return cls(store, key, await obstore.head_async(store, key))

    @property
    def etag(self) -> str:
        """The store's own ETag (quoted), or one of the key, time and size."""
        if self._etag:
            return self._etag if self._etag.startswith('"') else f'"{self._etag}"'
        base = f"{self._key}-{self._modified.timestamp()}-{self.size}".encode()
        return f'"{hashlib.md5(base, usedforsecurity=False).hexdigest()}"'

    @property
    def last_modified(self) -> str:
        """The object's time, as an HTTP date."""
        return formatdate(self._modified.timestamp(), usegmt=True)

    async def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes `[start, end)`, a window per GET, each only of the version opened."""
        position = start
        while position < end:
            stop = min(end, position + WINDOW_BYTES)
            options: dict[str, Any] = {"range": (position, stop)}
            if self._etag:
                options["if_match"] = self._etag
            try:
                result = await obstore.get_async(self._store, self._key, options=options)  # type: ignore[arg-type]
                async for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
                    position += len(chunk)
                    yield chunk
            except (FileNotFoundError, BaseError) as exc:
                raise OSError(f"{self._key} could not be read on: {_short(exc)}") from exc
            if position < stop:
                raise OSError(f"{self._key} is shorter than the {self.size} bytes it had")

    def close(self) -> None:
        """Nothing is held between GETs."""


class ObjectStorage:
    """Inputs, videos and JPEGs as objects in one bucket, under one prefix."""

    def __init__(
        self,
        store: SignableStore,
        probe: SignableStore,
        url: str,
        scratch: Path,
        bucket: SignableStore | None = None,
    ) -> None:
        self._store = store
        # The same bucket without retries: a readiness check answers at once.
        self._probe = probe
        self._url = url
        self._scratch = scratch
        # The bucket itself, above the prefix: copies come from anywhere in it.
        self._bucket = bucket or store
        parts = urlsplit(url)
        self._bucket_url = f"{parts.scheme}://{parts.netloc}/"
        self._prefix = parts.path.strip("/")

    @classmethod
    def from_url(cls, url: str, scratch: Path) -> ObjectStorage:
        """`s3://bucket/prefix` (endpoint, region and credentials from the AWS_* variables) or
        `gs://bucket/prefix` (Application Default Credentials); `scratch`: a local directory
        for the files a check or a JPEG needs."""
        kind = S3Store if url.startswith("s3://") else GCSStore
        retries: Any = {"max_retries": 3, "retry_timeout": datetime.timedelta(seconds=30)}
        once: Any = {"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=5)}
        store = kind.from_url(url, retry_config=retries)
        probe = kind.from_url(url, retry_config=once)
        parts = urlsplit(url)
        bucket = kind.from_url(f"{parts.scheme}://{parts.netloc}", retry_config=retries)
        return cls(store, probe, url, scratch, bucket)

    @property
    def description(self) -> str:
        """The URL (it holds no credentials: those come from the environment)."""
        return f"object storage at {self._url}"

    @property
    def signs_urls(self) -> bool:
        """Yes: S3 and GCS presign GETs."""
        return True

    async def prepare(self) -> None:
        """Create the scratch directory; say at once when the bucket cannot be reached."""
        self._scratch.mkdir(parents=True, exist_ok=True)
        health = await self.health()
        if health.problem is not None:
            log.error("%s: nothing can be stored until it is reachable", health.problem)

    async def health(self) -> Health:
        """Reachable: the bucket answers a listing with these credentials."""
        try:
            await obstore.list_with_delimiter_async(self._probe, "videos")
        except BaseError as exc:
            return Health(f"{self._url} is unreachable ({_short(exc)})")
        return Health(None)

    def free_bytes(self) -> None:
        """None: an object store has no free space to measure."""
        return None

    def has_room(self) -> bool:
        """Always: an object store has no free-space floor."""
        return True

    def space_problem(self) -> str | None:
        """Never: an object store has no free-space floor."""
        return None

    def check_space(self) -> None:
        """Nothing to check: an object store has no free-space floor."""

    async def sweep_leftovers(self, *, worker_stopped: bool) -> int:
        """Remove scratch files left by a killed process (an unfinished multipart upload is
        the bucket lifecycle rule's to remove: it is no object, nobody can read it)."""

        def sweep() -> int:
            removed, now = 0, time.time()
            for path in self._scratch.glob(TEMP_PREFIX + "*"):
                try:
                    mine = worker_stopped and path.name.startswith(_VIDEO_SCRATCH)
                    if mine or now - path.stat().st_mtime > STALE_SCRATCH_SECONDS:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
            return removed

        return await anyio.to_thread.run_sync(sweep)

    # -- inputs -----------------------------------------------------------------------------

    async def save_input(self, task_id: str, name: str, data: bytes) -> str:
        """One PUT: an object appears whole or not at all."""
        with _reachable("store an input", writing=True):
            await obstore.put_async(self._store, f"inputs/{task_id}/{name}", data)
        return name

    async def read_input(self, task_id: str, name: str) -> bytes:
        """The bytes of a stored input."""
        with _reachable("read an input"):
            result = await obstore.get_async(self._store, f"inputs/{task_id}/{name}")
            return bytes(await result.bytes_async())

    async def delete_inputs(self, task_id: str) -> None:
        """Every object under `inputs/{task}/`."""
        await self._delete_under(f"inputs/{task_id}")

    async def inputs_bytes(self) -> int:
        """Bytes of every object under `inputs/` (a listing: for an occasional measure)."""
        total = 0
        with _reachable("list the inputs"):
            async for batch in obstore.list(self._store, "inputs", chunk_size=1000):
                total += sum(int(meta["size"]) for meta in batch)
        return total

    # -- videos -----------------------------------------------------------------------------

    @staticmethod
    def _video_key(task_id: str, index: int = 0) -> str:
        return f"videos/{task_id}/video{'' if index == 0 else f'-{index}'}.mp4"

    async def save_video(
        self,
        task_id: str,
        chunks: AsyncIterator[bytes],
        check: CheckVideo | None = None,
        *,
        index: int = 0,
    ) -> tuple[str, int]:
        """A multipart upload, completed once every chunk is in (and `check` accepted the
        copy kept in the scratch directory meanwhile); anything that raises aborts it."""
        key = self._video_key(task_id, index)
        size = 0

        async def counted(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in source:
                size += len(chunk)
                yield chunk

        with contextlib.ExitStack() as cleanup:
            body = counted(chunks)
            if check is not None:
                copy = self._scratch_file(_VIDEO_SCRATCH, ".mp4")
                cleanup.callback(copy.unlink, missing_ok=True)
                body = _checked(body, copy, check)
            with _reachable(f"store the video of {task_id}", writing=True):
                await obstore.put_async(
                    self._store,
                    key,
                    body,
                    chunk_size=PART_BYTES,
                    max_concurrency=PART_CONCURRENCY,
                )
        return key, size

    async def copy_video(self, task_id: str, uri: str, *, index: int = 0) -> tuple[str, int] | None:
        """A copy inside the bucket when `uri` names an object in this store's own bucket
        (same scheme and bucket: an upstream wrote it there); None for any other URI, or an
        object these credentials cannot read (the caller then downloads it as before)."""
        if not uri.startswith(self._bucket_url) or uri == self._bucket_url:
            return None
        source = uri.removeprefix(self._bucket_url)
        key = self._video_key(task_id, index)
        target = f"{self._prefix}/{key}" if self._prefix else key
        with _reachable(f"copy the video of {task_id}"):
            try:
                # One request: the object appears whole under the key, or not at all.
                await obstore.copy_async(self._bucket, source, target)
            except _UNREADABLE as exc:
                log.warning("object storage: no copy of %s (%s); downloading it", uri, _short(exc))
                return None
        with _reachable(f"read {key}"):
            meta = await obstore.head_async(self._store, key)
        return key, int(meta["size"])

    async def delete_video(self, task_id: str) -> None:
        """The video first, then what was made from it (a JPEG made meanwhile sees the video
        gone and deletes itself)."""
        key = self._video_key(task_id)
        with _reachable(f"delete the video of {task_id}"), contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, key)
        await self._delete_under(f"videos/{task_id}")

    async def open_video(self, ref: str) -> StoredObject:
        """The object `ref`, as it is now (a file path, left by file storage, is no object)."""
        if not ref.startswith("videos/"):
            raise FileNotFoundError(ref)
        return await StoredObject.open(self._store, ref)

    async def open_still(
        self, task_id: str, ref: str, variant: str, make: MakeStill
    ) -> StoredObject:
        """The JPEG's object; made on first request from a local copy of the video."""
        key = f"videos/{task_id}/{variant}.jpg"
        with contextlib.suppress(FileNotFoundError):
            return await StoredObject.open(self._store, key)
        video = await self.open_video(ref)
        with contextlib.ExitStack() as cleanup:
            local = self._scratch_file(TEMP_PREFIX, ".mp4")
            cleanup.callback(local.unlink, missing_ok=True)
            jpeg = self._scratch_file(TEMP_PREFIX, ".jpg")
            cleanup.callback(jpeg.unlink, missing_ok=True)
            with space_errors(), local.open("wb") as out:
                async for chunk in video.chunks(0, video.size):
                    await anyio.to_thread.run_sync(out.write, chunk)
            await anyio.to_thread.run_sync(make, local, jpeg)
            with _reachable(f"store the {variant} of {task_id}", writing=True):
                await obstore.put_async(self._store, key, jpeg)
        try:
            await StoredObject.open(self._store, ref)
        except FileNotFoundError:
            # The video was deleted while the JPEG was made: the JPEG must not outlive it.
            with _reachable(f"delete the {variant} of {task_id}"):
                await obstore.delete_async(self._store, key)
            raise
        return await StoredObject.open(self._store, key)

    def gcs_uri(self, ref: str) -> str | None:
        """`gs://bucket/prefix/ref` on Cloud Storage; None on S3 (Vertex AI reads GCS only)."""
        if not self._bucket_url.startswith("gs://"):
            return None
        return f"{self._bucket_url}{self._prefix}/{ref}" if self._prefix else self._bucket_url + ref

    async def signed_url(self, ref: str, seconds: float) -> str:
        """A presigned GET of `ref` (the signature is the credential; no secret is named)."""
        with _reachable("sign a URL"):
            return await obstore.sign_async(
                self._store, "GET", ref, datetime.timedelta(seconds=seconds)
            )

    # -- helpers ----------------------------------------------------------------------------

    def _scratch_file(self, prefix: str, suffix: str) -> Path:
        with space_errors():
            self._scratch.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._scratch, prefix=prefix, suffix=suffix)
            os.close(fd)
        return Path(name)

    async def _delete_under(self, prefix: str) -> None:
        with _reachable(f"delete {prefix}"):
            async for batch in obstore.list(self._store, prefix, chunk_size=1000):
                paths = [meta["path"] for meta in batch]
                with contextlib.suppress(FileNotFoundError):
                    await obstore.delete_async(self._store, paths)


async def _checked(
    chunks: AsyncIterator[bytes], copy: Path, check: CheckVideo
) -> AsyncIterator[bytes]:
    """`chunks`, written to `copy` on the way; once the last is through, `check` runs on the
    copy before the upload may complete (raising here aborts it)."""
    with space_errors(), copy.open("wb") as out:
        async for chunk in chunks:
            # Local disk writes of a chunk are short; a thread hop per chunk would cost more.
            out.write(chunk)
            yield chunk
    await anyio.to_thread.run_sync(check, copy)
