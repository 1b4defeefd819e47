"""Choosing the upstreams at start-up: the config file, the environment (Vertex AI or the Gemini
API), or the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from veo_gateway.config import (
    ConfigError,
    GatewayConfig,
    Target,
    UpstreamConfig,
    default_config,
    load_config,
    route_kinds,
    vertex_config,
)
from veo_gateway.domain.catalog import BUILTIN_MODELS, Catalog
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.emulator.app import create_emulator_app
from veo_gateway.emulator.core import config_from_settings
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.pool import CredentialPool
from veo_gateway.providers.registry import build_pool
from veo_gateway.providers.vertex import SCOPES, vertex_base_url
from veo_gateway.servers import BackgroundServer
from veo_gateway.settings import Settings
from veo_gateway.store.credentials import CredentialStore

log = logging.getLogger("veo_gateway")

# The emulator has no quota of its own unless told to: don't make demos wait on one.
EMULATOR_RPM = 600


@dataclass(frozen=True)
class Plan:
    """What the settings ask to submit to, before anything starts: the config (emulator
    upstreams still `kind = "emulator"`), where it came from, and what the google-genai SDK
    would have warned about in the same environment."""

    config: GatewayConfig
    description: str
    notes: tuple[str, ...] = ()
    # The built-in emulator of the no-credential case (kept in DATA_DIR/emulator itself).
    embedded: bool = False


def plan_upstreams(settings: Settings) -> Plan:
    """The upstreams and routes for these settings: the config file, then Vertex AI from the
    environment, then the Gemini API's keys, then the built-in emulator. May block (the
    project of the Application Default Credentials is looked up when none is set)."""
    notes = list(settings.environment_warnings())
    if settings.config is not None:
        config = load_config(settings.config)
        names = ", ".join(f"{u.name} ({u.kind})" for u in config.upstreams)
        return Plan(config, f"{names} from {settings.config}", tuple(notes))
    if settings.vertex_mode:
        if settings.gemini_keys:
            if not settings.google_cloud_project:
                raise ConfigError(
                    "GOOGLE_GENAI_USE_VERTEXAI with an API key and no GOOGLE_CLOUD_PROJECT is "
                    "Vertex AI express mode, which the gateway does not speak: set "
                    "GOOGLE_CLOUD_PROJECT (and credentials), or unset the Vertex variable to "
                    "use the Gemini API with the key"
                )
            # The SDK's own words for the same choice.
            notes.append(
                "The project/location from the environment variables will take precedence "
                "over the API key from the environment variables."
            )
        project = settings.google_cloud_project or _adc_project(settings)
        location = settings.google_cloud_location or "global"
        config = vertex_config(
            project=project,
            location=location,
            base_url=settings.google_vertex_base_url,
            access_token=settings.vertex_access_token,
            rpm=settings.upstream_rpm,
            max_in_flight=settings.max_in_flight,
        )
        where = vertex_base_url(location, settings.google_vertex_base_url)
        token = (
            "VEO_GATEWAY_VERTEX_ACCESS_TOKEN"
            if settings.vertex_access_token
            else "Application Default Credentials"
        )
        description = f"Vertex AI at {where} (project {project}, location {location}; {token})"
        return Plan(config, description, tuple(notes))
    if keys := settings.gemini_keys:
        config = default_config(
            keys,
            base_url=settings.gemini_base_url,
            rpm=settings.upstream_rpm,
            max_in_flight=settings.max_in_flight,
        )
        source = "GOOGLE_API_KEY" if settings.google_api_key else "GEMINI_API_KEY"
        description = f"Gemini API at {settings.gemini_base_url} ({len(keys)} key(s) from {source})"
        return Plan(config, description, tuple(notes))
    upstream = UpstreamConfig(
        name="emulator", kind="emulator", rpm=EMULATOR_RPM, max_in_flight=settings.max_in_flight
    )
    rows = tuple(row for row in BUILTIN_MODELS if "gemini" in row.served_by)
    config = GatewayConfig(
        upstreams=(upstream,),
        routes={row.name: (Target("emulator", row.name),) for row in rows},
        models=rows,
    )
    return Plan(config, "built-in emulator (no GEMINI_API_KEY set)", tuple(notes), embedded=True)


def _adc_project(settings: Settings) -> str:
    """The project of the Application Default Credentials, as the SDK falls back to."""
    if settings.vertex_access_token or settings.google_vertex_base_url:
        raise ConfigError("GOOGLE_GENAI_USE_VERTEXAI needs GOOGLE_CLOUD_PROJECT")
    import google.auth
    import google.auth.exceptions

    try:
        _, project = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise ConfigError(
            f"GOOGLE_GENAI_USE_VERTEXAI needs GOOGLE_CLOUD_PROJECT, or Application Default "
            f"Credentials that name a project ({exc})"
        ) from None
    if not project:
        raise ConfigError(
            "GOOGLE_GENAI_USE_VERTEXAI needs GOOGLE_CLOUD_PROJECT (the Application Default "
            "Credentials name no project)"
        )
    return str(project)


@dataclass
class Upstreams:
    """What the gateway submits to: the config, its pool, catalog and latency model."""

    config: GatewayConfig
    pool: CredentialPool
    catalog: Catalog
    latency: LatencyModel
    description: str


@contextlib.asynccontextmanager
async def open_upstreams(
    settings: Settings, client: UpstreamHttp, credentials: CredentialStore
) -> AsyncIterator[Upstreams]:
    """The upstreams for these settings, their credentials' shared state kept in
    `credentials`; each emulator upstream (and, with no credentials, the built-in one) served
    in-process on a loopback port of its own and reached through the real Gemini adapter."""
    plan = await asyncio.to_thread(plan_upstreams, settings)
    for note in plan.notes:
        log.warning("%s", note)
    emulators: list[BackgroundServer] = []
    try:
        config = await _start_emulator_upstreams(plan, settings, emulators)
        description = plan.description
        if plan.embedded:
            # The emulator's latency is not handed to the schedule: the gateway polls it as it
            # would poll Google, from the catalog's latencies and what finished tasks took.
            description = f"built-in emulator at {emulators[0].url} (no GEMINI_API_KEY set)"
        catalog = Catalog(config.models, route_kinds(config))
        yield Upstreams(
            config=config,
            pool=build_pool(config, client, credentials, max_in_flight=settings.max_in_flight),
            catalog=catalog,
            latency=LatencyModel(catalog, first_poll=settings.first_poll_after),
            description=description,
        )
    finally:
        for server in emulators:
            await server.stop()


async def _start_emulator_upstreams(
    plan: Plan, settings: Settings, servers: list[BackgroundServer]
) -> GatewayConfig:
    """Start an emulator for each `kind = "emulator"` upstream, and turn the upstream into a
    Gemini API one pointed at it (with the key kept in its directory)."""
    upstreams = []
    for upstream in plan.config.upstreams:
        if upstream.kind != "emulator":
            upstreams.append(upstream)
            continue
        storage_dir = settings.data_dir / "emulator"
        if not plan.embedded:
            storage_dir = storage_dir / upstream.name
        key = emulator_key(storage_dir)
        overrides = {
            name: value
            for name, value in (
                ("emulator_latency", upstream.latency),
                ("emulator_faults", upstream.faults),
            )
            if value is not None
        }
        emulator_config = config_from_settings(
            settings.model_copy(update=overrides),
            storage_dir=storage_dir,
            api_keys=frozenset({key}),
            persist=True,
        )
        server = BackgroundServer(create_emulator_app(emulator_config))
        servers.append(server)
        await server.start()
        upstreams.append(
            dataclasses.replace(upstream, kind="gemini", api_keys=(key,), base_url=server.url)
        )
    return dataclasses.replace(plan.config, upstreams=tuple(upstreams))


def emulator_key(directory: Path) -> str:
    """The embedded emulator's API key: made once and kept in `directory` (mode 0600), so the
    tasks submitted before a restart stay pinned to a credential that still exists."""
    path = directory / "api-key"
    if path.is_file():
        return path.read_text().strip()
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".api-key.{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
        # A link never replaces: of two processes starting at once, the first one's key wins,
        # and nobody ever reads a half-written file.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
