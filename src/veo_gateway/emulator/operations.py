"""The emulator's long-running operations: their latency, their renders and their counters.

An operation is done when its latency has passed *and* its video is rendered. Renders run in
worker threads, a few at a time, started when the operation is created. With ``render="once"``
one render serves every operation of the same output shape (model, size, duration, audio): the
first such operation starts it, and later ones share its file, so a benchmark's upstream costs
next to no CPU.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import logging
import random
import secrets
import string
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread

from veo_gateway.domain.catalog import ModelCapabilities
from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.emulator import protocol
from veo_gateway.emulator.render import RenderCancelled, RenderSpec, frame_size, render_video
from veo_gateway.errors import NotFound

logger = logging.getLogger(__name__)

BLOCKED_MARKER = "[emulator:blocked]"
FAIL_MARKER = "[emulator:fail]"
_ID_ALPHABET = string.ascii_lowercase + string.digits

RenderMode = Literal["each", "once"]
# What makes two operations' videos interchangeable in "once" mode: model, width, height,
# seconds, audio.
Shape = tuple[str, int, int, int, bool]


class Outcome(enum.Enum):
    """How an operation ends."""

    VIDEO = "video"
    BLOCKED = "blocked"
    FAILED = "failed"


@dataclass
class Render:
    """One video rendered to `path`: by its own operation, or shared by many in "once" mode."""

    path: Path
    task: asyncio.Task[None] | None = None  # None: rendered before (the file exists)
    error: str | None = None  # why the render failed, once it has
    finished_at: float | None = None  # time.monotonic() when the render ended, if it has

    def done(self) -> bool:
        """True once the render has ended, well or not."""
        return self.task is None or self.task.done()


@dataclass
class Operation:
    """One predictLongRunning call and what became of it."""

    id: str
    model: str
    ready_at: float  # time.monotonic() after which the operation may report done
    outcome: Outcome
    owner: str = ""  # the credential (API key or token) that submitted it
    parent: str = ""  # the name's prefix: "models/{model}", or Vertex's longer path
    storage_uri: str | None = None  # Vertex: results go to gs://... instead of inline
    injected: str | None = None  # the fault injected into its outcome (fail, blocked), if any
    file_ids: tuple[str, ...] = ()
    render: Render | None = None
    created_at: float = field(default_factory=time.monotonic)

    @property
    def render_error(self) -> str | None:
        """Why its video could not be rendered, if it could not."""
        return None if self.render is None else self.render.error

    def done_at(self, now: float) -> float | None:
        """The time.monotonic() at which the operation became done, or None while it runs."""
        if not self.is_done(now):
            return None
        if self.render is None or self.render.finished_at is None:
            return self.ready_at
        return max(self.ready_at, self.render.finished_at)

    @property
    def name(self) -> str:
        """The operation's resource name, as clients poll it."""
        return f"{self.parent or 'models/' + self.model}/operations/{self.id}"

    def is_done(self, now: float) -> bool:
        """True once the latency has passed and the render (if any) has finished."""
        return now >= self.ready_at and (self.render is None or self.render.done())

    def to_json(self, host: str, now: float) -> dict[str, Any]:
        """The operation as Google returns it; video URIs point at `host`, always https."""
        if not self.is_done(now):
            return protocol.running(self.name)
        if self.outcome is Outcome.FAILED:
            return protocol.finished_with_error(self.name)
        if self.outcome is Outcome.BLOCKED:
            return protocol.finished_blocked(self.name)
        if self.render_error is not None:
            return protocol.finished_with_error(self.name, self.render_error)
        return protocol.finished_with_videos(
            self.name,
            [
                f"https://{host}/v1beta/files/{file_id}:download?alt=media"
                for file_id in self.file_ids
            ],
        )


@dataclass
class Counters:
    """What the emulator has seen, for /_emulator/stats."""

    submissions: int = 0
    submissions_by_model: Counter[str] = field(default_factory=Counter)
    # By sha256(credential)[:8]: which key or token submitted how many, never the secret itself.
    submissions_by_credential: Counter[str] = field(default_factory=Counter)
    polls: int = 0
    downloads: int = 0
    renders: int = 0  # videos rendered (started), one per operation unless render="once"


