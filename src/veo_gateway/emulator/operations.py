"""The emulator's long-running operations: their latency, their renders and their counters.

An operation is done when its latency has passed *and* its video is rendered (see
`emulator.renders`). With `persist`, every operation is also kept on disk (`emulator.journal`):
an emulator restarted on the same storage answers for the operations of the one before, each
finishing on its original timeline, as Google's do when a client restarts. Operations are kept
for two days, as Google keeps generated videos.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import random
import secrets
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from veo_gateway.emulator import protocol
from veo_gateway.emulator.google_rules import Output
from veo_gateway.emulator.journal import Journal
from veo_gateway.emulator.renders import (
    Render,
    Renderer,
    RenderMode,
    spec_from_record,
    spec_record,
)
from veo_gateway.emulator.submission import Submission
from veo_gateway.errors import NotFound

logger = logging.getLogger(__name__)

BLOCKED_MARKER = "[emulator:blocked]"
FAIL_MARKER = "[emulator:fail]"
# With several samples asked for, the safety filters withhold the last one (the others come).
FILTER_ONE_MARKER = "[emulator:filter-one]"
_ID_ALPHABET = string.ascii_lowercase + string.digits
RETENTION_SECONDS = 2 * 24 * 3600.0  # Google keeps generated videos two days
_PRUNE_EVERY = 3600.0


def fingerprint(credential: str) -> str:
    """What an operation keeps of the credential that made it: its SHA-256, never the secret."""
    return hashlib.sha256(credential.encode()).hexdigest()


class Outcome(enum.Enum):
    """How an operation ends."""

    VIDEO = "video"
    BLOCKED = "blocked"
    FAILED = "failed"


@dataclass
class Operation:
    """One predictLongRunning call and what became of it."""

    id: str
    model: str
    created_at: float  # time.monotonic() when it was submitted
    ready_at: float  # time.monotonic() after which the operation may report done
    outcome: Outcome
    owner: str = ""  # fingerprint() of the credential (API key or token) that submitted it
    parent: str = ""  # the name's prefix: "models/{model}", or Vertex's longer path
    storage_uri: str | None = None  # Vertex: results go to gs://... instead of inline
    injected: str | None = None  # the fault injected into its outcome (fail, blocked), if any
    file_ids: tuple[str, ...] = ()
    render: Render | None = None
    filtered: int = 0  # samples the safety filters withheld (FILTER_ONE_MARKER)
    # An Interactions API create (Gemini Omni): its delivery and response_format; None for
    # predictLongRunning.
    interaction: dict[str, Any] | None = None
    cancelled_at: float | None = None  # time.monotonic() of an interaction's cancel

    @property
    def render_error(self) -> str | None:
        """Why its video could not be rendered, if it could not."""
        return None if self.render is None else self.render.error

    def done_at(self, now: float) -> float | None:
        """The time.monotonic() at which the operation became done, or None while it runs."""
        if not self.is_done(now):
            return None
        if self.cancelled_at is not None:
            return self.cancelled_at
        if self.render is None or self.render.finished_at is None:
            return self.ready_at
        return max(self.ready_at, self.render.finished_at)

    @property
    def name(self) -> str:
        """The operation's resource name, as clients poll it (an interaction's: its parent,
        then its id)."""
        if self.interaction is not None:
            return f"{self.parent}/{self.id}"
        return f"{self.parent or 'models/' + self.model}/operations/{self.id}"

    def is_done(self, now: float) -> bool:
        """True once the latency has passed and the render (if any) has finished, or once
        it was cancelled."""
        if self.cancelled_at is not None:
            return True
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
            filtered=self.filtered,
        )


@dataclass
class Counters:
    """What the emulator has seen, for /_emulator/stats."""

    submissions: int = 0
    submissions_by_model: Counter[str] = field(default_factory=Counter)
    # By fingerprint(credential)[:8]: which key or token submitted how many, never the secret.
    submissions_by_credential: Counter[str] = field(default_factory=Counter)
    polls: int = 0
    downloads: int = 0
    cancels: int = 0


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
        persist: bool = False,
    ) -> None:
        self._storage_dir = storage_dir
        self._latency = latency
        self._operations: dict[str, Operation] = {}
        self._files: dict[str, Path] = {}
        self._file_owners: dict[str, Operation] = {}
        self._renderer = Renderer(
            storage_dir=storage_dir,
            fps=fps,
            max_concurrent_renders=max_concurrent_renders,
            mode=render,
        )
        self._journal = Journal(storage_dir / "operations") if persist else None
        self._pruner: asyncio.Task[None] | None = None
        self._random = random.Random()
        self.counters = Counters()

    def _new_id(self, taken: dict[str, Any], length: int) -> str:
        while True:
            new = "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
            if new not in taken:
                return new

    # -- life -----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Take back the operations an earlier run kept on disk (with `persist`), resuming the
        renders it did not finish, and start forgetting those past their retention."""
        if self._journal is None:
            return
        records = await anyio.to_thread.run_sync(self._journal.load)
        restored = 0
        for record in records:
            try:
                self._restore(record)
                restored += 1
            except (KeyError, TypeError, ValueError, OSError) as exc:
                logger.warning("emulator: cannot restore operation %s (%s)", record.get("id"), exc)
        if restored:
            logger.info("emulator: restored %d operation(s) from %s", restored, self._storage_dir)
        await self._prune()
        self._pruner = asyncio.create_task(self._prune_forever(), name="emulator-prune")

    async def aclose(self) -> None:
        """Stop renders in progress and wait for their threads; without `persist`, delete the
        rendered files too (only this app's memory led to them)."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await self._renderer.aclose()
        if self._journal is None:
            for path in set(self._files.values()):
                path.unlink(missing_ok=True)

    # -- submissions ----------------------------------------------------------------------------

    async def submit(
        self,
        submission: Submission,
        output: Output,
        samples: int = 1,
        *,
        owner: str = "",
        parent: str = "",
        storage_uri: str | None = None,
        injected: str | None = None,
        interaction: dict[str, Any] | None = None,
    ) -> Operation:
        """Start an operation for a judged submission, making `output` (kept on disk first,
        with `persist`); its render starts now, in a thread.

        `injected` ("fail" or "blocked") is a fault drawn for this operation's outcome.
        """
        if FAIL_MARKER in submission.prompt or injected == "fail":
            outcome = Outcome.FAILED
        elif BLOCKED_MARKER in submission.prompt or injected == "blocked":
            outcome = Outcome.BLOCKED
        else:
            outcome = Outcome.VIDEO
        low, high = self._latency
        # One reading of the clock: an operation is ready exactly its latency after its creation.
        now = time.monotonic()
        operation = Operation(
            id=self._new_id(self._operations, 12),
            model=submission.model,
            created_at=now,
            ready_at=now + self._random.uniform(low, high),
            outcome=outcome,
            owner=fingerprint(owner),
            parent=parent,
            storage_uri=storage_uri,
            injected=injected,
            interaction=interaction,
        )
        spec = self._renderer.spec(submission, output) if outcome is Outcome.VIDEO else None
        if spec is not None and FILTER_ONE_MARKER in submission.prompt and samples > 1:
            samples, operation.filtered = samples - 1, 1
        if spec is not None:
            operation.file_ids = tuple(self._new_id(self._files, 16) for _ in range(samples))
        self._operations[operation.id] = operation
        if self._journal is not None:
            fields, images = spec_record(spec) if spec is not None else (None, {})
            video = None if spec is None else self._renderer.path_for(spec, operation.id)
            try:
                await anyio.to_thread.run_sync(
                    self._journal.write, self._record(operation, fields, video), images
                )
            except BaseException:
                del self._operations[operation.id]
                raise
        if spec is not None:
            render = self._renderer.start(spec, operation.id, self._after(operation))
            self._attach(operation, render)
        self._count(operation)
        return operation

    def _attach(self, operation: Operation, render: Render) -> None:
        operation.render = render
        # Every sample is the same file: clients only tell samples apart by their URIs.
        for file_id in operation.file_ids:
            self._files[file_id] = render.path
            self._file_owners[file_id] = operation

    def _count(self, operation: Operation) -> None:
        self.counters.submissions += 1
        self.counters.submissions_by_model[operation.model] += 1
        self.counters.submissions_by_credential[operation.owner[:8]] += 1

    def _after(self, operation: Operation) -> Any:
        """What runs in the render's thread when `operation`'s own render ends: its inputs are
        no longer needed, and a failure is final, so the record says so."""
        journal = self._journal
        if journal is None:
            return None

        def after(error: str | None) -> None:
            if error is not None:
                journal.write(self._record(operation, None))
            journal.drop_inputs(operation.id)

        return after

    # -- persistence ----------------------------------------------------------------------------

    def _record(
        self, operation: Operation, spec: dict[str, Any] | None, video: Path | None = None
    ) -> dict[str, Any]:
        """`operation` as JSON, times in Unix seconds; `spec` while its render may be needed,
        `video` where it will be rendered when its render has not started yet."""
        offset = time.time() - time.monotonic()
        if operation.render is not None:
            video = operation.render.path
        return {
            "id": operation.id,
            "model": operation.model,
            "parent": operation.parent,
            "owner": operation.owner,
            "outcome": operation.outcome.value,
            "injected": operation.injected,
            "storage_uri": operation.storage_uri,
            "file_ids": list(operation.file_ids),
            "filtered": operation.filtered,
            "created_at": operation.created_at + offset,
            "ready_at": operation.ready_at + offset,
            "video": None if video is None else video.relative_to(self._storage_dir).as_posix(),
            "render_error": operation.render_error,
            "spec": spec,
            "interaction": operation.interaction,
            "cancelled_at": None
            if operation.cancelled_at is None
            else operation.cancelled_at + offset,
        }

    def _restore(self, record: dict[str, Any]) -> None:
        offset = time.monotonic() - time.time()
        operation = Operation(
            id=str(record["id"]),
            model=str(record["model"]),
            created_at=float(record["created_at"]) + offset,
            ready_at=float(record["ready_at"]) + offset,
            outcome=Outcome(record["outcome"]),
            owner=str(record["owner"]),
            parent=str(record["parent"]),
            storage_uri=record["storage_uri"],
            injected=record["injected"],
            file_ids=tuple(str(file_id) for file_id in record["file_ids"]),
            filtered=int(record.get("filtered") or 0),
            interaction=record.get("interaction"),
            cancelled_at=None
            if record.get("cancelled_at") is None
            else float(record["cancelled_at"]) + offset,
        )
        # A cancelled interaction's video is never served: no render to resume for it.
        if operation.outcome is Outcome.VIDEO and operation.cancelled_at is None:
            path = self._storage_dir / str(record["video"])
            if record["render_error"] is not None:
                render = Render(path, error=str(record["render_error"]))
                render.finished_at = operation.ready_at
            elif path.is_file():
                render = self._renderer.existing(path)
            else:
                assert self._journal is not None
                images = self._journal.inputs(operation.id)
                spec = spec_from_record(record["spec"], images)
                render = self._renderer.resume(spec, path, operation.id, self._after(operation))
            self._attach(operation, render)
        self._operations[operation.id] = operation
        self._count(operation)

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(_PRUNE_EVERY)
            await self._prune()

    async def _prune(self) -> None:
        """Forget operations past their retention, with their records and videos."""
        horizon = time.monotonic() - RETENTION_SECONDS
        expired = [op for op in self._operations.values() if op.created_at < horizon]
        for operation in expired:
            del self._operations[operation.id]
            for file_id in operation.file_ids:
                self._files.pop(file_id, None)
                self._file_owners.pop(file_id, None)
        if expired:
            await anyio.to_thread.run_sync(self._forget, expired)

    def _forget(self, operations: list[Operation]) -> None:
        for operation in operations:
            if self._journal is not None:
                self._journal.delete(operation.id)
            if operation.render is not None and not operation.render.shared:
                operation.render.path.unlink(missing_ok=True)

    # -- lookups ----------------------------------------------------------------------------------

    def find(self, name: str, owner: str) -> Operation:
        """The operation called `name`, when `owner` submitted it; NotFound otherwise.

        Operations belong to the credential that created them, as they belong to a project at
        Google: another credential polling one gets the same 404 as for a name that never was.
        """
        operation = self._operations.get(name.rpartition("/operations/")[2])
        if operation is None or operation.name != name or operation.owner != fingerprint(owner):
            raise NotFound(f"Operation not found: {name}")
        return operation

    def interaction(self, interaction_id: str, owner: str, parent: str) -> Operation:
        """The interaction `interaction_id` under `parent`, when `owner` created it; NotFound
        otherwise (another key's interaction is as unknown as one that never was)."""
        operation = self._operations.get(interaction_id)
        if (
            operation is None
            or operation.interaction is None
            or operation.parent != parent
            or operation.owner != fingerprint(owner)
        ):
            raise NotFound(f"Interaction not found: {interaction_id}")
        return operation

    async def cancel(self, operation: Operation) -> None:
        """Cancel a running interaction (kept on disk, with `persist`)."""
        operation.cancelled_at = time.monotonic()
        self.counters.cancels += 1
        if self._journal is not None:
            record = self._record(operation, None)
            await anyio.to_thread.run_sync(self._journal.write, record)

    def get(self, operation_id: str) -> Operation | None:
        """The operation with this id, whoever made it."""
        return self._operations.get(operation_id)

    def in_flight(self, owner: str) -> int:
        """How many of `owner`'s operations are not done yet."""
        now = time.monotonic()
        digest = fingerprint(owner)
        return sum(
            1 for op in self._operations.values() if op.owner == digest and not op.is_done(now)
        )

    def file(self, file_id: str, owner: str | None = None) -> Path:
        """The rendered file behind `file_id`, once it exists, or NotFound.

        With `owner`, only the credential whose operation made the file may have it.
        """
        path = self._files.get(file_id)
        made_by = self._file_owners.get(file_id)
        if owner is not None and (made_by is None or made_by.owner != fingerprint(owner)):
            path = None
        if path is None or not path.is_file():
            raise NotFound(f"File {file_id} not found.")
        return path

    # -- observation ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and every operation's state, for tests."""
        now = time.monotonic()
        return {
            "submissions": self.counters.submissions,
            "submissions_by_model": dict(self.counters.submissions_by_model),
            "submissions_by_credential": dict(self.counters.submissions_by_credential),
            "polls": self.counters.polls,
            "downloads": self.counters.downloads,
            "cancels": self.counters.cancels,
            "renders": self._renderer.count,
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
