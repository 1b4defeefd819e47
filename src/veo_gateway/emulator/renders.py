"""The renders behind operations: one per operation ("each"), or one per output shape ("once").

Renders run in worker threads, a few at a time. With ``render="once"`` the first operation of a
shape (model, size, duration, audio) starts its render and every later one shares that file, so
a benchmark's upstream costs next to no CPU; that video shows the shape, never a prompt or an
image, since it is served to every credential.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread

from veo_gateway.emulator.google_rules import Output
from veo_gateway.emulator.render import RenderCancelled, RenderSpec, frame_size, render_video
from veo_gateway.emulator.submission import Submission
from veo_gateway.emulator.text import Fonts

logger = logging.getLogger(__name__)

RenderMode = Literal["each", "once"]
# What makes two operations' videos interchangeable in "once" mode.
Shape = tuple[str, int, int, int, bool]  # model, width, height, seconds, audio
_SHARED_DIR = "once"


@dataclass
class Render:
    """One video rendered to `path`: by its own operation, or shared by many in "once" mode."""

    path: Path
    task: asyncio.Task[None] | None = None  # None: rendered by an earlier run (the file exists)
    error: str | None = None  # why the render failed, once it has
    finished_at: float | None = None  # time.monotonic() when the render ended, if it has

    @property
    def shared(self) -> bool:
        """True for a "once" render, which many operations use."""
        return self.path.parent.name == _SHARED_DIR

    def done(self) -> bool:
        """True once the render has ended, well or not."""
        return self.task is None or self.task.done()


class Renderer:
    """Starts, shares and stops the renders of one emulator app."""

    def __init__(
        self,
        *,
        storage_dir: Path,
        fps: int,
        max_concurrent_renders: int = 2,
        mode: RenderMode = "each",
    ) -> None:
        self._storage_dir = storage_dir
        self._fps = fps
        self._mode = mode
        self._semaphore = asyncio.Semaphore(max_concurrent_renders)
        # Set at shutdown: a render in its thread checks it between frames and stops.
        self._stopping = threading.Event()
        self._shared: dict[Shape, Render] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._fonts = Fonts()  # chosen once; warns once of characters it cannot draw
        self.count = 0  # renders started by this app

    def spec(self, submission: Submission, output: Output) -> RenderSpec:
        """What a judged submission's video is rendered from."""
        width, height = frame_size(output.aspect_ratio, output.resolution)
        return RenderSpec(
            prompt=submission.prompt,
            width=width,
            height=height,
            seconds=output.seconds,
            fps=self._fps,
            audio=output.audio,
            first_image=None if submission.image is None else submission.image.data,
            last_image=None if submission.last_frame is None else submission.last_frame.data,
            reference_images=tuple(ref.image.data for ref in submission.references),
            label=submission.model,
            source_video=None if submission.video is None else submission.video.data,
        )

    def path_for(self, spec: RenderSpec, name: str) -> Path:
        """Where operation `name`'s video is (or will be) rendered."""
        if self._mode == "once" and spec.source_video is None:
            return self._shared_path(spec)
        return self._storage_dir / f"{name}.mp4"

    def start(
        self, spec: RenderSpec, name: str, after: Callable[[str | None], None] | None = None
    ) -> Render:
        """The render of operation `name`'s video: started now, or the shared one of its shape.

        `after` runs in the render's thread once an operation's own render ends, with the
        error (or None); shared renders take none, since no one operation owns them.
        """
        # An extension is its own source's continuation: never one video of a shape.
        if self._mode == "once" and spec.source_video is None:
            return self.shared(spec)
        return self._start(spec, self.path_for(spec, name), name, after)

    def shared(self, spec: RenderSpec) -> Render:
        """The one render of `spec`'s shape, started by the first operation that needs it."""
        shape: Shape = (spec.label, spec.width, spec.height, spec.seconds, spec.audio)
        render = self._shared.get(shape)
        if render is not None and render.error is None:
            return render
        path = self._shared_path(spec)
        if path.is_file():  # rendered by an earlier run on this storage
            render = self.existing(path)
        else:
            neutral = dataclasses.replace(
                spec,
                prompt=f"{spec.seconds} s, {spec.width}x{spec.height}: one video for every "
                "operation of this shape (render=once)",
                first_image=None,
                last_image=None,
                reference_images=(),
            )
            render = self._start(neutral, path, f"once-{path.stem}", None)
        self._shared[shape] = render
        return render

    def _shared_path(self, spec: RenderSpec) -> Path:
        name = f"{spec.label}-{spec.width}x{spec.height}-{spec.seconds}s"
        return self._storage_dir / _SHARED_DIR / f"{name}{'-audio' if spec.audio else ''}.mp4"

    def existing(self, path: Path) -> Render:
        """A render an earlier run finished, its file at `path`."""
        offset = time.monotonic() - time.time()
        return Render(path, finished_at=path.stat().st_mtime + offset)

    def resume(
        self, spec: RenderSpec, path: Path, name: str, after: Callable[[str | None], None]
    ) -> Render:
        """Render again what an earlier run did not finish (each mode: to the same path)."""
        if path.parent.name == _SHARED_DIR:
            return self.shared(spec)
        return self._start(spec, path, name, after)

    def _start(
        self, spec: RenderSpec, path: Path, name: str, after: Callable[[str | None], None] | None
    ) -> Render:
        render = Render(path)
        render.task = asyncio.create_task(
            self._render(render, spec, name, after), name=f"emulator-render-{name}"
        )
        self._running.add(render.task)
        render.task.add_done_callback(self._running.discard)
        self.count += 1
        return render

    async def _render(
        self,
        render: Render,
        spec: RenderSpec,
        name: str,
        after: Callable[[str | None], None] | None,
    ) -> None:
        async with self._semaphore:
            try:
                await anyio.to_thread.run_sync(self._run, spec, render, name, after)
            finally:
                render.finished_at = time.monotonic()

    def _run(
        self,
        spec: RenderSpec,
        render: Render,
        name: str,
        after: Callable[[str | None], None] | None,
    ) -> None:
        try:
            render_video(spec, render.path, self._stopping, self._fonts)
        except RenderCancelled:
            raise
        # Any render failure (a corrupt image, FFmpeg, the disk) must end the operation
        # with an error, as Google's would, rather than leave it running forever.
        except Exception as exc:
            logger.exception("emulator: render of %s failed", name)
            render.error = f"Video generation failed: {exc} (emulated)."
        if after is not None:
            after(render.error)

    async def aclose(self) -> None:
        """Stop renders in progress and wait for their threads.

        Renders are not cancelled from here: a cancelled task would stop waiting while its
        thread still writes. The event makes each render stop at its next frame instead (and
        those still queued stop before their first), so this returns within a frame or two.
        """
        self._stopping.set()
        await asyncio.gather(*self._running, return_exceptions=True)


