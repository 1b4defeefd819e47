"""The per-request `callback_url` (spec dialect): checked at create, then kept beside the task
(in `webhook_callbacks`, written by `TaskStore.create` in the task's own transaction).

Only what the URL says is checked here (scheme, length, a literal address); the name is resolved
and every address checked when the event is delivered (`sender.py`), since DNS can change.
"""

from __future__ import annotations

import ipaddress

import httpx

from veo_gateway.errors import InvalidArgument
from veo_gateway.media.fetch import ALLOW_PRIVATE_WEBHOOKS, client_url_policy, refusal
from veo_gateway.settings import Settings

MAX_CALLBACK_URL = 2048
PARAM = "callback_url"


def validate_callback_url(value: object, settings: Settings) -> str | None:
    """The callback URL of a create body (None when absent), or InvalidArgument saying why not."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument("callback_url must be a string (an http or https URL)", param=PARAM)
    if not settings.webhook_secrets:
        raise InvalidArgument(
            "callback_url cannot be used: this gateway has no webhook secret to sign events "
            "with (the operator sets VEO_GATEWAY_WEBHOOK_SECRET)",
            param=PARAM,
        )
    if len(value) > MAX_CALLBACK_URL:
        raise InvalidArgument(
            f"callback_url is longer than {MAX_CALLBACK_URL} characters", param=PARAM
        )
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise InvalidArgument(f"callback_url is not a valid URL: {exc}", param=PARAM) from None
    if url.scheme not in ("http", "https"):
        raise InvalidArgument("callback_url must be an http or https URL", param=PARAM)
    if url.userinfo:
        raise InvalidArgument("callback_url may not hold a user name or password", param=PARAM)
    host = url.raw_host.decode("ascii")
    if not host:
        raise InvalidArgument("callback_url has no host", param=PARAM)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return value  # a name: resolved and checked at each delivery
    allow_private = settings.allow_private_webhook_urls
    reason = client_url_policy(allow_private)(literal)
    if reason:
        allowed_by = None if allow_private else ALLOW_PRIVATE_WEBHOOKS
        raise InvalidArgument(f"callback_url {refusal(literal, reason, allowed_by)}", param=PARAM)
    return value
