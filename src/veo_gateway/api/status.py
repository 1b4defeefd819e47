"""`GET /v1/videos/{id}`, the status poll, answered before FastAPI's routing.

Clients poll this route far more than all the others together, and it does very little: check
the key, read one row, render it. Measured on the benchmark machine, FastAPI's routing and
middleware layers cost more per request than that work (docs/benchmarks.md), so this small ASGI
layer answers it first and hands every other request on. It uses the same services, the same
authentication and the same error envelope as the rest of the API.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from veo_gateway.api.render import render_task
from veo_gateway.errors import GatewayError, NotFound
from veo_gateway.store.tasks import FINAL_STATES, State, Task, TaskStore

# The route this layer serves, as the document names it (videos.py has the same route, for
# the document and for an app without this layer in front).
ROUTE = ("GET", "/v1/videos/{task_id}")
_STATUS_PATH = re.compile(r"/v1/videos/([^/]+)")
# Encodes as Starlette's JSONResponse does, the same bytes, without building a Response per poll.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_CONTENT_TYPE = (b"content-type", b"application/json")


# How soon a client should look again (OpenAI's `openai-poll-after-ms`), in milliseconds.
MIN_POLL_AFTER_MS = 1000
MAX_POLL_AFTER_MS = 10000


def poll_after(task: Task, now: float) -> dict[str, str]:
    """The `openai-poll-after-ms` header for an unfinished task: a quarter of the time it is
    still expected to take, between 1 and 10 seconds. None once the task has finished."""
    if task.state in FINAL_STATES:
        return {}
    if task.state is not State.IN_PROGRESS or task.submitted_at is None:
        return {"openai-poll-after-ms": str(2 * MIN_POLL_AFTER_MS)}
    left = (task.expected_seconds or 60.0) - (now - task.submitted_at)
    wait = min(MAX_POLL_AFTER_MS, max(MIN_POLL_AFTER_MS, int(left * 1000 / 4)))
    return {"openai-poll-after-ms": str(wait)}


async def owned_task(tasks: TaskStore, task_id: str, owner: str) -> Task:
    """The task if `owner` created it; 404 otherwise (another key's task does not exist)."""
    task = await tasks.get(task_id, owner)
    if task is None:
        raise NotFound(f"no video task with id {task_id!r}", param="id")
    return task


class StatusRoute:
    """Serves `GET /v1/videos/{id}`; passes everything else to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _STATUS_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        services = scope["app"].state.services
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            owner = await services.auth.owner(authorization)
            task = await owned_task(services.tasks, match.group(1), owner)
            now = time.time()
            retention = services.settings.retention_seconds
            body = render_task(task, now, retention)
        except GatewayError as error:
            response = JSONResponse(error.to_dict(), status_code=error.code, headers=error.headers)
            await response(scope, receive, send)
            return
        await _send_ok(send, body, poll_after(task, now))


async def _send_ok(send: Send, body: dict[str, Any], headers: dict[str, str]) -> None:
    """What `JSONResponse(body, headers=headers)` sends, header order included."""
    content = _JSON.encode(body).encode()
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    raw += [(b"content-length", b"%d" % len(content)), _CONTENT_TYPE]
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    await send({"type": "http.response.body", "body": content})
