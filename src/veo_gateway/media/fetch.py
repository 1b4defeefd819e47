"""Downloading untrusted image URLs without letting them reach inside the network (SSRF).

The host is resolved once, every address it resolves to is checked, and the connection goes to
the checked address (the original name kept for the Host header and TLS), so a DNS answer that
changes between check and connect cannot slip through. Redirects are followed by hand, each hop
checked the same way. The body is streamed and cut off at the size cap; one deadline covers it all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one image download."""

    timeout: float = 15.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    allow_private: bool = False


class FetchRefused(Exception):
    """Why a URL was refused or could not be downloaded, in words for the client."""


def forbidden_reason(ip: IPAddress) -> str | None:
    """None when `ip` is a public address; otherwise why it is refused."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and int(ip) >> 32 == 0 and int(ip) > 1:
            embedded = ipaddress.IPv4Address(int(ip))  # IPv4-compatible ::a.b.c.d
        if embedded is not None:
            return forbidden_reason(embedded)
    if ip in _METADATA:
        return "cloud metadata"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT)),
        ("reserved", ip.is_reserved),
        ("not globally routable", not ip.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


AddressPolicy = Callable[[IPAddress], str | None]


class SafeFetcher:
    """Fetches http(s) URLs under FetchLimits, refusing forbidden addresses at every hop.

    `address_policy` is the check applied to each resolved address (default: forbidden_reason,
    or nothing when `allow_private`); tests pass their own to allow one loopback server.
    """

    def __init__(
        self,
        limits: FetchLimits,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self._limits = limits
        if address_policy is None:
            address_policy = (lambda _ip: None) if limits.allow_private else forbidden_reason
        self._policy = address_policy
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(limits.timeout),
            headers={"User-Agent": "veo-gateway image fetcher"},
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def fetch(self, url: str) -> bytes:
        """The body of `url`, or FetchRefused saying why not."""
        try:
            async with asyncio.timeout(self._limits.timeout):
                return await self._follow(url)
        except TimeoutError:
            raise FetchRefused(f"timed out after {self._limits.timeout:g} s") from None

    async def _follow(self, url: str) -> bytes:
        for _ in range(self._limits.max_redirects + 1):
            response = await self._open(url)
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchRefused(f"HTTP {response.status_code} without a Location")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise FetchRefused(f"HTTP {response.status_code}")
                return await self._read(response)
            finally:
                await response.aclose()
        raise FetchRefused(f"too many redirects (more than {self._limits.max_redirects})")

    async def _open(self, url: str) -> httpx.Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchRefused(f"scheme {parts.scheme!r} is not allowed: use http or https")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused("URLs with credentials are not allowed")
        host = parts.hostname
        if not host:
            raise FetchRefused("the URL has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchRefused(f"bad port: {exc}") from None
        address = await self._resolve(host, port)
        target = httpx.URL(url).copy_with(host=str(address))
        headers = {"Host": parts.netloc.rpartition("@")[2]}
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request = self._client.build_request("GET", target, headers=headers, extensions=extensions)
        try:
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FetchRefused(f"could not connect: {type(exc).__name__}") from exc

    async def _resolve(self, host: str, port: int) -> IPAddress:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchRefused(f"host {host!r} could not be resolved") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise FetchRefused(f"host {host!r} has no address")
        # Every answer must pass: a name with one public and one internal address is refused.
        for address in addresses:
            if reason := self._policy(address):
                raise FetchRefused(f"address {address} is {reason}")
        return addresses[0]

    async def _read(self, response: httpx.Response) -> bytes:
        limit = self._limits.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchRefused(f"larger than {limit // (1024 * 1024)} MB")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchRefused(f"larger than {limit // (1024 * 1024)} MB")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise FetchRefused(f"the download broke off: {type(exc).__name__}") from exc
        return b"".join(chunks)
