"""Limits shared by replicas: two gateway apps on one database (SQLite, and PostgreSQL).

Creates racing on both replicas for one client key pass none of its limits; a credential
cooled down (429) or taken out of service (401/403) by one replica's worker shows on the
other replica's /readyz.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import gateway_settings
from tests.support.servers import serve_app
from veo_gateway.app import create_app
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.pricing import PriceTable
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.usage import Limits

FAST = "veo-3.1-fast-generate-preview"
BODY = {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}}
ONE_COST = PriceTable().cost(FAST, Catalog()[FAST].default_resolution, 4)


def stored_key(url: str, limits: Limits) -> str:
    """A client key with limits, in the shared database (migrated first)."""

    async def create() -> str:
        engine = create_engine(url)
        try:
            await migrate(engine)
            _, secret = await KeyStore(engine).create("shared", limits)
        finally:
            await engine.dispose()
        return secret

    return asyncio.run(create())


Replicas = Callable[..., list[str]]


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[Replicas]:
    """Start gateway apps on the one database, each with a data directory of its own."""
    with ExitStack() as stack:
        started: list[str] = []

        def start(count: int = 2, **overrides: Any) -> list[str]:
            urls = []
            for _ in range(count):
                data_dir = tmp_path / f"replica-{len(started)}"
                settings = gateway_settings(data_dir, database_url=database_url, **overrides)
                started.append(stack.enter_context(serve_app(create_app(settings))))
                urls.append(started[-1])
            return urls

        yield start


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        (Limits(max_in_flight=3), "max_in_flight 3"),
        (Limits(max_video_seconds_per_day=12), "of 12 video seconds used today"),
        (Limits(monthly_budget_usd=round(ONE_COST * 3.5, 4)), "monthly budget"),
    ],
    ids=["in-flight", "seconds-per-day", "monthly-budget"],
)
def test_racing_creates_on_two_replicas_pass_no_limit_of_their_key(
    replicas: Replicas,
    database_url: str,
    limits: Limits,
    says: str,
) -> None:
    # API-only replicas: every task stays queued, so all count against the key at once.
    urls = replicas(worker_enabled=False)
    key = stored_key(database_url, limits)
    headers = {"Authorization": f"Bearer {key}"}

    def create(n: int) -> httpx.Response:
        return httpx.post(f"{urls[n % 2]}/v1/videos", json=BODY, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(create, range(20)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] * 3 + [429] * 17, [a.text for a in answers if a.status_code >= 500]
    for refused in (a for a in answers if a.status_code == 429):
        error = refused.json()["error"]
        assert error["status"] == "RESOURCE_EXHAUSTED" and says in error["message"]
        assert int(refused.headers["retry-after"]) >= 1
    # Each replica reports the same standing: three reserved.
    for url in urls:
        usage = httpx.get(f"{url}/v1/usage", headers=headers).json()
        assert usage["reserved"]["videos"] == 3, usage


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Callable[..., str]]:
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            values: dict[str, Any] = {
                "latency": (1.0, 1.0),
                "api_keys": frozenset({"k1"}),
                "storage_dir": tmp_path / "emulator",
            } | overrides
            return stack.enter_context(serve_app(create_emulator_app(EmulatorConfig(**values))))

        yield start


def config_file(tmp_path: Path, url: str, key: str, extra: str = "") -> Path:
    """Both replicas' upstream config: one key of the emulator (so one credential id)."""
    path = tmp_path / "veo.toml"
    path.write_text(
        f'[[upstreams]]\nname = "emu"\nkind = "gemini"\napi_keys = ["{key}"]\n'
        f'base_url = "{url}"\n{extra}'
        f'[models."{FAST}"]\nmin_latency = 0.2\ntypical_latency = 0.5\n'
    )
    return path


def credential_on(url: str) -> tuple[int, dict[str, Any]]:
    ready = httpx.get(f"{url}/readyz")
    (credential,) = ready.json()["credentials"]
    return ready.status_code, credential


def test_a_429_seen_by_one_replicas_worker_shows_on_the_others_readyz(
    replicas: Replicas, emulator: Callable[..., str], tmp_path: Path
) -> None:
    # The gateway believes the key can run 5 jobs; the emulator's quota says 1: the second
    # submission is refused with 429 and the credential rests for 60 s.
    upstream = emulator(max_in_flight_per_credential=1)
    config = config_file(tmp_path, upstream, "k1", "max_in_flight = 5\ncool_down_seconds = 60\n")
    (worker,) = replicas(1, config=config, max_in_flight=5)
    (api,) = replicas(1, config=config, worker_enabled=False)
    headers = {"Authorization": "Bearer test-key-alice"}
    assert credential_on(api)[1]["cooling_down_for"] == 0
    for _ in range(2):  # each submitted inline by the worker's replica
        assert httpx.post(f"{worker}/v1/videos", json=BODY, headers=headers).status_code == 200
    assert httpx.get(f"{upstream}/_emulator/stats").json()["quota_refusals"] >= 1
    status, credential = credential_on(api)
    assert status == 200 and credential["cooling_down_for"] > 30
    assert credential["in_flight"] == 1  # the first task's, taken by the other replica
    assert credential["out_of_service"] is None


def test_a_credential_refused_by_one_replicas_worker_is_out_of_service_on_the_other(
    replicas: Replicas, emulator: Callable[..., str], tmp_path: Path
) -> None:
    upstream = emulator()
    config = config_file(tmp_path, upstream, "not-a-key-the-emulator-knows")
    (worker,) = replicas(1, config=config)
    (api,) = replicas(1, config=config, worker_enabled=False)
    assert credential_on(api)[0] == 200
    headers = {"Authorization": "Bearer test-key-alice"}
    assert httpx.post(f"{worker}/v1/videos", json=BODY, headers=headers).status_code == 200
    status, credential = credential_on(api)
    assert status == 503
    assert "API key not valid" in credential["out_of_service"]
    assert credential["out_of_service_since"] > 0
    assert httpx.get(f"{api}/readyz").json()["checks"]["upstreams"] == "error: none in service"
