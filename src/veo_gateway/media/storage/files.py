"""Local blob storage: task inputs and finished videos, written atomically (temp file + rename).

A full disk is not an internal error: every write that fails for lack of space (ENOSPC, EDQUOT)
raises `InsufficientStorage`, and under the free-space floor (`min_free_bytes`) no new file is
started at all, so the database and the writes under way keep some room.

What it stored is read through an `OpenedFile`: opened before the first byte is sent and read
through that open file to the end, so the retention sweep, which may delete it at any moment,
cannot cut a download short (an open file outlives its name).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from veo_gateway.media.storage.base import CheckVideo, Health, MakeStill
from veo_gateway.media.storage.space import (
    TEMP_PREFIX,
    describe_bytes,
    out_of_space,
    space_errors,
)

# Temp files of other processes (an input being stored, a JPEG being made) are only swept once
# they are this old: no live write takes anywhere near as long.
STALE_TEMP_SECONDS = 3600.0
CHUNK_BYTES = 64 * 1024


def _write_file(path: Path, data: bytes) -> None:
    with space_errors():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class OpenedFile:
    """A regular file held open, with the size and time it had when opened (a `Blob`)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        info = os.fstat(file.fileno())
        self.size = info.st_size
        self.mtime = info.st_mtime
        self.regular = stat.S_ISREG(info.st_mode)

    @classmethod
    async def open(cls, path: Path) -> OpenedFile:
        """Open `path`; FileNotFoundError when it is gone or is not a regular file."""
        try:
            opened = cls(await anyio.to_thread.run_sync(_open_binary, path))
        except IsADirectoryError:
            raise FileNotFoundError(path) from None
        if not opened.regular:
            opened.close()
            raise FileNotFoundError(path)
        return opened

    @property
    def etag(self) -> str:
        """Of the time and size (as Starlette's FileResponse makes it)."""
        base = f"{self.mtime}-{self.size}".encode()
        return f'"{hashlib.md5(base, usedforsecurity=False).hexdigest()}"'

    @property
    def last_modified(self) -> str:
        """The file's modification time, as an HTTP date."""
        return formatdate(self.mtime, usegmt=True)

    async def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes `[start, end)`, a chunk at a time."""
        fd = self._file.fileno()
        while start < end:
            chunk = await anyio.to_thread.run_sync(
                os.pread, fd, min(CHUNK_BYTES, end - start), start
            )
            if not chunk:
                raise OSError(f"{self._file.name} is shorter than the {self.size} bytes it had")
            start += len(chunk)
            yield chunk

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def _open_binary(path: Path) -> BinaryIO:
    return path.open("rb")


class LocalStorage:
    """Files under two directories: `inputs/{task}/...` and `videos/{task}.mp4`."""

    def __init__(self, inputs_dir: Path, videos_dir: Path, *, min_free_bytes: int = 0) -> None:
        self.inputs_dir = inputs_dir
        self.videos_dir = videos_dir
        self.min_free_bytes = min_free_bytes

    @property
    def description(self) -> str:
        """The directories, for the start-up log."""
        return f"files: inputs in {self.inputs_dir}, videos in {self.videos_dir}"

    @property
    def signs_urls(self) -> bool:
        """No: files are served by the gateway."""
        return False

    async def prepare(self) -> None:
        """Create the directories (called once at start-up)."""
        self.inputs_dir.mkdir(parents=True, exist_ok=True)
        self.videos_dir.mkdir(parents=True, exist_ok=True)

    async def health(self) -> Health:
        """Writable, with more free space than the floor."""
        writable = await anyio.to_thread.run_sync(os.access, self.videos_dir, os.W_OK)
        free = await anyio.to_thread.run_sync(self.free_bytes)
        problem = self.space_problem(free) if writable else f"{self.videos_dir} is not writable"
        return Health(problem, free_bytes=free, min_free_bytes=self.min_free_bytes)

    def free_bytes(self) -> int:
        """Bytes free to this process on the fuller of the filesystems holding the inputs and
        the videos (one statvfs each: cheap enough to ask before every new file)."""
        free = []
        for directory in (self.inputs_dir, self.videos_dir):
            while not directory.exists() and directory != directory.parent:
                directory = directory.parent
            stat = os.statvfs(directory)
            free.append(stat.f_bavail * stat.f_frsize)
        return min(free)

    def has_room(self) -> bool:
        """True while the free space is above the floor (new files may be started)."""
        return self.free_bytes() > self.min_free_bytes

    def space_problem(self, free: int | None = None) -> str | None:
        """Why new work is refused (free space and floor, for operators), or None; `free` is
        the free space when the caller has just measured it."""
        free = self.free_bytes() if free is None else free
        if free > self.min_free_bytes:
            return None
        return (
            f"out of storage space: {describe_bytes(free)} ({free} bytes) free under "
            f"{self.inputs_dir.parent}, at or below the floor of "
            f"{describe_bytes(self.min_free_bytes)} (VEO_GATEWAY_MIN_FREE_BYTES)"
        )

    def check_space(self) -> None:
        """Raise InsufficientStorage when the free space is at or under the floor."""
        if not self.has_room():
            raise out_of_space()

    async def sweep_leftovers(self, *, worker_stopped: bool) -> int:
        """Remove temp files left by a process killed mid-write (see `sweep_temp_files`)."""
        return await asyncio.to_thread(self.sweep_temp_files, worker_stopped=worker_stopped)

    def sweep_temp_files(self, *, worker_stopped: bool) -> int:
        """Remove temp files left by a process killed mid-write; returns how many.

        Videos are only downloaded by the worker, so with `worker_stopped` (the caller holds
        the worker lock, no other worker is alive) every video temp file is a leftover. Other
        temp files (inputs, JPEGs) may belong to a live process's request: only stale ones go.
        """
        now = time.time()
        removed = 0
        candidates = [*self.videos_dir.glob(TEMP_PREFIX + "*")]
        candidates += self.inputs_dir.glob(f"*/{TEMP_PREFIX}*")
        for path in candidates:
            try:
                mine = worker_stopped and path.parent == self.videos_dir and path.suffix == ".mp4"
                if mine or now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished (renamed) or removed meanwhile
        return removed

    def _input_path(self, task_id: str, name: str) -> Path:
        return self.inputs_dir / task_id / name

    async def save_input(self, task_id: str, name: str, data: bytes) -> str:
        """Store one input file durably; returns the name to read it back with."""
        await asyncio.to_thread(_write_file, self._input_path(task_id, name), data)
        return name

    async def read_input(self, task_id: str, name: str) -> bytes:
        """The bytes of a stored input file."""
        return await asyncio.to_thread(self._input_path(task_id, name).read_bytes)

    async def delete_inputs(self, task_id: str) -> None:
        """Remove every input of a task (after a failed create, or by retention)."""
        await asyncio.to_thread(shutil.rmtree, self.inputs_dir / task_id, True)

    def derived_path(self, task_id: str, variant: str, suffix: str) -> Path:
        """Where a file made from a task's video (a thumbnail, a spritesheet) is kept."""
        return self.videos_dir / f"{task_id}.{variant}{suffix}"

    async def open_video(self, ref: str) -> OpenedFile:
        """The video at path `ref`, opened (FileNotFoundError when gone)."""
        return await OpenedFile.open(Path(ref))

    async def open_still(self, task_id: str, ref: str, variant: str, make: MakeStill) -> OpenedFile:
        """The JPEG beside the video, made on first request."""
        video = Path(ref)
        out = self.derived_path(task_id, variant, ".jpg")
        if not await anyio.Path(out).exists():
            self.check_space()  # 507 under the free-space floor
            await anyio.to_thread.run_sync(make, video, out)
            if not await anyio.Path(video).exists():
                # The video was deleted while the JPEG was made: the JPEG must not outlive it.
                await anyio.Path(out).unlink(missing_ok=True)
                raise FileNotFoundError(video)
        return await OpenedFile.open(out)

    async def signed_url(self, ref: str, seconds: float) -> str | None:
        """None: a file has no URL of its own; it is served by the gateway."""
        return None

    def gcs_uri(self, ref: str) -> str | None:
        """None: a file is in no bucket; Vertex AI is sent its bytes."""
        return None

    async def copy_video(self, task_id: str, uri: str, *, index: int = 0) -> tuple[str, int] | None:
        """None: no upstream writes into a local directory; its video is downloaded."""
        return None

    async def delete_video(self, task_id: str) -> None:
        """Remove a task's video and every file made from it (idempotent).

        The video goes first: a thumbnail being made at the same moment checks that the video
        is still there after writing its JPEG, so no derived file outlives the video.
        """

        def remove() -> None:
            self.video_path(task_id).unlink(missing_ok=True)
            for path in self.videos_dir.glob(f"{task_id}.*"):
                path.unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def inputs_bytes(self) -> int:
        """Bytes of every stored input file (a directory walk: for an occasional measure)."""

        def measure() -> int:
            total = 0
            with contextlib.suppress(FileNotFoundError), os.scandir(self.inputs_dir) as tasks:
                for task in tasks:
                    if not task.is_dir(follow_symlinks=False):
                        continue
                    # A task's directory may vanish while it is read (DELETE, retention).
                    with contextlib.suppress(FileNotFoundError), os.scandir(task.path) as files:
                        for entry in files:
                            with contextlib.suppress(FileNotFoundError):
                                if entry.is_file(follow_symlinks=False):
                                    total += entry.stat(follow_symlinks=False).st_size
            return total

        return await asyncio.to_thread(measure)

    def video_path(self, task_id: str, index: int = 0) -> Path:
        """Where sample `index` of a task's video is (or will be) stored (beside the first,
        so `delete_video`'s `{task}.*` takes every sample)."""
        return self.videos_dir / (f"{task_id}.mp4" if index == 0 else f"{task_id}.{index}.mp4")

    async def save_video(
        self,
        task_id: str,
        chunks: AsyncIterator[bytes],
        check: CheckVideo | None = None,
        *,
        index: int = 0,
    ) -> tuple[str, int]:
        """Stream a video into storage; it appears under its final name only when complete
        (and, with `check`, once `check` accepted the temp file: run in a thread).

        Raises InsufficientStorage under the free-space floor (before anything is written) or
        when the disk fills up on the way; whatever raises, the temp file is removed.
        """
        final = self.video_path(task_id, index)
        self.check_space()
        with space_errors():
            path, size = await self._save_video(final, chunks, check)
        return str(path), size

    async def _save_video(
        self,
        final: Path,
        chunks: AsyncIterator[bytes],
        check: CheckVideo | None,
    ) -> tuple[Path, int]:
        self.videos_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.videos_dir, prefix=TEMP_PREFIX, suffix=".mp4")
        tmp = Path(tmp_name)
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                async for chunk in chunks:
                    # Local disk writes of a chunk are short; a thread hop per chunk would cost
                    # more than the write itself.
                    handle.write(chunk)
                    size += len(chunk)
                handle.flush()
                await asyncio.to_thread(os.fsync, handle.fileno())
            if check is not None:
                await asyncio.to_thread(check, tmp)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return final, size
