"""The key cache and revocations: a revoked key is dropped from the cache by the notification
(here the in-process one), other keys stay cached, and a look-up under way while a revocation
is announced is not cached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from veo_gateway.api.auth import Authenticator
from veo_gateway.errors import Unauthenticated
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.notifier import Channel, LocalNotifier

HOUR = 3600.0


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[tuple[KeyStore, Authenticator, AsyncEngine]]:
    """A key store announcing its revocations, and an authenticator that listens."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await migrate(engine)
    notifier = LocalNotifier()
    store = KeyStore(engine, notifier)
    auth = Authenticator([], store, cache_seconds=HOUR)
    notifier.subscribe(Channel.KEY_REVOKED, auth.forget)
    try:
        yield store, auth, engine
    finally:
        await engine.dispose()


async def test_a_revoked_key_leaves_the_cache_and_the_others_stay(
    keys: tuple[KeyStore, Authenticator, AsyncEngine],
) -> None:
    store, auth, engine = keys
    (gone, gone_secret), (kept, kept_secret) = [await store.create(n) for n in ("a", "b")]
    for key, secret in ((gone, gone_secret), (kept, kept_secret)):
        assert await auth.owner(f"Bearer {secret}") == key.id
    assert await store.revoke(gone.id)
    with pytest.raises(Unauthenticated):
        await auth.owner(f"Bearer {gone_secret}")
    # The other key is still cached: revoked by a store whose revocations nobody hears (as
    # another process on SQLite), it is still trusted here for the cache time.
    assert await KeyStore(engine).revoke(kept.id)
    assert await auth.owner(f"Bearer {kept_secret}") == kept.id


async def test_a_look_up_under_way_during_a_revocation_is_not_cached(
    keys: tuple[KeyStore, Authenticator, AsyncEngine],
) -> None:
    store, auth, _ = keys
    key, secret = await store.create("racing")
    original = store.find

    async def find_then_revoke(text: str):  # type: ignore[no-untyped-def]
        answer = await original(text)  # read before the revocation commits
        await store.revoke(key.id)  # announced while the look-up is still under way
        return answer

    store.find = find_then_revoke  # type: ignore[method-assign]
    assert await auth.owner(f"Bearer {secret}") == key.id  # it was live when read
    store.find = original  # type: ignore[method-assign]
    with pytest.raises(Unauthenticated):
        await auth.owner(f"Bearer {secret}")  # not trusted from a cache for the hour
