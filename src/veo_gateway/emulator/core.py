"""What the emulator's two protocols (Gemini API, Vertex AI) share: configuration, operations,
per-credential quotas, fault injection, the request log and file serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, TypeVarTuple

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from veo_gateway.emulator import google_rules, omni, protocol
from veo_gateway.emulator.faults import FaultInjector, Faults
from veo_gateway.emulator.google_rules import Output, Protocol
from veo_gateway.emulator.operations import Operation, OperationBook, fingerprint
from veo_gateway.emulator.submission import Submission
from veo_gateway.emulator.videos import read_video
from veo_gateway.errors import (
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from veo_gateway.settings import Settings

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# Bodies with inline images run to tens of MB; parsing and decoding those on the event loop
# would stall every other request on it (the gateway's own, when the emulator is embedded).
_INLINE_PARSE_BYTES = 256 * 1024
_REQUEST_LOG_SIZE = 1000  # bodies kept for /_emulator/requests; older ones are dropped
INTERNAL_MESSAGE = "Internal error encountered. (emulated)"
# Google's own wording for each status, as its APIs answer when they say no more than that.
_REFUSALS: dict[str, Callable[[], GatewayError]] = {
    "400": lambda: InvalidArgument("Request contains an invalid argument. (emulated)"),
    "403": lambda: PermissionDenied("The caller does not have permission. (emulated)"),
    "404": lambda: NotFound("Requested entity was not found. (emulated)"),
}
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    "(emulated: {limit})"
)


async def off_loop_if_large(size: int, func: Callable[[*Ts], T], *args: *Ts) -> T:
    """Run `func` here for small inputs, in a worker thread for large ones."""
    if size <= _INLINE_PARSE_BYTES:
        return func(*args)
    return await anyio.to_thread.run_sync(func, *args)


@dataclass(frozen=True, kw_only=True)
class EmulatorConfig:
    """How the emulator behaves: latency, credentials, quotas, faults, where videos go."""

    latency: tuple[float, float] = (4.0, 8.0)  # seconds an operation takes: uniform in range
    api_keys: frozenset[str] = frozenset()  # Gemini API keys; empty: any non-empty key
    vertex_tokens: frozenset[str] = frozenset()  # Vertex bearer tokens; empty: any token
    storage_dir: Path
    fps: int = 24
    max_concurrent_renders: int = 2
    faults: Faults = field(default_factory=Faults)
    quota_rpm: int | None = None  # submissions per minute per credential; None: no limit
    max_in_flight_per_credential: int | None = None  # unfinished operations per credential
    # "each": a render per operation; "once": one per output shape, served to all (benchmarks).
    render: Literal["each", "once"] = "each"
    # Keep operations on disk under storage_dir, so a restart carries on with them.
    persist: bool = False
    # A JSON-lines file every submission call is appended to, answered or refused (for tests).
    request_log: Path | None = None
    # Model ids answered with 404 on both protocols, as Google answers for a shut-down model.
    retired_models: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        low, high = self.latency
        if low < 0 or high < low:
            raise ValueError(f"latency must be (min, max) with 0 <= min <= max: {self.latency}")
        if self.render not in ("each", "once"):
            raise ValueError(f"render must be 'each' or 'once', not {self.render!r}")
        if self.fps <= 0 or self.max_concurrent_renders <= 0:
            raise ValueError("fps and max_concurrent_renders must be positive")
        for name in ("quota_rpm", "max_in_flight_per_credential"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, or None for no limit")


def config_from_settings(
    settings: Settings,
    *,
    storage_dir: Path,
    api_keys: frozenset[str] | None = None,
    persist: bool = False,
) -> EmulatorConfig:
    """The emulator's configuration from the `VEO_GATEWAY_EMULATOR_*` settings."""
    return EmulatorConfig(
        latency=settings.latency_range,
        api_keys=_split(settings.emulator_api_keys) if api_keys is None else api_keys,
        vertex_tokens=_split(settings.emulator_vertex_tokens),
        storage_dir=storage_dir,
        faults=Faults.parse(settings.emulator_faults),
        quota_rpm=settings.emulator_quota_rpm,
        max_in_flight_per_credential=settings.emulator_max_in_flight,
        render=settings.emulator_render,
        persist=persist,
        request_log=settings.emulator_request_log,
        retired_models=_split(settings.emulator_retired_models),
    )


