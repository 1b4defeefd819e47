"""Client API keys: created once, stored as SHA-256 hashes, looked up by hash."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from veo_gateway.store.tables import api_keys

KEY_PREFIX = "vgw_"


def hash_key(key: str) -> str:
    """The stored form of a key. Keys are 256-bit random, so a fast hash is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A stored client key (never the secret itself)."""

    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None = None


class KeyStore:
    """Client keys in the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, name: str) -> tuple[ApiKey, str]:
        """Make a new key; returns it and the secret, which is not kept anywhere."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            prefix=secret[: len(KEY_PREFIX) + 6],
            created_at=time.time(),
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                api_keys.insert().values(
                    id=key.id,
                    name=key.name,
                    key_hash=hash_key(secret),
                    prefix=key.prefix,
                    created_at=key.created_at,
                )
            )
        return key, secret

    async def find(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is, or None."""
        query = api_keys.select().where(
            api_keys.c.key_hash == hash_key(secret), api_keys.c.revoked_at.is_(None)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _key(row) if row else None

    async def list(self) -> list[ApiKey]:
        """Every stored key, oldest first."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(api_keys.select().order_by(api_keys.c.created_at))
            ).mappings()
            return [_key(row) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; True when a live key was revoked."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return bool(result.rowcount == 1)

    async def count_live(self) -> int:
        """How many keys are not revoked."""
        query = sa.select(sa.func.count()).where(api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


def _key(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