class OperationBook:
    """All operations and rendered files of one emulator app."""

    def __init__(
        self,
        *,
        storage_dir: Path,
        latency: tuple[float, float],
        fps: int,
        max_concurrent_renders: int = 2,
        render: RenderMode = "each",
    ) -> None:
        self._storage_dir = storage_dir
        self._latency = latency
        self._fps = fps
        self._render_mode = render
        self._operations: dict[str, Operation] = {}
        self._files: dict[str, Path] = {}
        self._file_owners: dict[str, Operation] = {}
        self._shared: dict[Shape, Render] = {}  # render="once": the one render of each shape
        self._renders = asyncio.Semaphore(max_concurrent_renders)
        # Set at shutdown: a render in its thread checks it between frames and stops.
        self._stopping = threading.Event()
        self._random = random.Random()
        self.counters = Counters()

    def _new_id(self, taken: dict[str, Any], length: int) -> str:
        while True:
            new = "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
            if new not in taken:
                return new

    def submit(
        self,
        request: VideoRequest[Image],
        row: ModelCapabilities,
        samples: int = 1,
        *,
        owner: str = "",
        parent: str = "",
        storage_uri: str | None = None,
        injected: str | None = None,
    ) -> Operation:
        """Start an operation for a validated request; its render starts now, in a thread.

        `injected` ("fail" or "blocked") is a fault drawn for this operation's outcome.
        """
        if FAIL_MARKER in request.prompt or injected == "fail":
            outcome = Outcome.FAILED
        elif BLOCKED_MARKER in request.prompt or injected == "blocked":
            outcome = Outcome.BLOCKED
        else:
            outcome = Outcome.VIDEO
        low, high = self._latency
        operation = Operation(
            id=self._new_id(self._operations, 12),
            model=row.name,
            ready_at=time.monotonic() + self._random.uniform(low, high),
            outcome=outcome,
            owner=owner,
            parent=parent,
            storage_uri=storage_uri,
            injected=injected,
        )
        if outcome is Outcome.VIDEO:
            operation.file_ids = tuple(self._new_id(self._files, 16) for _ in range(samples))
            spec = self._spec(request, row)
            if self._render_mode == "once":
                operation.render = self._shared_render(spec)
            else:
                operation.render = self._start_render(
                    spec, self._storage_dir / f"{operation.file_ids[0]}.mp4", operation.name
                )
            # Every sample is the same file: clients only tell samples apart by their URIs.
            for file_id in operation.file_ids:
                self._files[file_id] = operation.render.path
                self._file_owners[file_id] = operation
        self._operations[operation.id] = operation
        self.counters.submissions += 1
        self.counters.submissions_by_model[row.name] += 1
        fingerprint = hashlib.sha256(owner.encode()).hexdigest()[:8]
        self.counters.submissions_by_credential[fingerprint] += 1
        return operation

    def _spec(self, request: VideoRequest[Image], row: ModelCapabilities) -> RenderSpec:
        width, height = frame_size(
            request.aspect_ratio or row.default_aspect_ratio,
            request.resolution or row.default_resolution,
        )
        return RenderSpec(
            prompt=request.prompt,
            width=width,
            height=height,
            seconds=request.duration_seconds or row.default_duration,
            fps=self._fps,
            audio=row.audio,
            first_image=None if request.image is None else request.image.data,
            last_image=None if request.last_frame is None else request.last_frame.data,
            reference_images=tuple(ref.image.data for ref in request.reference_images),
            label=row.name,
        )

    def _shared_render(self, spec: RenderSpec) -> Render:
        """The one render of `spec`'s shape, started by the first operation that needs it.

        The video shows the shape, never a prompt or image: it is served to every credential.
        """
        shape: Shape = (spec.label, spec.width, spec.height, spec.seconds, spec.audio)
        render = self._shared.get(shape)
        if render is None or render.error is not None:  # a failed render is tried again
            neutral = dataclasses.replace(
                spec,
                prompt=f"{spec.seconds} s, {spec.width}x{spec.height}: one video for every "
                "operation of this shape (render=once)",
                first_image=None,
                last_image=None,
                reference_images=(),
            )
            name = f"once-{spec.label}-{spec.width}x{spec.height}-{spec.seconds}s"
            path = self._storage_dir / "once" / f"{name}{'-audio' if spec.audio else ''}.mp4"
            render = self._shared[shape] = self._start_render(neutral, path, name)
        return render

    def _start_render(self, spec: RenderSpec, path: Path, name: str) -> Render:
        render = Render(path)
        render.task = asyncio.create_task(
            self._render(render, spec, name), name=f"emulator-render-{name}"
        )
        self.counters.renders += 1
        return render

    async def _render(self, render: Render, spec: RenderSpec, name: str) -> None:
        async with self._renders:
            try:
                await anyio.to_thread.run_sync(render_video, spec, render.path, self._stopping)
            except RenderCancelled:
                raise
            # Any render failure (a corrupt image, FFmpeg, the disk) must end the operation
            # with an error, as Google's would, rather than leave it running forever.
            except Exception as exc:
                logger.exception("emulator: render of %s failed", name)
                render.error = f"Video generation failed: {exc} (emulated)."
            finally:
                render.finished_at = time.monotonic()

    def find(self, name: str, owner: str) -> Operation:
        """The operation called `name`, when `owner` submitted it; NotFound otherwise.

        Operations belong to the credential that created them, as they belong to a project at
        Google: another credential polling one gets the same 404 as for a name that never was.
        """
        operation = self._operations.get(name.rpartition("/operations/")[2])
        if operation is None or operation.name != name or operation.owner != owner:
            raise NotFound(f"Operation not found: {name}")
        return operation

    def in_flight(self, owner: str) -> int:
        """How many of `owner`'s operations are not done yet."""
        now = time.monotonic()
        return sum(
            1 for op in self._operations.values() if op.owner == owner and not op.is_done(now)
        )

    def file(self, file_id: str, owner: str | None = None) -> Path:
        """The rendered file behind `file_id`, once it exists, or NotFound.

        With `owner`, only the credential whose operation made the file may have it.
        """
        path = self._files.get(file_id)
        made_by = self._file_owners.get(file_id)
        if owner is not None and (made_by is None or made_by.owner != owner):
            path = None
        if path is None or not path.is_file():
            raise NotFound(f"File {file_id} not found.")
        return path

    def stats(self) -> dict[str, Any]:
        """Counters and every operation's state, for tests."""
        now = time.monotonic()
        return {
            "submissions": self.counters.submissions,
            "submissions_by_model": dict(self.counters.submissions_by_model),
            "submissions_by_credential": dict(self.counters.submissions_by_credential),
            "polls": self.counters.polls,
            "downloads": self.counters.downloads,
            "renders": self.counters.renders,
            "operations": {
                op.id: {"model": op.model, "done": op.is_done(now)}
                for op in self._operations.values()
            },
            "injected_outcomes": {
                op.id: op.injected for op in self._operations.values() if op.injected
            },
        }

    def timeline(self) -> list[dict[str, Any]]:
        """Every operation's name, creation and completion (Unix seconds; done_at None while
        it runs), in creation order: when the upstream finished, for benchmarks."""
        # Monotonic times become wall-clock ones so other processes can compare them with theirs.
        now = time.monotonic()
        offset = time.time() - now
        timeline = []
        for op in self._operations.values():
            done_at = op.done_at(now)
            timeline.append(
                {
                    "name": op.name,
                    "created_at": op.created_at + offset,
                    "done_at": None if done_at is None else done_at + offset,
                }
            )
        return timeline

    async def aclose(self) -> None:
        """Stop renders in progress, wait for their threads, and delete the rendered files.

        Renders are not cancelled from here: a cancelled task would stop waiting while its
        thread still writes. The event makes each render stop at its next frame instead (and
        those still queued stop before their first), so this returns within a frame or two.
        """
        self._stopping.set()
        tasks = {
            op.render.task
            for op in self._operations.values()
            if op.render is not None and op.render.task is not None and not op.render.done()
        }
        await asyncio.gather(*tasks, return_exceptions=True)
        # Files are only reachable through this app's memory: once it stops, they are litter.
        for path in set(self._files.values()):
            path.unlink(missing_ok=True)
