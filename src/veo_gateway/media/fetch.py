"""Downloading untrusted image URLs without letting them reach inside the network (SSRF).

Each hop is handled the same way: parse the URL (http or https only, no credentials), resolve the
host once with the system resolver, refuse the URL if ANY answer is a forbidden address, then
connect to one of those checked addresses, sending the original name in the Host header and as
the TLS server name (SNI and certificate check). No second lookup happens between the check and
the connection, so a DNS answer that changes in between (rebinding) cannot slip through.
Redirects are followed by hand, each new URL checked from the start. The body is streamed and cut
off at the size cap, and one deadline covers the whole download, redirects included.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from veo_gateway.domain.numbers import decimal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Decides whether one resolved address may be contacted: None allows it, a string says why not.
AddressPolicy = Callable[[IPAddress], str | None]

_METADATA = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
# CGNAT (100.64/10) is not "private" to Python's ipaddress, but it is just as internal.
_PRIVATE = tuple(
    ipaddress.ip_network(text)
    for text in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
# IPv6 addresses that are only a wrapper around an IPv4 address (the last 32 bits) which is the
# host really reached: NAT64 (RFC 6052) and SIIT's IPv4-translated form (RFC 2765).
_IPV4_WRAPPERS = tuple(ipaddress.ip_network(text) for text in ("64:ff9b::/96", "::ffff:0:0:0/96"))
_MIB = 1024 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one image download."""

    timeout: float = 15.0  # the whole download, redirects included
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    allow_private: bool = False


