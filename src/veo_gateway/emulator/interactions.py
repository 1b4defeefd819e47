"""The emulator's Interactions API: Gemini Omni's video generation, on both of Google's protocols.

Routes, as google-genai 3.x calls them (its Gemini API default is ``v1``, the official curl
examples use ``v1beta``; on Vertex AI it sends ``v1beta1``, and ``v1`` is answered too)::

    POST /{v1,v1beta}/interactions                        (x-goog-api-key, or ?key=)
    GET  /{v1,v1beta}/interactions/{id}
    POST /{v1,v1beta}/interactions/{id}/cancel
    POST /{v1,v1beta1}/projects/{p}/locations/{l}/interactions        (Authorization: Bearer)
    GET  /{v1,v1beta1}/projects/{p}/locations/{l}/interactions/{id}
    POST /{v1,v1beta1}/projects/{p}/locations/{l}/interactions/{id}/cancel

An interaction is an operation of the same book as predictLongRunning's (same quotas, faults,
persistence and renders), owned by the credential that created it. Its status is
``in_progress`` until its render is done, then ``completed`` with the video as the last content
block of a ``model_output`` step: inline (``data``, base64) or by ``uri`` (on the Gemini API a
``files/{id}:download`` URL of this emulator, as predictLongRunning's samples; on Vertex AI a
``gs://`` object under ``gcs_uri``, served by the Cloud Storage stand-in). ``failed`` carries
Google's reason in ``errors`` (a safety block says so: code ``safety``), ``[emulator:incomplete]``
in the prompt ends it ``incomplete``, and a cancel makes it ``cancelled``.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import time
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from veo_gateway.emulator import omni, protocol, vertex
from veo_gateway.emulator.core import EmulatorCore, off_loop_if_large
from veo_gateway.emulator.google_rules import Protocol
from veo_gateway.emulator.operations import Operation, Outcome
from veo_gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

GEMINI_VERSIONS = ("v1", "v1beta")
VERTEX_VERSIONS = ("v1", "v1beta1")
GEMINI_PARENT = "interactions"
INCOMPLETE_MARKER = "[emulator:incomplete]"
SAFETY_REASON = (
    "The video was not generated because the request was flagged by our safety filters "
    "(emulated). You will not be charged for blocked videos."
)
INCOMPLETE_REASON = "The interaction ended before its video was finished (emulated)."


def _iso(monotonic: float) -> str:
    wall = monotonic + time.time() - time.monotonic()
    stamp = datetime.datetime.fromtimestamp(wall, datetime.UTC).replace(microsecond=0)
    return stamp.isoformat().replace("+00:00", "Z")


def status_of(operation: Operation, now: float) -> str:
    """The interaction's status."""
    if operation.cancelled_at is not None:
        return "cancelled"
    if not operation.is_done(now):
        return "in_progress"
    if operation.outcome is not Outcome.VIDEO or operation.render_error is not None:
        return "failed"
    if (operation.interaction or {}).get("ending") == "incomplete":
        return "incomplete"
    return "completed"


def interaction_json(
    operation: Operation, now: float, video: dict[str, str] | None = None
) -> dict[str, Any]:
    """An interaction as Google returns it; `video` is the output block once it is done."""
    status = status_of(operation, now)
    info = operation.interaction or {}
    done_at = operation.done_at(now)
    body: dict[str, Any] = {
        "id": operation.id,
        "model": operation.model,
        "status": status,
        "created": _iso(operation.created_at),
        "updated": _iso(operation.created_at if done_at is None else done_at),
        "response_modalities": ["video"],
        "response_format": info.get("response_format") or {"type": "video"},
    }
    if status == "failed":
        if operation.outcome is Outcome.BLOCKED:
            code, message = "safety", SAFETY_REASON
        else:
            code, message = "internal", operation.render_error or protocol.FAILED_MESSAGE
        body["errors"] = [{"code": code, "message": message}]
        body["steps"] = [
            {"type": "model_output", "error": {"code": protocol.FAILED_CODE, "message": message}}
        ]
    elif status == "incomplete":
        body["errors"] = [{"code": "incomplete", "message": INCOMPLETE_REASON}]
    elif status == "completed" and video is not None:
        body["steps"] = [{"type": "model_output", "content": [video]}]
    return body


def _video_block(core: EmulatorCore, operation: Operation, host: str) -> dict[str, str]:
    """The finished video as a content block: its bytes inline (read here, in a thread, as a
    video is megabytes), a file URL of this emulator, or its gs:// object."""
    info = operation.interaction or {}
    file_id = operation.file_ids[0]
    if info.get("delivery") != "uri":
        data = core.book.file(file_id).read_bytes()
        return {"type": "video", "data": base64.b64encode(data).decode(), "mime_type": "video/mp4"}
    if operation.storage_uri:
        uri = vertex.gcs_uri(operation, 0)
    else:
        uri = f"https://{host}/v1beta/files/{file_id}:download?alt=media"
    return {"type": "video", "uri": uri, "mime_type": "video/mp4"}


