"""Local blob storage: task inputs and finished videos, written atomically (temp file + rename)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStorage:
    """Files under two directories: `inputs/{task}/...` and `videos/{task}.mp4`."""

    def __init__(self, inputs_dir: Path, videos_dir: Path) -> None:
        self.inputs_dir = inputs_dir
        self.videos_dir = videos_dir

    def prepare(self) -> None:
        """Create the directories (called once at start-up)."""
        self.inputs_dir.mkdir(parents=True, exist_ok=True)
        self.videos_dir.mkdir(parents=True, exist_ok=True)

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

    def video_path(self, task_id: str) -> Path:
        """Where the finished video of a task is (or will be) stored."""
        return self.videos_dir / f"{task_id}.mp4"

    async def save_video(self, task_id: str, chunks: AsyncIterator[bytes]) -> tuple[Path, int]:
        """Stream a video into storage; it appears under its final name only when complete."""
        final = self.video_path(task_id)
        self.videos_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.videos_dir, prefix=".tmp-", suffix=".mp4")
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
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return final, size