class FetchRefused(Exception):
    """Why a URL was refused or could not be downloaded, in words meant for the client."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    # IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks), NAT64, SIIT.
    if int(ip) >> 32 == 0 or any(ip in net for net in _IPV4_WRAPPERS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """None when `ip` is a public address; otherwise why it is refused ("loopback", ...)."""
    if ip in _METADATA:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        # `::` and `::1` first: they would otherwise read as IPv4-compatible 0.0.0.0 / 0.0.0.1.
        if ip.is_unspecified:
            return "unspecified"
        if ip.is_loopback:
            return "loopback"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return forbidden_reason(embedded)
        # 6to4 and Teredo tunnel to an IPv4 host: refuse when that host is internal, and judge
        # the IPv6 address itself too (Teredo, for one, is not globally routable).
        tunnelled = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if tunnelled is not None and (reason := forbidden_reason(tunnelled)):
            return reason
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if any(ip in net for net in _PRIVATE):
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # documentation, benchmarking, 0.0.0.0/8, Teredo, ...
        return "not globally routable"
    return None


def _metadata_reason(ip: IPAddress) -> str | None:
    # `allow_private` opens the internal network to image URLs, but never the metadata service:
    # it hands out credentials and is no place an image could come from.
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        ip = embedded
    return "cloud metadata" if ip in _METADATA else None


# The settings that open internal addresses to image URLs and to webhooks: a refusal names the
# one that would have allowed it (tests check these against settings.py).
ALLOW_PRIVATE_IMAGES = "VEO_GATEWAY_ALLOW_PRIVATE_IMAGE_URLS"
ALLOW_PRIVATE_WEBHOOKS = "VEO_GATEWAY_ALLOW_PRIVATE_WEBHOOK_URLS"


def refusal(address: IPAddress | str, reason: str, allowed_by: str | None) -> str:
    """Why an address is refused, and the setting that would allow it (never cloud metadata)."""
    text = f"address {address} is {reason}"
    if allowed_by is None or reason == "cloud metadata":
        return text
    return f"{text} (set {allowed_by}=true to allow private, loopback and link-local addresses)"


def client_url_policy(allow_private: bool) -> AddressPolicy:
    """The policy for URLs from clients: public addresses only, or with `allow_private`,
    everything but the cloud metadata service."""
    return _metadata_reason if allow_private else forbidden_reason


def _size(n: int) -> str:
    return f"{n // _MIB} MB" if n >= _MIB and n % _MIB == 0 else f"{n:,} bytes"


class SafeFetcher:
    """Downloads http(s) URLs under FetchLimits, refusing forbidden addresses at every hop.

    `address_policy` judges each resolved address (None allows it). By default it is
    `forbidden_reason`, or, with `allow_private`, a policy refusing only cloud metadata. It is a
    seam for tests, which allow one loopback address as a stand-in for a public host.
    `transport` is passed to httpx (tests use it to guard that only loopback is reached).
    """

    def __init__(
        self,
        limits: FetchLimits,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self._limits = limits
        # Only the setting's own policy is opened by the setting: a refusal says so.
        self._allowed_by = (
            ALLOW_PRIVATE_IMAGES if address_policy is None and not limits.allow_private else None
        )
        if address_policy is None:
            address_policy = client_url_policy(limits.allow_private)
        self._policy = address_policy
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            # The deadline in fetch() bounds the whole download; a short connect timeout lets a
            # dead address give way to the host's next one within it.
            timeout=httpx.Timeout(limits.timeout, connect=min(limits.timeout, 5.0)),
            # httpx pools by (scheme, IP, port) without looking at the TLS server name, so a kept
            # connection could carry a request for another name. Images are one-off downloads:
            # keep no connection.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={
                "User-Agent": "veo-gateway-image-fetcher",
                "Accept": "image/png, image/jpeg, image/webp, */*;q=0.1",
                # Images are compressed already; identity also keeps gzip bombs out.
                "Accept-Encoding": "identity",
                "Connection": "close",
            },
            # Never a proxy from the environment: it would resolve the name again itself.
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self._client.aclose()

    async def fetch(self, url: str) -> bytes:
        """The body of `url`; raises FetchRefused saying why it was refused or failed."""
        try:
            async with asyncio.timeout(self._limits.timeout):
                return await self._follow(url)
        except (TimeoutError, httpx.TimeoutException):
            raise FetchRefused(f"timed out after {self._limits.timeout:g} s") from None

    async def _follow(self, url: str) -> bytes:
        for _hop in range(self._limits.max_redirects + 1):
            response = await self._open(url)
            try:
                if response.has_redirect_location:  # 301, 302, 303, 307, 308 with a Location
                    try:
                        url = str(httpx.URL(url).join(response.headers["location"]))
                    except httpx.InvalidURL as exc:
                        raise FetchRefused(f"bad redirect location: {exc}") from None
                    continue
                if not response.is_success:
                    raise FetchRefused(f"HTTP {response.status_code}")
                return await self._read(response)
            finally:
                await response.aclose()
        raise FetchRefused(f"too many redirects (more than {self._limits.max_redirects})")

    async def _open(self, url: str) -> httpx.Response:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise FetchRefused(f"invalid URL: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise FetchRefused(f"scheme {parsed.scheme!r} is not allowed: use http or https")
        if parsed.userinfo:
            raise FetchRefused("URLs with a user name or password are not allowed")
        host = parsed.raw_host.decode("ascii")  # IDNA-encoded, IPv6 without brackets
        if not host:
            raise FetchRefused("the URL has no host")
        addresses = await resolve_checked(
            host,
            parsed.port or (443 if parsed.scheme == "https" else 80),
            self._policy,
            allowed_by=self._allowed_by,
        )
        headers = {"Host": parsed.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
        failure: httpx.TransportError | None = None
        # Like a browser, try the host's addresses in turn; every one of them passed the check.
        for address in addresses:
            request = self._client.build_request(
                "GET", parsed.copy_with(host=str(address)), headers=headers, extensions=extensions
            )
            try:
                return await self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc
            except httpx.TimeoutException:
                raise
            except httpx.TransportError as exc:
                raise FetchRefused(f"request failed: {exc or type(exc).__name__}") from exc
        raise FetchRefused(f"could not connect to {host}: {failure or 'no address'}")

    async def _read(self, response: httpx.Response) -> bytes:
        limit = self._limits.max_bytes
        declared = decimal(response.headers.get("content-length", ""), max_digits=30)
        if declared is not None and declared > limit:
            raise FetchRefused(f"larger than {_size(limit)}")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchRefused(f"larger than {_size(limit)}")
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise FetchRefused(f"the download broke off: {exc or type(exc).__name__}") from exc
        return b"".join(chunks)


async def resolve_checked(
    host: str, port: int, policy: AddressPolicy, *, allowed_by: str | None = None
) -> list[IPAddress]:
    """Every address `host` resolves to, once each passed `policy`; FetchRefused otherwise,
    naming the setting `allowed_by` that would allow a refused address, if one would.

    Callers connect to these addresses, never to the name again, so DNS cannot change the
    answer between the check and the connection.
    """
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise FetchRefused(f"host {host!r} could not be resolved") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        # The same host either way, and reachable without an IPv6 stack.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address not in addresses:
            addresses.append(address)
    # Every answer must pass: a name with one public and one internal address is refused,
    # whichever of them the connection would have used.
    for address in addresses:
        if reason := policy(address):
            raise FetchRefused(refusal(address, reason, allowed_by))
    if not addresses:
        raise FetchRefused(f"host {host!r} has no address")
    return addresses