def routes(core: EmulatorCore) -> list[BaseRoute]:
    """The Interactions routes of both protocols, served from `core`."""
    book = core.book
    keys = [key.encode() for key in core.config.api_keys]
    tokens = [token.encode() for token in core.config.vertex_tokens]

    def api_key(request: Request) -> str:
        if request.path_params["version"] not in GEMINI_VERSIONS:
            raise NotFound(f"The requested URL {request.url.path} was not found.")
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise PermissionDenied(protocol.MISSING_KEY)
        if keys and not any(hmac.compare_digest(key.encode(), known) for known in keys):
            raise InvalidArgument(protocol.BAD_KEY)
        return key

    def bearer(request: Request) -> tuple[str, str]:
        params = request.path_params
        if params["version"] not in VERTEX_VERSIONS:
            raise NotFound(f"The requested URL {request.url.path} was not found.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(vertex.NO_CREDENTIAL_MESSAGE)
        token = token.strip()
        if tokens and not any(hmac.compare_digest(token.encode(), known) for known in tokens):
            raise Unauthenticated(vertex.BAD_CREDENTIAL_MESSAGE)
        return token, f"projects/{params['project']}/locations/{params['location']}/interactions"

    async def create(request: Request, credential: str, dialect: Protocol, parent: str) -> Response:
        async with core.submission_call(credential) as entry:
            fault = await core.inject("submit")
            body = await request.body()
            payload = await off_loop_if_large(len(body), protocol.parse_json, body)
            core.requests.append({"path": request.url.path, "body": protocol.redact(payload)})
            model = payload.get("model")
            if not isinstance(model, str) or not model:
                raise InvalidArgument("model is required.")
            if model not in omni.MODELS or model in core.config.retired_models:
                version = request.path_params["version"]
                raise NotFound(f"models/{model} is not found for API version {version}.")
            judged = await off_loop_if_large(len(body), omni.parse_create, payload, dialect)
            entry["prompt"] = judged.submission.prompt
            core.admit(credential)
            ending = "incomplete" if INCOMPLETE_MARKER in judged.submission.prompt else None
            operation = await book.submit(
                judged.submission,
                judged.output,
                owner=credential,
                parent=parent,
                storage_uri=judged.gcs_uri,
                injected=core.faults.draw("operation"),
                interaction={
                    "delivery": judged.delivery,
                    "response_format": judged.response_format,
                    "ending": ending,
                },
            )
            core.learn_operation(entry, operation, credential)
            await core.hold_answer(fault)
        return JSONResponse(interaction_json(operation, time.monotonic()))

    async def get(request: Request, credential: str, parent: str) -> Response:
        await core.inject("poll")
        operation = book.interaction(request.path_params["id"], credential, parent)
        book.counters.polls += 1
        now = time.monotonic()
        video = None
        if status_of(operation, now) == "completed":
            host = request.headers.get("host") or request.url.netloc
            video = await anyio.to_thread.run_sync(_video_block, core, operation, host)
        return JSONResponse(interaction_json(operation, now, video))

    async def cancel(request: Request, credential: str, parent: str) -> Response:
        operation = book.interaction(request.path_params["id"], credential, parent)
        now = time.monotonic()
        status = status_of(operation, now)
        if status != "in_progress":
            raise FailedPrecondition(
                f"Interaction {operation.id} is {status}: only an interaction in progress can "
                "be cancelled."
            )
        await book.cancel(operation)
        return JSONResponse(interaction_json(operation, time.monotonic()))

    async def gemini_create(request: Request) -> Response:
        return await create(request, api_key(request), "gemini", GEMINI_PARENT)

    async def gemini_get(request: Request) -> Response:
        return await get(request, api_key(request), GEMINI_PARENT)

    async def gemini_cancel(request: Request) -> Response:
        return await cancel(request, api_key(request), GEMINI_PARENT)

    async def vertex_create(request: Request) -> Response:
        token, parent = bearer(request)
        return await create(request, token, "vertex", parent)

    async def vertex_get(request: Request) -> Response:
        return await get(request, *bearer(request))

    async def vertex_cancel(request: Request) -> Response:
        return await cancel(request, *bearer(request))

    gemini = "/{version}/interactions"
    place = "/{version}/projects/{project}/locations/{location}/interactions"
    return [
        Route(gemini, gemini_create, methods=["POST"]),
        Route(f"{gemini}/{{id}}", gemini_get, methods=["GET"]),
        Route(f"{gemini}/{{id}}/cancel", gemini_cancel, methods=["POST"]),
        Route(place, vertex_create, methods=["POST"]),
        Route(f"{place}/{{id}}", vertex_get, methods=["GET"]),
        Route(f"{place}/{{id}}/cancel", vertex_cancel, methods=["POST"]),
    ]
