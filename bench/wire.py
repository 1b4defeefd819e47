"""A lean HTTP/1.1 client for load generation: kept-alive connections, Content-Length bodies.

The benchmarks measure the gateway, so their clients must cost little of the CPU it shares
with them: httpx spends about a millisecond of Python per request, which at a thousand status
polls a second takes most of a core from the gateway under test. This client writes a request
as one buffer and reads the answer with a Content-Length (what the gateway always sends for
the requests the benchmarks make). It is for the benchmarks only, not for the product.

A request whose kept-alive connection the server closed under it (uvicorn closes idle ones after
5 s) is sent again on a new connection, up to three times; `retried` counts them. Only for
idempotent requests (status polls; creates that carry an `Idempotency-Key`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

_CLOSED = (ConnectionError, asyncio.IncompleteReadError, EOFError)


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WireClient:
    """`size` kept-alive connections to `host:port`, each carrying one request at a time."""

    host: str
    port: int
    headers: dict[str, str]
    size: int = 32
    retried: list[int] = field(default_factory=lambda: [0])
    _idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = field(
        init=False
    )

    def __post_init__(self) -> None:
        self._idle = asyncio.Queue()
        for _ in range(self.size):
            self._idle.put_nowait(None)  # a connection not opened yet
        common = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        self._common = f"Host: {self.host}:{self.port}\r\n{common}"

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        head = f"{method} {path} HTTP/1.1\r\n{self._common}"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        message = (head + "\r\n").encode() + payload
        connection = await self._idle.get()
        for attempt in range(4):
            try:
                if connection is None:
                    connection = await asyncio.open_connection(self.host, self.port)
                answer = await _exchange(*connection, message)
            except BaseException as exc:
                if connection is not None:
                    connection[1].close()  # in an unknown state: never reused
                connection = None
                if not isinstance(exc, _CLOSED) or attempt == 3:
                    self._idle.put_nowait(None)
                    raise
                self.retried[0] += 1
                continue
            self._idle.put_nowait(connection)
            return answer
        raise AssertionError("unreachable")

    async def close(self) -> None:
        while not self._idle.empty():
            connection = self._idle.get_nowait()
            if connection is not None:
                connection[1].close()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes
) -> Answer:
    writer.write(message)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return Answer(status, await reader.readexactly(length))
