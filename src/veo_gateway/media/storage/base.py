"""The storage protocol: what the worker, the sweeper and the API hold (see the package)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Makes a JPEG (second path) from a video file (first path), in a thread; raises
# FileNotFoundError when the video is gone.
MakeStill = Callable[[Path, Path], None]
# Checks a downloaded video, whole, before it is stored under its final name (in a thread).
CheckVideo = Callable[[Path], None]


class Blob(Protocol):
    """Something stored, opened for reading: its size, validators, and its bytes by range."""

    size: int

    @property
    def etag(self) -> str:
        """A strong validator, quoted (RFC 9110)."""
        ...

    @property
    def last_modified(self) -> str:
        """An HTTP date."""
        ...

    def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes `[start, end)`, a chunk at a time."""
        ...

    def close(self) -> None:
        """Let go of what was opened (idempotent)."""
        ...


@dataclass(frozen=True)
class Health:
    """What /readyz and the metrics say of the storage: a problem (None: ready) and, for a
    filesystem, its free space and floor (None for an object store, which has no such thing)."""

    problem: str | None
    free_bytes: int | None = None
    min_free_bytes: int | None = None


class Storage(Protocol):
    """Inputs by task and name, a task's videos (one per sample), and JPEGs made from them."""

    @property
    def description(self) -> str:
        """Where things are kept, for the start-up log (names no secret)."""
        ...

    @property
    def signs_urls(self) -> bool:
        """Whether `signed_url` gives URLs (for the start-up log of the redirect mode)."""
        ...

    async def prepare(self) -> None:
        """Get ready at start-up (create directories); raises StorageUnavailable."""
        ...

    async def health(self) -> Health:
        """Whether new things can be stored now (writable, reachable, room left)."""
        ...

    def free_bytes(self) -> int | None:
        """Bytes free for new files (a quick measure), or None where there is no such thing."""
        ...

    def has_room(self) -> bool:
        """True unless a free-space floor is reached (new files may be started)."""
        ...

    def space_problem(self) -> str | None:
        """Why new work is refused for lack of space (for operators), or None."""
        ...

    def check_space(self) -> None:
        """Raise InsufficientStorage when under the free-space floor."""
        ...

    async def sweep_leftovers(self, *, worker_stopped: bool) -> int:
        """Remove what a process killed mid-write left behind; returns how many."""
        ...

    async def save_input(self, task_id: str, name: str, data: bytes) -> str:
        """Store one input durably; returns the name to read it back with."""
        ...

    async def read_input(self, task_id: str, name: str) -> bytes:
        """The bytes of a stored input."""
        ...

    async def delete_inputs(self, task_id: str) -> None:
        """Remove every input of a task (idempotent)."""
        ...

    async def inputs_bytes(self) -> int:
        """Bytes of every stored input (for an occasional measure)."""
        ...

    async def save_video(
        self,
        task_id: str,
        chunks: AsyncIterator[bytes],
        check: CheckVideo | None = None,
        *,
        index: int = 0,
    ) -> tuple[str, int]:
        """Stream sample `index` of a task's videos in; (its reference, its size). It appears
        under its final name only once complete (and accepted by `check`); whatever raises,
        nothing is left under it."""
        ...

    async def copy_video(self, task_id: str, uri: str, *, index: int = 0) -> tuple[str, int] | None:
        """Store the object at `uri` (an upstream's result, e.g. Vertex AI's `gs://` with
        storageUri) as sample `index` of the task's video by a copy inside the store, when it
        is in this store's bucket: (its reference, its size). None when it is not (or this
        backend has no bucket): the caller downloads it through the upstream as usual."""
        ...

    async def delete_video(self, task_id: str) -> None:
        """Remove every sample of a task's video and every JPEG made from them (idempotent)."""
        ...

    async def open_video(self, ref: str) -> Blob:
        """The video `save_video` stored as `ref`; FileNotFoundError when it is gone."""
        ...

    async def open_still(self, task_id: str, ref: str, variant: str, make: MakeStill) -> Blob:
        """The JPEG `variant` of the video `ref`, made by `make` on first request and kept;
        FileNotFoundError when the video is gone (no JPEG outlives its video)."""
        ...

    def gcs_uri(self, ref: str) -> str | None:
        """The `gs://` URI of the stored video `ref` when this store is a Cloud Storage bucket
        (what Vertex AI may be sent to read it in place), else None."""
        ...

    async def signed_url(self, ref: str, seconds: float) -> str | None:
        """A URL valid for `seconds` that lets anyone GET the video `ref` straight from the
        store (it names no secret), or None when this backend has no such thing."""
        ...
