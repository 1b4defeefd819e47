"""Loopback-only plumbing for the media tests.

Real HTTP(S) servers on loopback addresses, a transport that fails the test if a request is about
to leave loopback (so a fetcher bug cannot send traffic anywhere else), and a stand-in resolver
for names that cannot be resolved offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.media import make_image
from veo_gateway.media.fetch import AddressPolicy, FetchLimits, SafeFetcher, forbidden_reason

PNG = make_image("PNG", color=(200, 80, 40))
JPEG = make_image("JPEG", color=(20, 160, 90))
WEBP = make_image("WEBP", color=(90, 20, 200))
ALT_LOOPBACK = ipaddress.IPv4Address("127.0.0.2")


def allow_alt_only(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """An address policy treating 127.0.0.2 as a public host and judging the rest as usual."""
    return None if ip == ALT_LOOPBACK else forbidden_reason(ip)


class LoopbackOnly(httpx.AsyncBaseTransport):
    """Real HTTP, but only to loopback IP literals; records (target host, Host header)."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = ipaddress.ip_address(request.url.host)  # ValueError: not an IP literal
        mapped = getattr(target, "ipv4_mapped", None)
        if not (target.is_loopback or (mapped is not None and mapped.is_loopback)):
            raise AssertionError(f"the fetcher tried to reach {target}")
        self.seen.append((request.url.host, request.headers["host"]))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    """A running test server: its base URL, port, and the paths it was asked for."""

    url: str
    port: int
    hits: list[str] = field(default_factory=list)


def _send(
    handler: http.server.BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    headers = {"Content-Length": str(len(body)), **(headers or {})}
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def _answer(handler: http.server.BaseHTTPRequestHandler) -> None:
    parts = urlsplit(handler.path)
    path, query = parts.path, parse_qs(parts.query)
    name, _, arg = path.strip("/").partition("/")
    if name in ("img.png", "img.jpg", "img.webp"):
        body, mime = {
            "img.png": (PNG, "image/png"),
            "img.jpg": (JPEG, "image/jpeg"),
            "img.webp": (WEBP, "image/webp"),
        }[name]
        _send(handler, 200, body, {"Content-Type": mime})
    elif name == "redirect":  # /redirect/N: N redirects, then the PNG
        hops = int(arg)
        if hops:
            _send(handler, 302, headers={"Location": f"/redirect/{hops - 1}"})
        else:
            _send(handler, 200, PNG, {"Content-Type": "image/png"})
    elif name == "to":  # /to?u=URL: one redirect to any URL
        _send(handler, 302, headers={"Location": query["u"][0]})
    elif name == "no-location":
        _send(handler, 302)
    elif name == "status":
        _send(handler, int(arg), b"nope")
    elif name == "host":  # the Host header the server received, as the body
        _send(handler, 200, handler.headers["Host"].encode())
    elif name == "bytes":  # /bytes/N with a Content-Length
        _send(handler, 200, b"x" * int(arg))
    elif name == "declared-huge":  # claims 100 MB, sends little
        _send(handler, 200, b"x" * 1000, {"Content-Length": str(100 * 1024 * 1024)})
    elif name == "stream-huge":  # no Content-Length: the body runs until the connection closes
        handler.send_response(200)
        handler.end_headers()
        for _ in range(64):
            handler.wfile.write(b"x" * 65536)
    elif name == "slow":  # 100 bytes, one every 50 ms
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.05)
    elif name == "slow-image":  # the PNG after a pause
        time.sleep(float(arg))
        _send(handler, 200, PNG, {"Content-Type": "image/png"})
    elif name == "slow-hop":  # /slow-hop/N: a pause, then a redirect (N times), then the PNG
        time.sleep(0.3)
        hops = int(arg)
        if hops:
            _send(handler, 302, headers={"Location": f"/slow-hop/{hops - 1}"})
        else:
            _send(handler, 200, PNG, {"Content-Type": "image/png"})
    else:
        _send(handler, 404, b"not found")


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        # The fetcher hangs up on purpose (size cap, timeout): not an error here.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            _answer(self)

    def log_message(self, *args: Any) -> None:
        pass


class _Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def serve(
    host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, port: int = 0
) -> Iterator[Server]:
    """Serve the routes above on `host` (a loopback address) in a thread."""
    hits: list[str] = []
    handler = type("Handler", (_Handler,), {"hits": hits})
    server_class = _Server6 if ":" in host else http.server.ThreadingHTTPServer
    httpd = server_class((host, port), handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    bound = httpd.server_address[1]
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    try:
        yield Server(url=f"{scheme}://{shown}:{bound}", port=bound, hits=hits)
    finally:
        httpd.shutdown()
        httpd.server_close()


def can_bind(host: str) -> bool:
    """True when a socket can listen on `host` here (IPv6, or 127.0.0.2, may be missing)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.fixture
def server() -> Iterator[Server]:
    with serve("127.0.0.1") as running:
        yield running


@pytest.fixture
def alt_server() -> Iterator[Server]:
    """A server on 127.0.0.2, the stand-in for a public host (see allow_alt_only)."""
    if not can_bind(str(ALT_LOOPBACK)):
        pytest.skip("127.0.0.2 is not a usable loopback address here")
    with serve(str(ALT_LOOPBACK)) as running:
        yield running


@pytest.fixture
def server6() -> Iterator[Server]:
    if not can_bind("::1"):
        pytest.skip("no IPv6 loopback here")
    with serve("::1") as running:
        yield running


# --- fetchers --------------------------------------------------------------------------------

MakeFetcher = Callable[..., SafeFetcher]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[MakeFetcher]:
    """Build SafeFetchers that can only reach loopback; all closed after the test."""
    made: list[SafeFetcher] = []

    def make(
        limits: FetchLimits | None = None,
        *,
        policy: AddressPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> SafeFetcher:
        fetcher = SafeFetcher(
            limits or FetchLimits(), transport=transport or LoopbackOnly(), address_policy=policy
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


# --- a resolver for names that only exist in a test ------------------------------------------


@dataclass
class FakeDNS:
    """Answers for made-up names (each call takes the next answer; the last one repeats)."""

    answers: dict[str, list[list[str]]]
    calls: list[str] = field(default_factory=list)


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    """Replace the running loop's getaddrinfo for the names put in `answers`; others pass."""
    dns = FakeDNS(answers={})
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in dns.answers:
            return await real(host, port, *args, **kwargs)
        dns.calls.append(host)
        queue = dns.answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in answer
        ]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return dns


# --- TLS -------------------------------------------------------------------------------------


@dataclass
class Certificate:
    """A self-signed certificate for some DNS names, and contexts to serve and trust it."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def make_certificate(tmp_path: Path, *names: str) -> Certificate:
    """Self-signed, with the names as DNS SANs and no IP address at all."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return Certificate(server=server, client=client)
