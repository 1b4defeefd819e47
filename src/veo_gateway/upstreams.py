"""Choosing the upstreams at start-up: the config file, the environment, or the emulator."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from veo_gateway.config import GatewayConfig, default_config, load_config
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.emulator.app import create_emulator_app
from veo_gateway.emulator.core import config_from_settings
from veo_gateway.providers.pool import CredentialPool
from veo_gateway.providers.registry import build_pool
from veo_gateway.servers import BackgroundServer
from veo_gateway.settings import Settings
from veo_gateway.store.credentials import CredentialStore

log = logging.getLogger("veo_gateway")

# The emulator has no quota of its own unless told to: don't make demos wait on one.
EMULATOR_RPM = 600


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
    settings: Settings, client: httpx.AsyncClient, credentials: CredentialStore
) -> AsyncIterator[Upstreams]:
    """The upstreams for these settings, their credentials' shared state kept in
    `credentials`; with no credentials, the emulator, served in-process on a loopback port of
    its own and reached through the real Gemini adapter."""
    emulators: list[BackgroundServer] = []
    try:
        if settings.config is not None:
            config = load_config(settings.config)
            names = ", ".join(f"{u.name} ({u.kind})" for u in config.upstreams)
            description = f"{names} from {settings.config}"
            config = await _start_emulator_upstreams(config, settings, emulators)
        elif settings.gemini_api_key:
            keys = [k.strip() for k in settings.gemini_api_key.split(",") if k.strip()]
            config = default_config(
                keys,
                base_url=settings.gemini_base_url,
                rpm=settings.upstream_rpm,
                max_in_flight=settings.max_in_flight,
            )
            description = f"Gemini API at {settings.gemini_base_url} ({len(keys)} key(s))"
        else:
            storage_dir = settings.data_dir / "emulator"
            key = emulator_key(storage_dir)
            emulator = BackgroundServer(
                create_emulator_app(
                    config_from_settings(
                        settings,
                        storage_dir=storage_dir,
                        api_keys=frozenset({key}),
                        persist=True,
                    )
                )
            )
            await emulator.start()
            config = default_config(
                [key],
                base_url=emulator.url,
                name="emulator",
                rpm=EMULATOR_RPM,
                max_in_flight=settings.max_in_flight,
            )
            # The emulator's latency is not handed to the schedule: the gateway polls it as it
            # would poll Google, from the catalog's latencies and what finished tasks took.
            description = f"built-in emulator at {emulator.url} (no GEMINI_API_KEY set)"
        catalog = Catalog(config.models)
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
    config: GatewayConfig, settings: Settings, servers: list[BackgroundServer]
) -> GatewayConfig:
    """Start an emulator for each `kind = "emulator"` upstream of the config file, and turn
    the upstream into a Gemini API one pointed at it (with the key kept in its directory)."""
    upstreams = []
    for upstream in config.upstreams:
        if upstream.kind != "emulator":
            upstreams.append(upstream)
            continue
        storage_dir = settings.data_dir / "emulator" / upstream.name
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
    return dataclasses.replace(config, upstreams=tuple(upstreams))


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
