"""Building the credential pool from the config: one adapter per credential."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from veo_gateway.config import GatewayConfig, UpstreamConfig
from veo_gateway.domain.catalog import OMNI_MODELS
from veo_gateway.providers.base import Provider
from veo_gateway.providers.gemini import GeminiProvider
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.omni import GEMINI_VERSION, VERTEX_VERSION, OmniProvider
from veo_gateway.providers.pool import Credential, CredentialPool
from veo_gateway.providers.switch import ProtocolSwitch
from veo_gateway.providers.vertex import (
    TokenSource,
    VertexProvider,
    token_source_for,
    vertex_base_url,
)
from veo_gateway.store.credentials import CredentialStore

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"


def credential_id(upstream: UpstreamConfig, api_key: str | None = None) -> str:
    """A stable id for a credential (tasks are pinned to it across restarts); never the key."""
    if api_key is None:
        return upstream.name
    return f"{upstream.name}#{hashlib.sha256(api_key.encode()).hexdigest()[:8]}"


def interaction_models(config: GatewayConfig) -> frozenset[str]:
    """The upstream model ids the routes send to the Interactions API (Gemini Omni's rows),
    with the built-in Omni ids however they are routed."""
    rows = {row.name: row for row in config.models}
    routed = {
        target.model
        for public, targets in config.routes.items()
        if public in rows and rows[public].protocol == "interactions"
        for target in targets
    }
    return frozenset(routed | set(OMNI_MODELS))


def _key_headers(key: str) -> Callable[[], Awaitable[dict[str, str]]]:
    async def headers() -> dict[str, str]:
        return {"x-goog-api-key": key}

    return headers


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
    omni_models = interaction_models(config)
    for upstream in config.upstreams:
        if upstream.kind == "gemini":
            for key in upstream.api_keys:
                cid = credential_id(upstream, key)
                base = (upstream.base_url or GEMINI_BASE_URL).rstrip("/")
                gemini = GeminiProvider(api_key=key, base_url=base, client=client, name=cid)
                omni = OmniProvider(
                    root=f"{base}/{GEMINI_VERSION}",
                    parent="interactions",
                    headers=_key_headers(key),
                    client=client,
                    files=gemini,
                    delivery="uri",
                    name=cid,
                )
                switch = ProtocolSwitch(gemini, omni, omni_models, cid)
                credentials.append(_credential(cid, upstream, switch))
        else:
            cid = credential_id(upstream)
            tokens = token_source_for(upstream)
            vertex = VertexProvider(
                project=upstream.project or "",
                location=upstream.location,
                tokens=tokens,
                client=client,
                base_url=upstream.base_url,
                storage_uri=upstream.storage_uri,
                name=cid,
            )
            base = vertex_base_url(upstream.location, upstream.base_url)

            async def bearer(tokens: TokenSource = tokens) -> dict[str, str]:
                return {"Authorization": f"Bearer {await tokens.token()}"}

            omni = OmniProvider(
                root=f"{base}/{VERTEX_VERSION}",
                parent=f"projects/{upstream.project}/locations/{upstream.location}/interactions",
                headers=bearer,
                client=client,
                files=vertex,
                delivery="uri" if upstream.storage_uri else "inline",
                gcs_uri=upstream.storage_uri,
                name=cid,
            )
            switch = ProtocolSwitch(vertex, omni, omni_models, cid)
            credentials.append(_credential(cid, upstream, switch))
    return CredentialPool(credentials, config.routes, store=store, max_in_flight=max_in_flight)
