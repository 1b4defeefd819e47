"""`Observe`, the outermost ASGI layer: counts, times and logs each request and gives it an id.

It is plain ASGI (no BaseHTTPMiddleware) and sits in front of the status fast path, which
answers before FastAPI's routing, so polls are counted and logged like every other request. The
per-request work is a few dictionary look-ups, two metric updates and, when the access log is
enabled, one access line queued after the response has gone out (observability/logs.py).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veo_gateway.errors import GatewayError
from veo_gateway.observability.logs import ACCESS_LOGGER, AccessEntry, sole_line_handler
from veo_gateway.observability.metrics import Metrics

access_log = logging.getLogger(ACCESS_LOGGER)

# A client's X-Request-ID is kept when it is this sane; anything else is replaced. Task ids
# taken from a path are logged only when they look like one (a path can hold anything).
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_SANE_TASK_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# The status poll is answered before routing (api/status.py), so its template is known here.
_STATUS_PATH = re.compile(r"/v1/videos/([^/]+)")
STATUS_ROUTE = "/v1/videos/{task_id}"
# Requests no route matched are counted under one label, never under their raw path.
UNMATCHED = "unmatched"
_CREATE_BODY_LIMIT = 64 * 1024
# How long the access log reuses the key name it found for an Authorization header.
_KEY_NAME_SECONDS = 5.0
# Methods become a metric label: anything else a client sends is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/v1/videos/{task_id}`), never the raw path."""
    return _route(scope)[0]


def _route(scope: Scope) -> tuple[str, str | None]:
    """The route's template and the task id in the path, if it has one (not yet checked)."""
    route = scope.get("route")
    if route is not None:
        params = scope.get("path_params")
        task_id = params.get("task_id") if params else None
        return str(getattr(route, "path", UNMATCHED)), None if task_id is None else str(task_id)
    if scope["method"] == "GET":
        match = _STATUS_PATH.fullmatch(scope["path"])
        if match is not None:
            return STATUS_ROUTE, match.group(1)
    return UNMATCHED, None


def _created_task_id(create_body: bytes | bytearray) -> str | None:
    try:
        created = json.loads(create_body)
    except ValueError:
        return None
    return str(created["id"]) if isinstance(created, dict) and "id" in created else None


class Observe:
    """Request id in and out, HTTP metrics, and one access-log line per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: str = "all") -> None:
        self.app = app
        self.metrics = metrics
        # The lowest status that gets an access line: "all" 0, "errors" 400, "off" never.
        self.log_from = {"all": 0, "errors": 400}.get(access_log, 1000)
        self.key_names = _KeyNames()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id: bytes | None = None
        authorization: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"authorization":
                authorization = value
        if request_id is None or not _SANE_REQUEST_ID.fullmatch(request_id):
            # Unique, not secret: no system call for it.
            request_id = b"%024x" % random.getrandbits(96)
        # Creates answer with the new task's id in the body: keep it for the log line.
        capture = scope["method"] == "POST" and scope["path"] == "/v1/videos"
        status = 500
        started = False
        body = bytearray()

        async def observed_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id)]
                message = {**message, "headers": headers}
            elif capture and status < 300 and len(body) < _CREATE_BODY_LIMIT:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            # Unhandled: the app's last-resort handler (outside this layer) logs it and would
            # answer without the request id, so the answer is sent from here.
            if not started:
                await _internal_error(observed_send)
            await self._record(scope, start, 500, request_id, authorization, b"")
            raise
        await self._record(scope, start, status, request_id, authorization, body)

    async def _record(
        self,
        scope: Scope,
        start: float,
        status: int,
        request_id: bytes,
        authorization: bytes | None,
        create_body: bytes | bytearray,
    ) -> None:
        seconds = time.perf_counter() - start
        route, task_id = _route(scope)
        method: str = scope["method"] if scope["method"] in _METHODS else "other"
        self.metrics.http_request(route, method, status, seconds)
        if status < self.log_from or not access_log.isEnabledFor(logging.INFO):
            return
        # A line per request, so it is built with as little work as will do.
        key = self.key_names.cached(authorization, status)
        if key is _UNKNOWN:
            key = await self.key_names.look_up(scope, authorization)
        if create_body and status < 300:
            task_id = _created_task_id(create_body)
        entry = AccessEntry(
            request_id.decode(),
            method,
            route,
            status,
            round(seconds * 1000, 2),
            key,
            task_id if task_id is not None and _SANE_TASK_ID.fullmatch(task_id) else None,
        )
        # When the gateway's own handler is the only one to see the line, it is written
        # directly, with no LogRecord: the same text at a fraction of the cost. Otherwise (a
        # handler of a log shipper or of pytest) it goes through `logging` like any record.
        handler = sole_line_handler(access_log)
        if handler is not None:
            handler.access(entry)
            return
        # makeRecord and handle are what `info` does, less the search for the caller's frame.
        access_log.handle(
            access_log.makeRecord(
                ACCESS_LOGGER,
                logging.INFO,
                __file__,
                0,
                "%s %s %d",
                (method, route, status),
                None,
                extra={"fields": entry._asdict()},
            )
        )


# `_KeyNames.cached` when the name has to be looked up.
_UNKNOWN = "\0unknown"


class _KeyNames:
    """The name of the client key each request was made with (never the key), None if none.

    Looking it up means a SHA-256 of the key and two cached look-ups, a tenth of a status
    poll, so the answer is kept for a few seconds by the header's `hash()`: a keyed 64-bit
    hash (SipHash, its key drawn per process), so no secret is held. The request has been
    authenticated already, or refused (401, no name): only names of keys that were valid
    are kept, and the authenticator and the names it looks up keep theirs that long too.
    """

    def __init__(self) -> None:
        self._cache: dict[int, tuple[str, float]] = {}

    def cached(self, authorization: bytes | None, status: int) -> str | None:
        """The name if it is known without a look-up (None: no key), else `_UNKNOWN`."""
        if authorization is None or status == 401:
            return None
        cached = self._cache.get(hash(authorization))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return _UNKNOWN

    async def look_up(self, scope: Scope, authorization: bytes | None) -> str | None:
        """The name of the key in `authorization`, None if it is not a valid key."""
        state = scope["app"].state
        services = getattr(state, "services", None)
        names = getattr(state, "key_names", None)
        if authorization is None or services is None or names is None:
            return None
        try:
            owner: str = await services.auth.owner(authorization.decode("latin-1"))
        except GatewayError:
            return None
        name: str = await names.name(owner)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[hash(authorization)] = (name, time.monotonic() + _KEY_NAME_SECONDS)
        return name


async def _internal_error(send: Send) -> None:
    error = GatewayError("internal error; it has been logged")
    body = json.dumps(error.to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
