"""A built-in emulator of Google's Veo REST protocol (Gemini API, v1beta) that renders real MP4s.

Routes, as Google serves them (key in ``x-goog-api-key`` or ``?key=``)::

    POST /v1beta/models/{model}:predictLongRunning          -> {"name": operation name}
    GET  /v1beta/models/{model}/operations/{id}             -> the operation
    GET  /v1beta/files/{id}:download?alt=media              -> the MP4
    GET  /v1beta/models                                     -> ListModels (Veo models only)

and, outside Google's namespace, for tests (no key needed)::

    GET /_emulator/stats      -> submissions, polls, downloads, every operation's state
    GET /_emulator/requests   -> the predictLongRunning bodies received, images as "<N bytes>"

Markers in the prompt make outcomes deterministic, for tests:

- ``[emulator:blocked]``: the operation finishes with no video and ``raiMediaFilteredCount: 1``
  and a reason, as Google's safety filters do;
- ``[emulator:fail]``: the operation finishes with ``error: {code: 13, message: ...}``.

Requests are validated against the model's capability row with the gateway's own rules, so the
emulator refuses what Google refuses, with the same messages.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, TypeVarTuple

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.validation import validate_request
from veo_gateway.emulator import protocol
from veo_gateway.emulator.operations import OperationBook
from veo_gateway.errors import (
    GatewayError,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# Bodies with inline images run to tens of MB; parsing and decoding those on the event loop
# would stall every other request on it (the gateway's own, when the emulator is embedded).
_INLINE_PARSE_BYTES = 256 * 1024


async def _off_loop_if_large(size: int, func: Callable[[*Ts], T], *args: *Ts) -> T:
    if size <= _INLINE_PARSE_BYTES:
        return func(*args)
    return await anyio.to_thread.run_sync(func, *args)


@dataclass(frozen=True, kw_only=True)
class EmulatorConfig:
    """How the emulator behaves: latency, accepted keys, where videos go, frame rate."""

    latency: tuple[float, float] = (4.0, 8.0)  # seconds an operation takes: uniform in range
    api_keys: frozenset[str] = frozenset()  # empty: any non-empty key is accepted
    storage_dir: Path
    fps: int = 24
    max_concurrent_renders: int = 2

    def __post_init__(self) -> None:
        low, high = self.latency
        if low < 0 or high < low:
            raise ValueError(f"latency must be (min, max) with 0 <= min <= max: {self.latency}")
        if self.fps <= 0 or self.max_concurrent_renders <= 0:
            raise ValueError("fps and max_concurrent_renders must be positive")


def create_emulator_app(config: EmulatorConfig) -> Starlette:
    """A new emulator app; its operations and counters live in this app alone."""
    catalog = Catalog()
    book = OperationBook(
        storage_dir=config.storage_dir,
        latency=config.latency,
        fps=config.fps,
        max_concurrent_renders=config.max_concurrent_renders,
    )
    keys = [key.encode() for key in config.api_keys]

    def authenticate(request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise PermissionDenied(protocol.MISSING_KEY)
        if keys and not any(hmac.compare_digest(key.encode(), known) for known in keys):
            raise InvalidArgument(protocol.BAD_KEY)

    async def predict(request: Request) -> Response:
        authenticate(request)
        # The path segment is "{model}:{method}"; a model name never contains a colon.
        model, _, method = request.path_params["model_action"].rpartition(":")
        if method != "predictLongRunning" or model not in catalog:
            raise NotFound(protocol.not_found_model(model or method))
        body = await request.body()
        payload = await _off_loop_if_large(len(body), protocol.parse_json, body)
        book.requests.append(protocol.redact(payload))
        video_request, samples = await _off_loop_if_large(
            len(body), protocol.parse_predict, model, payload
        )
        validate_request(video_request, catalog[model])
        operation = book.submit(video_request, catalog[model], samples)
        return JSONResponse({"name": operation.name})

    async def get_operation(request: Request) -> Response:
        authenticate(request)
        operation = book.get(request.path_params["model"], request.path_params["operation_id"])
        book.counters.polls += 1
        host = request.headers.get("host") or request.url.netloc
        return JSONResponse(operation.to_json(host, time.monotonic()))

    async def download(request: Request) -> Response:
        authenticate(request)
        file_id, _, method = request.path_params["file_action"].rpartition(":")
        if method != "download" or not file_id:
            raise NotFound(f"Method not found: files/{request.path_params['file_action']}")
        if request.query_params.get("alt") != "media":
            raise InvalidArgument("files:download needs alt=media.")
        path = book.file(file_id)
        book.counters.downloads += 1
        return FileResponse(path, media_type="video/mp4")

    async def list_models(request: Request) -> Response:
        authenticate(request)
        return JSONResponse(
            {
                "models": [
                    {
                        "name": f"models/{name}",
                        "displayName": name,
                        "supportedGenerationMethods": ["predictLongRunning"],
                    }
                    for name in catalog
                ]
            }
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(book.stats())

    async def requests_log(request: Request) -> Response:
        return JSONResponse(list(book.requests))

    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return JSONResponse(protocol.envelope(exc), status_code=exc.code)

    async def http_error(request: Request, exc: Exception) -> Response:
        # The router's own 404 and 405, in Google's envelope rather than plain text.
        assert isinstance(exc, HTTPException)
        error: GatewayError = (
            MethodNotAllowed(f"Method {request.method} not allowed.")
            if exc.status_code == 405
            else NotFound(f"The requested URL {request.url.path} was not found.")
        )
        return JSONResponse(protocol.envelope(error), status_code=error.code)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await book.aclose()

    return Starlette(
        routes=[
            Route("/v1beta/models", list_models, methods=["GET"]),
            Route("/v1beta/models/{model_action}", predict, methods=["POST"]),
            Route(
                "/v1beta/models/{model}/operations/{operation_id}", get_operation, methods=["GET"]
            ),
            Route("/v1beta/files/{file_action}", download, methods=["GET"]),
            Route("/_emulator/stats", stats, methods=["GET"]),
            Route("/_emulator/requests", requests_log, methods=["GET"]),
        ],
        exception_handlers={GatewayError: gateway_error, HTTPException: http_error},
        lifespan=lifespan,
    )
