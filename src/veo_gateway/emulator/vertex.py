"""The emulator's Vertex AI protocol, and the Cloud Storage JSON API that serves its results.

Routes, as Google serves them (``Authorization: Bearer {token}``; ``v1`` and ``v1beta1``, the
version the google-genai SDK uses)::

    POST /{v}/projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning
    POST /{v}/projects/{p}/locations/{l}/publishers/google/models/{m}:fetchPredictOperation
         {"operationName": "projects/.../models/{m}/operations/{id}"}
    GET  /{v}/publishers/google/models/{m}     -> the publisher model, or 404 (the SDK's
                                                   `models.get` on Vertex; read-only)
    GET  /storage/v1/b/{bucket}/o/{object}?alt=media

A finished operation carries its videos inline (``bytesBase64Encoded``) or, when the request set
``parameters.storageUri`` to ``gs://bucket/prefix``, as ``gcsUri`` objects under that prefix,
which the storage route serves to the same credential.
"""

from __future__ import annotations

import base64
import hmac
import re
import time
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from veo_gateway.emulator import google_rules, protocol
from veo_gateway.emulator.core import EmulatorCore
from veo_gateway.emulator.operations import Operation, Outcome
from veo_gateway.errors import InvalidArgument, NotFound, Unauthenticated

VERSIONS = ("v1", "v1beta1")
RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
NO_CREDENTIAL_MESSAGE = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential."
)
BAD_CREDENTIAL_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential."
)
_GCS_URI = re.compile(r"gs://([a-z0-9][a-z0-9._-]{1,220})(?:/(.*))?")


def operation_json(operation: Operation, videos: list[dict[str, str]] | None) -> dict[str, Any]:
    """A Vertex operation as fetchPredictOperation returns it (`videos` once it is done)."""
    if videos is None:
        return {"name": operation.name}
    done: dict[str, Any] = {"name": operation.name, "done": True}
    if operation.outcome is Outcome.FAILED:
        done["error"] = {"code": protocol.FAILED_CODE, "message": protocol.FAILED_MESSAGE}
    elif operation.render_error is not None:
        done["error"] = {"code": protocol.FAILED_CODE, "message": operation.render_error}
    elif operation.outcome is Outcome.BLOCKED:
        done["response"] = {
            "@type": RESPONSE_TYPE,
            "raiMediaFilteredCount": 1,
            "raiMediaFilteredReasons": [protocol.BLOCKED_REASON],
        }
    else:
        done["response"] = {
            "@type": RESPONSE_TYPE,
            "raiMediaFilteredCount": operation.filtered,
            "videos": videos,
        }
        if operation.filtered:
            done["response"]["raiMediaFilteredReasons"] = [protocol.BLOCKED_REASON]
    return done


