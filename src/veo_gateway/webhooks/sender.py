"""POSTing an event to a receiver without letting the URL reach inside the network.

The checks are those of image URLs (`media/fetch.py`): the host is resolved once, every answer
must pass the address policy, and the connection goes to a checked address with the name kept
in the Host header and as the TLS server name, so DNS rebinding cannot slip past. Redirects are
not followed: a receiver that redirects has not taken the event, and the attempt fails.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from veo_gateway.media.fetch import (
    ALLOW_PRIVATE_WEBHOOKS,
    FetchRefused,
    client_url_policy,
    resolve_checked,
)

USER_AGENT = "veo-gateway-webhooks"


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: the receiver's HTTP status, or why there was none (or why the
    status does not count as taken)."""

    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        """True when the receiver answered 2xx."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


class Refused(Exception):
    """The URL may not be contacted, or could not be; the message says why."""


class WebhookSender:
    """Sends one signed POST per call, under a timeout, to checked addresses only."""

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._policy = client_url_policy(allow_private)
        self._allowed_by = None if allow_private else ALLOW_PRIVATE_WEBHOOKS
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            # Connections are made to an address, not a name (see media/fetch.py): keep none.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT, "Connection": "close"},
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        """POST `body` to `url`; never raises for what the network or the receiver does."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self._post(url, headers, body)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(None, f"timed out after {self._timeout:g} s")
        except Refused as exc:
            return Outcome(None, str(exc))

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise Refused(f"invalid URL: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise Refused(f"scheme {parsed.scheme!r} is not allowed: use http or https")
        host = parsed.raw_host.decode("ascii")
        if not host:
            raise Refused("the URL has no host")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = await resolve_checked(host, port, self._policy, allowed_by=self._allowed_by)
        except FetchRefused as exc:
            raise Refused(str(exc)) from exc
        all_headers = {
            **headers,
            "Host": parsed.netloc.decode("ascii"),
            "Content-Type": "application/json",
        }
        extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
        failure: httpx.TransportError | None = None
        for address in addresses:
            request = self._client.build_request(
                "POST",
                parsed.copy_with(host=str(address)),
                headers=all_headers,
                content=body,
                extensions=extensions,
            )
            try:
                response = await self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc  # the next checked address may answer
                continue
            except httpx.TimeoutException:
                raise
            except httpx.TransportError as exc:
                raise Refused(f"request failed: {exc or type(exc).__name__}") from exc
            await response.aclose()  # the receiver's body says nothing we use
            if response.is_redirect:
                return Outcome(response.status_code, "redirects are not followed")
            if response.is_success:
                return Outcome(response.status_code, None)
            return Outcome(response.status_code, f"HTTP {response.status_code}")
        raise Refused(f"could not connect to {host}: {failure or 'no address'}")
