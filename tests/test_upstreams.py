"""Choosing the upstreams: the embedded emulator is polled on the gateway's own schedule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from veo_gateway.domain.catalog import Catalog
from veo_gateway.settings import Settings
from veo_gateway.store.credentials import CredentialStore
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import TaskStore
from veo_gateway.upstreams import open_upstreams

FAST = "veo-3.1-fast-generate-preview"


@pytest.fixture
async def credentials(tmp_path: Path) -> AsyncIterator[CredentialStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    await migrate(engine)
    yield CredentialStore(TaskStore(engine))
    await engine.dispose()


async def test_the_embedded_emulators_latency_is_not_handed_to_the_schedule(
    tmp_path: Path, credentials: CredentialStore
) -> None:
    settings = Settings(data_dir=tmp_path, gemini_api_key=None, emulator_latency="0.2-0.4")
    row = Catalog()[FAST]
    async with (
        httpx.AsyncClient() as client,
        open_upstreams(settings, client, credentials) as upstreams,
    ):
        assert upstreams.description.startswith("built-in emulator")
        # The catalog's latencies, as against Google: not the emulator's 0.2 to 0.4 s.
        assert upstreams.latency.first_poll_after(FAST) == row.min_latency
        assert upstreams.latency.expected(FAST) == row.typical_latency


async def test_a_configured_first_poll_is_used_for_every_upstream(
    tmp_path: Path, credentials: CredentialStore
) -> None:
    settings = Settings(data_dir=tmp_path, gemini_api_key=None, first_poll_after=0.3)
    async with (
        httpx.AsyncClient() as client,
        open_upstreams(settings, client, credentials) as upstreams,
    ):
        assert upstreams.latency.first_poll_after(FAST) == 0.3
