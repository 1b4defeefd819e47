"""A built-in emulator of Google's Veo REST protocols that renders real MP4s.

Gemini API routes, as Google serves them (key in ``x-goog-api-key`` or ``?key=``)::

    POST /v1beta/models/{model}:predictLongRunning          -> {"name": operation name}
    GET  /v1beta/models/{model}/operations/{id}             -> the operation
    GET  /v1beta/files/{id}:download?alt=media              -> the MP4
    GET  /v1beta/models                                     -> ListModels (Veo models only)
    GET  /v1beta/models/{model}                             -> the model, or 404 (GetModel)

Vertex AI routes (``v1`` and ``v1beta1``) and a Cloud Storage stand-in: see `emulator.vertex`.
Gemini Omni's Interactions API, on both protocols: see `emulator.interactions`.

And, outside Google's namespace, for tests (no key needed)::

    GET /_emulator/stats      -> submissions, polls, downloads, operations, faults injected
    GET /_emulator/requests   -> the predictLongRunning calls received: {path, body}, each image
                                 as "<N bytes sha256:...>"
    GET /_emulator/operations -> every operation: {name, created_at, done_at} in Unix seconds,
                                 done_at null while it runs

With `EmulatorConfig.request_log` set, every predictLongRunning call (either protocol) is also
appended to that file as a JSON line when it is answered: its times, credential, status, prompt,
operation and injected outcome (see `EmulatorCore.submission_call`).

Markers in the prompt make outcomes deterministic, for tests:

- ``[emulator:blocked]``: the operation finishes with no video and ``raiMediaFilteredCount: 1``
  and a reason, as Google's safety filters do;
- ``[emulator:fail]``: the operation finishes with ``error: {code: 13, message: ...}``.

Operations and files belong to the credential that created them: another key polling them gets
a 404, as another project would at Google. Per-credential quotas answer 429 RESOURCE_EXHAUSTED,
and `EmulatorConfig.faults` injects errors, stalls and bad downloads (see `emulator.faults`).

With `EmulatorConfig.persist`, operations are kept under `storage_dir` and a restarted emulator
carries on with them (see `emulator.operations`).

Requests are judged by the emulator's own statement of Google's rules and defaults, per model and
per protocol (`emulator.google_rules`), never by the gateway's `domain/`: a gateway rule that
drifts from Google's is then caught by a test rather than agreed with.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from veo_gateway.emulator import google_rules, interactions, omni, protocol, vertex
from veo_gateway.emulator.core import EmulatorConfig, EmulatorCore
from veo_gateway.errors import (
    GatewayError,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
)

__all__ = ["EmulatorConfig", "create_emulator_app"]


def create_emulator_app(
    config: EmulatorConfig, *, clock: Callable[[], float] = time.monotonic
) -> Starlette:
    """A new emulator app; its operations and counters live in this app alone. `clock` times
    the per-minute quotas (tests pass their own, to slide the window without waiting)."""
    core = EmulatorCore(config, clock=clock)
    book, models = core.book, google_rules.MODELS["gemini"]
    keys = [key.encode() for key in config.api_keys]

    def authenticate(request: Request) -> str:
        """The caller's API key, once checked."""
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise PermissionDenied(protocol.MISSING_KEY)
        if keys and not any(hmac.compare_digest(key.encode(), known) for known in keys):
            raise InvalidArgument(protocol.BAD_KEY)
        return key

    async def predict(request: Request) -> Response:
        key = authenticate(request)
        # The path segment is "{model}:{method}"; a model name never contains a colon.
        model, _, method = request.path_params["model_action"].rpartition(":")
        if method != "predictLongRunning" or not core.serves("gemini", model):
            raise NotFound(protocol.not_found_model(model or method))
        async with core.submission_call(key) as entry:
            fault = await core.inject("submit")
            submission, output, _ = await core.read_predict(request, model, "gemini", key)
            entry["prompt"] = submission.prompt
            core.admit(key)
            operation = await book.submit(
                submission,
                output,
                google_rules.sample_count(submission),
                owner=key,
                injected=core.faults.draw("operation"),
            )
            core.learn_operation(entry, operation, key)
            await core.hold_answer(fault)
        return JSONResponse({"name": operation.name})

    async def get_operation(request: Request) -> Response:
        key = authenticate(request)
        await core.inject("poll")
        model, operation_id = request.path_params["model"], request.path_params["operation_id"]
        operation = book.find(f"models/{model}/operations/{operation_id}", key)
        book.counters.polls += 1
        host = request.headers.get("host") or request.url.netloc
        return JSONResponse(operation.to_json(host, time.monotonic()))

    async def download(request: Request) -> Response:
        key = authenticate(request)
        file_id, _, method = request.path_params["file_action"].rpartition(":")
        if method != "download" or not file_id:
            raise NotFound(f"Method not found: files/{request.path_params['file_action']}")
        if request.query_params.get("alt") != "media":
            raise InvalidArgument("files:download needs alt=media.")
        fault = await core.inject("download")
        return await core.serve_file(request, book.file(file_id, key), fault)

    async def media(request: Request) -> Response:
        return core.media(request.path_params["token"])

    def model_json(name: str) -> dict[str, Any]:
        method = "createInteraction" if name in omni.MODELS else "predictLongRunning"
        return {
            "name": f"models/{name}",
            "displayName": name,
            "supportedGenerationMethods": [method],
        }

    async def list_models(request: Request) -> Response:
        authenticate(request)
        served = [name for name in (*models, *omni.MODELS) if core.knows("gemini", name)]
        return JSONResponse({"models": [model_json(name) for name in served]})

    async def get_model(request: Request) -> Response:
        # Google checks the key before it looks the model up: a bad key is a 400 either way.
        authenticate(request)
        model = request.path_params["model_action"]
        if not core.knows("gemini", model):
            raise NotFound(f"models/{model} is not found for API version v1beta.")
        return JSONResponse(model_json(model))

    async def stats(request: Request) -> Response:
        return JSONResponse(core.stats())

    async def requests_log(request: Request) -> Response:
        return JSONResponse(list(core.requests))

    async def operations(request: Request) -> Response:
        return JSONResponse(book.timeline())

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
        await book.open()
        try:
            yield
        finally:
            await book.aclose()

    app = Starlette(
        routes=[
            Route("/v1beta/models", list_models, methods=["GET"]),
            Route("/v1beta/models/{model_action}", predict, methods=["POST"]),
            Route("/v1beta/models/{model_action}", get_model, methods=["GET"]),
            Route(
                "/v1beta/models/{model}/operations/{operation_id}", get_operation, methods=["GET"]
            ),
            Route("/v1beta/files/{file_action}", download, methods=["GET"]),
            *vertex.routes(core),
            *interactions.routes(core),
            Route("/_emulator/media/{token}", media, methods=["GET"], name="emulator_media"),
            Route("/_emulator/stats", stats, methods=["GET"]),
            Route("/_emulator/requests", requests_log, methods=["GET"]),
            Route("/_emulator/operations", operations, methods=["GET"]),
        ],
        exception_handlers={GatewayError: gateway_error, HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.core = core  # for tests that look at an operation's own clock
    return app
