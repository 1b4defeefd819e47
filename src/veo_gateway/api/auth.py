"""Client authentication: `Authorization: Bearer KEY` -> the owner id tasks are filed under."""

from __future__ import annotations

import hmac
import time

from veo_gateway.errors import Unauthenticated
from veo_gateway.store.keys import KeyStore, hash_key


def bearer_matches(expected: str, authorization: str | None) -> bool:
    """Whether an Authorization header is `Bearer <expected>` (compared in constant time)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )


class Authenticator:
    """Knows the keys from the environment and asks the key store for the rest."""

    def __init__(self, env_keys: list[str], store: KeyStore, cache_seconds: float = 5.0) -> None:
        # Environment keys are matched by hash too, so no secret is held longer than needed.
        self._env = {hash_key(key): f"env:{hash_key(key)[:12]}" for key in env_keys}
        self._store = store
        # A short cache of stored-key look-ups keeps status polls to one database read; a
        # revoked key stops working within `cache_seconds` (VEO_GATEWAY_KEY_CACHE_SECONDS).
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[str, float]] = {}

    def forget_cached(self) -> None:
        """Drop the look-up cache, so a key just revoked here stops working at once."""
        self._cache.clear()

    async def owner(self, authorization: str | None) -> str:
        """The owner id for an Authorization header, or Unauthenticated."""
        if not authorization:
            raise Unauthenticated(
                "missing API key: send 'Authorization: Bearer YOUR_API_KEY'", param="Authorization"
            )
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthenticated(
                "the Authorization header must be 'Bearer YOUR_API_KEY'", param="Authorization"
            )
        digest = hash_key(secret)
        if owner := self._env.get(digest):
            return owner
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and cached[1] > now:
            return cached[0]
        key = await self._store.find(secret)
        if key is None:
            raise Unauthenticated("invalid API key", param="Authorization")
        if len(self._cache) > 10_000:
            self._cache.clear()
        if self._cache_seconds > 0:
            self._cache[digest] = (key.id, now + self._cache_seconds)
        return key.id