def _split(text: str) -> frozenset[str]:
    return frozenset(item.strip() for item in text.split(",") if item.strip())


class EmulatorCore:
    """The state one emulator app serves both protocols from."""

    def __init__(
        self, config: EmulatorConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock  # seconds, for the per-minute quota windows
        self.book = OperationBook(
            storage_dir=config.storage_dir,
            latency=config.latency,
            fps=config.fps,
            max_concurrent_renders=config.max_concurrent_renders,
            render=config.render,
            persist=config.persist,
        )
        self.faults = FaultInjector(config.faults)
        self.requests: deque[dict[str, Any]] = deque(maxlen=_REQUEST_LOG_SIZE)
        self.quota_refusals = 0
        self._peak_in_flight: Counter[str] = Counter()  # by credential fingerprint
        self._windows: dict[str, deque[float]] = {}
        self._media: dict[str, Path] = {}  # signed media URLs handed out by redirects

    def serves(self, dialect: Protocol, model: str) -> bool:
        """Whether `dialect` knows the model id (and it was not retired for a drill)."""
        return model in google_rules.MODELS[dialect] and model not in self.config.retired_models

    def knows(self, dialect: Protocol, model: str) -> bool:
        """Whether `dialect` serves the model id by either of its protocols (Veo's
        predictLongRunning, Gemini Omni's Interactions): what GetModel answers for."""
        if model in omni.MODELS:
            return model not in self.config.retired_models
        return self.serves(dialect, model)

    # -- faults and quotas --------------------------------------------------------------------

    async def inject(self, call: str) -> str | None:
        """Draw this call's fault: raise the injected error, or stall; returns what the caller
        must still inject itself (the download faults), or None."""
        fault = self.faults.draw(call)
        if fault == "429":
            raise ResourceExhausted(QUOTA_MESSAGE.format(limit="injected fault"))
        if fault == "500":
            raise GatewayError(INTERNAL_MESSAGE)
        if fault in _REFUSALS:
            raise _REFUSALS[fault]()
        if fault == "stall":
            await asyncio.sleep(self.faults.faults.stall_seconds)
            return None
        return fault

    async def hold_answer(self, fault: str | None) -> None:
        """`submit.lost`: the operation has started; its answer waits `stall_seconds` (a client
        that stops waiting before then never learns of it)."""
        if fault == "lost":
            await asyncio.sleep(self.faults.faults.stall_seconds)

    def admit(self, credential: str) -> None:
        """Refuse a submission over the credential's quotas with Google's 429."""
        limit = self.config.max_in_flight_per_credential
        if limit is not None and self.book.in_flight(credential) >= limit:
            self.quota_refusals += 1
            raise ResourceExhausted(
                QUOTA_MESSAGE.format(limit=f"{limit} operations in flight per credential")
            )
        rpm = self.config.quota_rpm
        if rpm is None:
            return
        now = self._clock()
        window = self._windows.setdefault(credential, deque())
        while window and window[0] <= now - 60.0:
            window.popleft()
        if len(window) >= rpm:
            self.quota_refusals += 1
            raise ResourceExhausted(QUOTA_MESSAGE.format(limit=f"{rpm} requests per minute"))
        window.append(now)

    # -- submissions --------------------------------------------------------------------------

    async def read_predict(
        self,
        request: Request,
        model: str,
        dialect: Protocol,
        owner: str = "",
        gcs_file: Callable[[str], str | None] | None = None,
    ) -> tuple[Submission, Output, dict[str, Any]]:
        """The body of a predictLongRunning call, logged, parsed and judged by Google's rules
        for `dialect`; the video it makes, and the body as sent. An extension's source video is
        read as `owner` (the caller's credential) may read it; `gcs_file` finds the file of a
        gs:// object."""
        body = await request.body()
        payload = await off_loop_if_large(len(body), protocol.parse_json, body)
        self.requests.append({"path": request.url.path, "body": protocol.redact(payload)})
        submission = await off_loop_if_large(len(body), protocol.parse_predict, model, payload)
        if submission.video_value is not None:
            submission = await read_video(submission, dialect, self.book, owner, gcs_file)
        return submission, google_rules.judge(submission, dialect), payload

    @contextlib.asynccontextmanager
    async def submission_call(self, credential: str) -> AsyncIterator[dict[str, Any]]:
        """One predictLongRunning call of `credential`, around its whole handling; the caller
        sets the entry's "prompt" once read, and `learn_operation` its operation.

        With `request_log` set, the entry is appended to it as one JSON line when the call is
        answered: received_at and answered_at (Unix seconds), credential (the first 8 hex digits
        of its fingerprint), status (200, the error's HTTP status, or null when the handler was
        cut short), prompt (null when refused before the body was read), operation (its name,
        or null) and injected (the outcome fault drawn for it: "fail", "blocked" or null)."""
        entry: dict[str, Any] = {
            "received_at": time.time(),
            "credential": fingerprint(credential)[:8],
            "prompt": None,
            "operation": None,
            "injected": None,
        }
        status: int | None = None  # None: the handler did not finish (cancelled)
        try:
            yield entry
            status = 200
        except GatewayError as exc:
            status = exc.code
            raise
        finally:
            if self.config.request_log is not None:
                entry |= {"answered_at": time.time(), "status": status}
                with self.config.request_log.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(entry) + "\n")

    def learn_operation(self, entry: dict[str, Any], operation: Operation, credential: str) -> None:
        """Note the operation a submission call made, and the credential's peak in flight."""
        in_flight = self.book.in_flight(credential)
        owner = fingerprint(credential)[:8]
        self._peak_in_flight[owner] = max(self._peak_in_flight[owner], in_flight)
        entry |= {"operation": operation.name, "injected": operation.injected}

    # -- downloads ----------------------------------------------------------------------------

    async def serve_file(self, request: Request, path: Path, fault: str | None) -> Response:
        """The MP4 at `path`, with the download fault drawn for this call, if any."""
        self.book.counters.downloads += 1
        if fault == "redirect":
            token = secrets.token_urlsafe(16)
            self._media[token] = path
            return RedirectResponse(
                str(request.url_for("emulator_media", token=token)), status_code=302
            )
        if fault in ("broken", "truncated", "short", "slow"):
            return self._stream(path, fault)
        return FileResponse(path, media_type="video/mp4")

    def media(self, token: str) -> Response:
        """A signed media URL handed out by a redirect: no credentials needed, as at Google."""
        path = self._media.get(token)
        if path is None or not path.is_file():
            raise NotFound("The requested media was not found.")
        return FileResponse(path, media_type="video/mp4")

    def _stream(self, path: Path, fault: str) -> Response:
        data = path.read_bytes()
        slow_seconds = self.faults.faults.slow_seconds

        async def body() -> AsyncIterator[bytes]:
            if fault == "broken":
                # Declared length, half the bytes, then the connection drops.
                yield data[: len(data) // 2]
                raise ConnectionAbortedError("emulated broken download")
            if fault in ("truncated", "short"):
                # Half the bytes and a normal end: under the declared length (truncated), the
                # server can only close the connection; with none (short), nothing tells.
                yield data[: len(data) // 2]
                return
            pieces = 10
            step = -(-len(data) // pieces)
            for start in range(0, len(data), step):
                yield data[start : start + step]
                await asyncio.sleep(slow_seconds / pieces)

        headers = {} if fault == "short" else {"content-length": str(len(data))}
        return StreamingResponse(body(), media_type="video/mp4", headers=headers)

    # -- observation --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters, every operation's state, and every fault injected."""
        stats = self.book.stats()
        stats["faults"] = dict(Counter(self.faults.counts))
        stats["quota_refusals"] = self.quota_refusals
        stats["peak_in_flight_by_credential"] = dict(self._peak_in_flight)
        return stats
