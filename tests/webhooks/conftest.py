"""A webhook receiver on loopback, an independent Standard Webhooks verifier, outbox reads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.postgres import Database
from tests.support.servers import serve_app

SECRET = "whsec_" + base64.b64encode(b"test webhook key, 32 bytes long!").decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> Any:
    """Standard Webhooks verification, written from the specification (not the gateway's code):
    HMAC-SHA256 of `{id}.{timestamp}.{body}`, base64, compared with each `v1,` signature."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise AssertionError("timestamp outside the tolerance")
    if secret.startswith("whsec_"):
        key = base64.b64decode(secret[len("whsec_") :])
    else:
        key = secret.encode()
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for signature in headers["webhook-signature"].split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return json.loads(body)
    raise AssertionError("no signature matches")


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class Receiver:
    """An ASGI app that records every request and answers the scripted statuses, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.default = 200
        self.delay = 0.0  # seconds before answering
        self.hang = False  # never answer: wait until the sender hangs up
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else self.default
            self.requests.append(Received(scope["path"], headers, body, status))
        if self.hang:
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        extra = [(b"location", b"/elsewhere")] if 300 <= status < 400 else []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"2"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    def wait(self, count: int, timeout: float = 30.0) -> list[Received]:
        """The first `count` requests, once they have arrived."""
        wait_until(lambda: len(self.requests) >= count, timeout)
        with self._lock:
            return list(self.requests)


@dataclass
class ReceiverServer:
    url: str
    app: Receiver


@pytest.fixture
def receiver() -> Iterator[ReceiverServer]:
    """A webhook receiver on 127.0.0.1."""
    app = Receiver()
    with serve_app(app) as url:
        yield ReceiverServer(url, app)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout} s")


class Outbox:
    """Reads of the gateway's webhook tables, straight from its database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def deliveries(self, task_id: str) -> list[dict[str, Any]]:
        return self.db.rows(
            "SELECT * FROM webhook_deliveries WHERE task_id = :id ORDER BY url", id=task_id
        )

    def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        return self.db.rows(
            "SELECT * FROM webhook_attempts WHERE delivery_id = :id ORDER BY at, id", id=delivery_id
        )

    def task(self, task_id: str) -> dict[str, Any]:
        return self.db.rows("SELECT * FROM tasks WHERE id = :id", id=task_id)[0]


@pytest.fixture
def outbox(db: Database) -> Outbox:
    """The outbox of the gateways `make_gateway` starts (they share the test's database)."""
    return Outbox(db)
