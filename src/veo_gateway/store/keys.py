"""Client API keys: created once, stored as SHA-256 hashes, looked up by hash."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from veo_gateway.store.database import disk_full_errors
from veo_gateway.store.notifier import Channel, LocalNotifier, Notifier
from veo_gateway.store.tables import api_keys
from veo_gateway.store.usage import Limits

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
    limits: Limits = field(default_factory=Limits)

    def as_dict(self) -> dict[str, Any]:
        """The key as JSON (never the secret)."""
        return {
            "id": self.id,
            "object": "api_key",
            "name": self.name,
            "prefix": self.prefix,
            "created_at": int(self.created_at),
            "revoked_at": None if self.revoked_at is None else int(self.revoked_at),
            **self.limits.as_dict(),
        }


# Columns of the limits, and the sentinel that leaves one unchanged in `update`.
_LIMIT_COLUMNS = (
    "allowed_models",
    "max_in_flight",
    "max_video_seconds_per_day",
    "monthly_budget_usd",
)
UNCHANGED: Any = object()


class KeyStore:
    """Client keys in the database."""

    def __init__(self, engine: AsyncEngine, notifier: Notifier | None = None) -> None:
        self._engine = engine
        # Revocations are announced, so every process drops the key from its cache at once.
        self._notifier = notifier or LocalNotifier()

    async def create(self, name: str, limits: Limits | None = None) -> tuple[ApiKey, str]:
        """Make a new key; returns it and the secret, which is not kept anywhere."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            prefix=secret[: len(KEY_PREFIX) + 6],
            created_at=time.time(),
            limits=limits or Limits(),
        )
        with disk_full_errors():
            async with self._engine.begin() as conn:
                await conn.execute(
                    api_keys.insert().values(
                        id=key.id,
                        name=key.name,
                        key_hash=hash_key(secret),
                        prefix=key.prefix,
                        created_at=key.created_at,
                        **_limit_values(key.limits),
                    )
                )
        return key, secret

    async def get(self, key_id: str) -> ApiKey | None:
        """A stored key by id (revoked ones too), or None."""
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(api_keys.select().where(api_keys.c.id == key_id)))
                .mappings()
                .first()
            )
        return _key(row) if row else None

    async def limits(self, owner: str) -> Limits:
        """The limits of the key behind an owner id (keys from the environment have none)."""
        key = await self.get(owner) if owner.startswith("key_") else None
        return Limits() if key is None else key.limits

    async def update(
        self,
        key_id: str,
        *,
        name: str | None = None,
        allowed_models: Any = UNCHANGED,
        max_in_flight: Any = UNCHANGED,
        max_video_seconds_per_day: Any = UNCHANGED,
        monthly_budget_usd: Any = UNCHANGED,
    ) -> ApiKey | None:
        """Change a live key's name or limits (None removes a limit); the key, or None when
        there is no live key with that id."""
        values: dict[str, Any] = {} if name is None else {"name": name}
        for column, value in zip(
            _LIMIT_COLUMNS,
            (allowed_models, max_in_flight, max_video_seconds_per_day, monthly_budget_usd),
            strict=True,
        ):
            if value is not UNCHANGED:
                values[column] = list(value) if column == "allowed_models" and value else value
        async with self._engine.begin() as conn:
            if values:
                result = await conn.execute(
                    api_keys.update()
                    .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                    .values(**values)
                )
                if result.rowcount != 1:
                    return None
            row = (
                (
                    await conn.execute(
                        api_keys.select().where(
                            api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)
                        )
                    )
                )
                .mappings()
                .first()
            )
        return _key(row) if row else None

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
        revoked = bool(result.rowcount == 1)
        if revoked:
            await self._notifier.publish(Channel.KEY_REVOKED, key_id)
        return revoked

    async def count_live(self) -> int:
        """How many keys are not revoked."""
        query = sa.select(sa.func.count()).where(api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


def _limit_values(limits: Limits) -> dict[str, Any]:
    values = limits.as_dict()
    if values["allowed_models"] is not None:
        values["allowed_models"] = list(values["allowed_models"])
    return values


def _key(row: sa.RowMapping) -> ApiKey:
    models = row["allowed_models"]
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        limits=Limits(
            allowed_models=None if models is None else tuple(models),
            max_in_flight=row["max_in_flight"],
            max_video_seconds_per_day=row["max_video_seconds_per_day"],
            monthly_budget_usd=row["monthly_budget_usd"],
        ),
    )
