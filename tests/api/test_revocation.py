"""A key revoked from the command line, on the same database, stops working on a running gateway
within VEO_GATEWAY_KEY_CACHE_SECONDS: the cached look-up is trusted that long, and no longer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.api.test_usage_limits import veo_gateway
from tests.conftest import Gateway
from veo_gateway.store.database import create_engine
from veo_gateway.store.keys import KeyStore


def stored_key(gateway: Gateway) -> tuple[str, str]:
    """(id, secret) of a new client key in the running gateway's database."""

    async def create() -> tuple[str, str]:
        engine = create_engine(gateway.settings.resolved_database_url)
        try:
            key, secret = await KeyStore(engine).create("revocable")
        finally:
            await engine.dispose()
        return key.id, secret

    return asyncio.run(create())


# SQLite's bound (no notifications: the cache time); on PostgreSQL a revocation is heard at
# once (tests/test_replicas.py).
@pytest.mark.sqlite
@pytest.mark.parametrize("cache_seconds", [0.0, 1.5, 3600.0])
def test_a_key_revoked_from_the_cli_stops_within_the_cache_time(
    make_gateway: Callable[..., Gateway], cache_seconds: float
) -> None:
    gateway = make_gateway(key_cache_seconds=cache_seconds)
    key_id, secret = stored_key(gateway)

    def listing() -> int:
        return gateway.client.get("/v1/videos", headers=gateway.headers(secret)).status_code

    assert listing() == 200  # found, and cached (unless the cache is off)
    revoked = veo_gateway(gateway, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    revoked_at = time.monotonic()
    if cache_seconds > 60:
        # Trusted from the cache for as long as the setting says (here: for the whole test).
        assert listing() == 200
        return
    # Whatever was cached was cached before the revoke: past the cache time, it is looked up.
    time.sleep(max(0.0, revoked_at + cache_seconds - time.monotonic()))
    refused = gateway.client.get("/v1/videos", headers=gateway.headers(secret))
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["message"] == "invalid API key"
    # The status fast path asks the same authenticator.
    status = gateway.client.get("/v1/videos/video_nope", headers=gateway.headers(secret))
    assert status.status_code == 401


def test_the_cache_time_is_checked(make_gateway: Callable[..., Gateway]) -> None:
    with pytest.raises(ValueError, match="key_cache_seconds"):
        make_gateway(key_cache_seconds=-1)