def spec_record(spec: RenderSpec) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A spec as JSON, and its images by role ("first", "last", "ref0", ...)."""
    images = {
        role: data
        for role, data in (("first", spec.first_image), ("last", spec.last_image))
        if data is not None
    }
    images.update({f"ref{i}": data for i, data in enumerate(spec.reference_images)})
    if spec.source_video is not None:
        images["source"] = spec.source_video
    fields = {
        "prompt": spec.prompt,
        "width": spec.width,
        "height": spec.height,
        "seconds": spec.seconds,
        "fps": spec.fps,
        "audio": spec.audio,
        "label": spec.label,
        "references": len(spec.reference_images),
    }
    return fields, images


def spec_from_record(fields: dict[str, Any], images: dict[str, bytes]) -> RenderSpec:
    """The spec `spec_record` wrote (an image lost since is left out)."""
    references = tuple(
        images[f"ref{i}"] for i in range(int(fields["references"])) if f"ref{i}" in images
    )
    return RenderSpec(
        prompt=str(fields["prompt"]),
        width=int(fields["width"]),
        height=int(fields["height"]),
        seconds=int(fields["seconds"]),
        fps=int(fields["fps"]),
        audio=bool(fields["audio"]),
        first_image=images.get("first"),
        last_image=images.get("last"),
        reference_images=references,
        label=str(fields["label"]),
        source_video=images.get("source"),
    )
