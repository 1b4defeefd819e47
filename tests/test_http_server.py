"""`serve`'s HTTP protocol stops reading a request head over the cap and answers 431."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from tests.conftest import KEY_A, gateway_settings
from veo_gateway.app import create_app
from veo_gateway.http_server import HeadLimitedHttpTools, uvicorn_options


@contextmanager
def serve(tmp_path: Path, **overrides: object) -> Iterator[int]:
    settings = gateway_settings(tmp_path, worker_enabled=False, **overrides)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def exchange(port: int, head: bytes, then: bytes = b"") -> bytes:
    """Send a request head (and more), return all the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        sent = 0
        try:
            while sent < len(then):
                sent += conn.send(then[sent : sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what this is about
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def test_serve_uses_the_bounded_protocol(tmp_path: Path) -> None:
    options = uvicorn_options(gateway_settings(tmp_path, max_header_bytes=8192))
    assert options == {"http": HeadLimitedHttpTools, "h11_max_incomplete_event_size": 8192}


def test_a_huge_header_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    with serve(tmp_path, max_header_bytes=8192) as port:
        # 50 MB of header, never finished: the old server kept reading (and holding) it all.
        head = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: "
        answer = exchange(port, head, b"a" * (50 * 1024 * 1024))
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
        body = json.loads(rest.partition(b"\r\n\r\n")[2])
        assert body["error"]["code"] == 431


def test_heads_under_the_cap_and_bodies_after_them_are_served(tmp_path: Path) -> None:
    with serve(tmp_path, max_header_bytes=8192) as port:
        auth = f"Authorization: Bearer {KEY_A}\r\n".encode()
        answer = exchange(
            port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + b"\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        # A body far larger than the head cap, in the same packets as the head, is not a head.
        body = json.dumps({"name": "x" * 100_000}).encode()
        head = (
            b"POST /admin/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        answer = exchange(port, head + body)
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]  # admin API off: read, refused


def test_the_app_check_covers_a_head_that_arrives_in_one_piece(tmp_path: Path) -> None:
    with serve(tmp_path, max_header_bytes=4096) as port:
        head = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: " + b"a" * 6000
        answer = exchange(port, head + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_bodies_sent_after_their_head_are_not_counted_as_heads(tmp_path: Path) -> None:
    """Clients send the head, then the body in chunks: a chunk that completes a body is body.
    (Counting it as the next request's head refused every body over the cap: a 100 kB JSON
    body, or any create with an image, got the connection closed.)"""
    auth = {"Authorization": f"Bearer {KEY_A}"}
    # A real client on one kept-alive connection: large bodies the app reads to the end (an
    # unknown model is refused only once the body is parsed), then a small request.
    with (
        serve(tmp_path, max_header_bytes=8192) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        for size in (100_000, 2_000_000, 7_000_000):
            body = {"model": "no-such-model", "prompt": "x" * size}
            refused = client.post("/v1/videos", json=body, headers=auth)
            assert refused.status_code == 400, (size, refused.text[:200])
            assert "no-such-model" in refused.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200
