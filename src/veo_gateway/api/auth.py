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
        # revoked key is dropped from it when the revocation is announced (`forget`), and
        # stops working within `cache_seconds` (VEO_GATEWAY_KEY_CACHE_SECONDS) in any case.
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[str, float]] = {}
        # Bumped by each `forget`: a look-up that was under way meanwhile may have read the key
        # before its revocation committed, so its answer is not cached.
        self._forgotten = 0

    def forget(self, key_id: str = "") -> None:
        """Drop a revoked key from the look-up cache (every key when `key_id` is empty), so it
        stops working at once rather than when its entry expires."""
        self._forgotten += 1
        if not key_id:
            self._cache.clear()
            return
        for digest in [d for d, (owner, _) in self._cache.items() if owner == key_id]:
            del self._cache[digest]

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
        forgotten = self._forgotten
        key = await self._store.find(secret)
        if key is None:
            raise Unauthenticated("invalid API key", param="Authorization")
        if len(self._cache) > 10_000:
            self._cache.clear()
        if self._cache_seconds > 0 and forgotten == self._forgotten:
            self._cache[digest] = (key.id, now + self._cache_seconds)
        return key.id
