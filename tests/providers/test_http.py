"""The adapters' HTTP client: proxies from the environment, what a failure says, strict JSON."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import math
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.servers import free_port, serve_app
from veo_gateway.domain.request import VideoRequest
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.errors import UpstreamUnavailable
from veo_gateway.providers.gemini import GeminiProvider
from veo_gateway.providers.http import UpstreamHttp

FAST = "veo-3.1-fast-generate-preview"


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.0, 0.0), api_keys=frozenset({"good"}), storage_dir=tmp_path / "emu"
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    """A forwarding HTTP proxy on loopback that records the request lines it carries."""
    seen: list[str] = []

    class Forward(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            seen.append(f"{self.command} {self.path}")
            target = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
            upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            upstream.close()

        do_GET = do_POST = _forward

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


async def test_a_proxy_set_in_the_environment_carries_every_upstream_call(
    emulator_url: str, proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with UpstreamHttp(timeout=30) as client:
        provider = GeminiProvider(api_key="good", base_url=emulator_url, client=client)
        name = await provider.submit(FAST, VideoRequest(model=FAST, prompt="a fox"))
        status = await provider.poll(name)
    assert status.error is None
    assert seen == [
        f"POST {emulator_url}/v1beta/models/{FAST}:predictLongRunning",
        f"GET {emulator_url}/v1beta/{name}",
    ]


async def test_no_proxy_exempts_a_host(
    emulator_url: str, proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with UpstreamHttp(timeout=30) as client:
        provider = GeminiProvider(api_key="good", base_url=emulator_url, client=client)
        await provider.submit(FAST, VideoRequest(model=FAST, prompt="a fox"))
    assert seen == []


async def test_a_refused_connection_reached_nothing_and_a_silent_server_may_have() -> None:
    async with UpstreamHttp(timeout=0.5) as client:
        refused = GeminiProvider(
            api_key="k", base_url=f"http://127.0.0.1:{free_port()}", client=client
        )
        with pytest.raises(UpstreamUnavailable) as info:
            await refused.submit(FAST, VideoRequest(model=FAST, prompt="x"))
        assert info.value.retryable and not info.value.maybe_received
        assert "could not be reached" in info.value.message

        # A server that takes the request and never answers: the job may have started.
        with _silent_server() as url:
            silent = GeminiProvider(api_key="k", base_url=url, client=client)
            with pytest.raises(UpstreamUnavailable) as info:
                await silent.submit(FAST, VideoRequest(model=FAST, prompt="x"))
        assert info.value.retryable and info.value.maybe_received


async def test_a_body_that_is_not_strict_json_is_never_sent(emulator_url: str) -> None:
    async with UpstreamHttp(timeout=30) as client:
        with pytest.raises(ValueError):
            await client.call_json(
                "POST", f"{emulator_url}/v1beta/x", {}, json_body={"seed": math.nan}
            )


@contextlib.contextmanager
def _silent_server() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = sock.accept()
                accepted.append(connection)  # read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
        for connection in accepted:
            connection.close()