def routes(core: EmulatorCore) -> list[BaseRoute]:
    """The Vertex AI and Cloud Storage routes, served from `core`."""
    book = core.book
    tokens = [token.encode() for token in core.config.vertex_tokens]

    def authenticate(request: Request) -> str:
        """The caller's bearer token, once checked."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(NO_CREDENTIAL_MESSAGE)
        token = token.strip()
        if tokens and not any(hmac.compare_digest(token.encode(), known) for known in tokens):
            raise Unauthenticated(BAD_CREDENTIAL_MESSAGE)
        return token

    def model_and_method(request: Request) -> tuple[str, str, str]:
        params = request.path_params
        if params["version"] not in VERSIONS:
            raise NotFound(f"The requested URL {request.url.path} was not found.")
        model, _, method = params["model_action"].rpartition(":")
        parent = (
            f"projects/{params['project']}/locations/{params['location']}"
            f"/publishers/google/models/{model}"
        )
        if not core.serves("vertex", model):
            raise NotFound(
                f"Publisher Model `{parent}` not found.",
            )
        return model, method, parent

    async def model_action(request: Request) -> Response:
        token = authenticate(request)
        model, method, parent = model_and_method(request)
        if method == "predictLongRunning":
            return await predict(request, token, model, parent)
        if method == "fetchPredictOperation":
            return await fetch(request, token, parent)
        raise NotFound(f"Method not found: {method or request.path_params['model_action']}")

    async def predict(request: Request, token: str, model: str, parent: str) -> Response:
        async with core.submission_call(token) as entry:
            fault = await core.inject("submit")
            submission, output, payload = await core.read_predict(
                request, model, "vertex", token, lambda uri: _object_file(core, uri)
            )
            entry["prompt"] = submission.prompt
            storage_uri = (payload.get("parameters") or {}).get("storageUri")
            if storage_uri is not None and (
                not isinstance(storage_uri, str) or not _GCS_URI.fullmatch(storage_uri)
            ):
                raise InvalidArgument("storageUri must be a Cloud Storage URI: gs://bucket/prefix")
            core.admit(token)
            operation = await book.submit(
                submission,
                output,
                google_rules.sample_count(submission),
                owner=token,
                parent=parent,
                storage_uri=storage_uri,
                injected=core.faults.draw("operation"),
            )
            core.learn_operation(entry, operation, token)
            await core.hold_answer(fault)
        return JSONResponse({"name": operation.name})

    async def fetch(request: Request, token: str, parent: str) -> Response:
        await core.inject("poll")
        payload = protocol.parse_json(await request.body())
        name = payload.get("operationName")
        if not isinstance(name, str) or not name.startswith(parent + "/operations/"):
            raise InvalidArgument(f"operationName must be an operation of {parent}.")
        operation = book.find(name, token)
        book.counters.polls += 1
        videos = None
        if operation.is_done(time.monotonic()):
            videos = await anyio.to_thread.run_sync(_videos, core, operation)
        return JSONResponse(operation_json(operation, videos))

    async def publisher_model(request: Request) -> Response:
        authenticate(request)
        version, model = request.path_params["version"], request.path_params["model"]
        name = f"publishers/google/models/{model}"
        if version not in VERSIONS or not core.knows("vertex", model):
            raise NotFound(f"Publisher Model `{name}` not found.")
        version_id = model.rpartition("-")[2]
        return JSONResponse(
            {
                "name": name,
                "versionId": version_id,
                "openSourceCategory": "PROPRIETARY",
                "launchStage": "PUBLIC_PREVIEW" if model.endswith("-preview") else "GA",
                "publisherModelTemplate": f"projects/{{project}}/locations/{{location}}/{name}",
            }
        )

    async def gcs_object(request: Request) -> Response:
        token = authenticate(request)
        bucket, name = request.path_params["bucket"], request.path_params["object"]
        if request.query_params.get("alt") != "media":
            raise InvalidArgument("This stand-in serves object media only: add alt=media.")
        file_id = _object_file(core, f"gs://{bucket}/{name}")
        if file_id is None:
            raise NotFound(f"No such object: {bucket}/{name}")
        fault = await core.inject("download")
        return await core.serve_file(request, book.file(file_id, token), fault)

    prefix = "/{version}/projects/{project}/locations/{location}/publishers/google/models"
    return [
        Route(f"{prefix}/{{model_action}}", model_action, methods=["POST"]),
        Route("/{version}/publishers/google/models/{model}", publisher_model, methods=["GET"]),
        Route("/storage/v1/b/{bucket}/o/{object:path}", gcs_object, methods=["GET"]),
    ]


def gcs_uri(operation: Operation, index: int) -> str:
    """Where sample `index` of `operation` is written under its storageUri."""
    assert operation.storage_uri is not None
    return f"{operation.storage_uri.rstrip('/')}/{operation.id}/sample_{index}.mp4"


def _object_file(core: EmulatorCore, uri: str) -> str | None:
    """The file id behind a gs:// object an operation wrote, or None."""
    # Objects are named ".../{operation id}/sample_{index}.mp4" (see gcs_uri).
    head, _, sample = uri.rpartition("/")
    operation = core.book.get(head.rpartition("/")[2])
    index = sample.removeprefix("sample_").removesuffix(".mp4")
    if operation is None or not operation.storage_uri or not index.isascii():
        return None
    if not index.isdigit() or int(index) >= len(operation.file_ids):
        return None
    return operation.file_ids[int(index)] if gcs_uri(operation, int(index)) == uri else None


def _videos(core: EmulatorCore, operation: Operation) -> list[dict[str, str]]:
    """The finished operation's videos: gs:// URIs, or the MP4 bytes inline (read here, in a
    thread, since a video is megabytes)."""
    if operation.outcome is not Outcome.VIDEO or operation.render_error is not None:
        return []
    if operation.storage_uri:
        return [
            {"gcsUri": gcs_uri(operation, index), "mimeType": "video/mp4"}
            for index in range(len(operation.file_ids))
        ]
    return [
        {
            "bytesBase64Encoded": base64.b64encode(core.book.file(file_id).read_bytes()).decode(
                "ascii"
            ),
            "mimeType": "video/mp4",
        }
        for file_id in operation.file_ids
    ]
