"""Building the credential pool from the config: one adapter per credential."""

from __future__ import annotations

import hashlib

from veo_gateway.config import GatewayConfig, UpstreamConfig
from veo_gateway.providers.base import Provider
from veo_gateway.providers.gemini import GeminiProvider
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.pool import Credential, CredentialPool
from veo_gateway.providers.vertex import VertexProvider, token_source_for
from veo_gateway.store.credentials import CredentialStore

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"


def credential_id(upstream: UpstreamConfig, api_key: str | None = None) -> str:
    """A stable id for a credential (tasks are pinned to it across restarts); never the key."""
    if api_key is None:
        return upstream.name
    return f"{upstream.name}#{hashlib.sha256(api_key.encode()).hexdigest()[:8]}"


def _credential(cid: str, upstream: UpstreamConfig, provider: Provider) -> Credential:
    return Credential(
        id=cid,
        upstream=upstream.name,
        provider=provider,
        rpm=upstream.rpm,
        max_in_flight=upstream.max_in_flight,
        cool_down_seconds=upstream.cool_down_seconds,
    )


def build_pool(
    config: GatewayConfig,
    client: UpstreamHttp,
    store: CredentialStore,
    *,
    max_in_flight: int | None = None,
) -> CredentialPool:
    """Every credential of every upstream, with its adapter, limits and the routes; their
    shared state is kept in `store`."""
    credentials: list[Credential] = []
    for upstream in config.upstreams:
        if upstream.kind == "gemini":
            for key in upstream.api_keys:
                cid = credential_id(upstream, key)
                gemini = GeminiProvider(
                    api_key=key,
                    base_url=upstream.base_url or GEMINI_BASE_URL,
                    client=client,
                    name=cid,
                )
                credentials.append(_credential(cid, upstream, gemini))
        else:
            cid = credential_id(upstream)
            vertex = VertexProvider(
                project=upstream.project or "",
                location=upstream.location,
                tokens=token_source_for(upstream),
                client=client,
                base_url=upstream.base_url,
                storage_uri=upstream.storage_uri,
                name=cid,
            )
            credentials.append(_credential(cid, upstream, vertex))
    return CredentialPool(credentials, config.routes, store=store, max_in_flight=max_in_flight)
