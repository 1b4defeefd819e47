"""Database reads for watching the gateway: task counts by state, bytes stored, key names."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from veo_gateway.store.tables import api_keys, tasks

# Stored keys can be renamed; a name shown in the logs may lag a rename by this long.
_NAME_SECONDS = 60.0


class Census:
    """Counts read at scrape time: one grouped query over the tasks table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def tasks(self) -> tuple[dict[str, int], int]:
        """Tasks by state, and the bytes of completed videos neither deleted nor expired."""
        kept = sa.case(
            (
                sa.and_(tasks.c.deleted_at.is_(None), tasks.c.expired_at.is_(None)),
                tasks.c.video_bytes,
            ),
            else_=0,
        )
        query = sa.select(tasks.c.state, sa.func.count(), sa.func.sum(kept)).group_by(tasks.c.state)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        by_state = {str(state): int(count) for state, count, _ in rows}
        stored = sum(int(size or 0) for state, _, size in rows if state == "completed")
        return by_state, stored


class KeyNames:
    """An owner id -> the client key's name, for the logs (never the key itself).

    Environment keys' owner ids (`env:` and 12 hex digits of the key's SHA-256) are their names;
    stored keys' names are read once and kept for a minute.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[str, float]] = {}

    async def name(self, owner: str) -> str:
        """The key's name, or the owner id when the key is not found (revoked since)."""
        if owner.startswith("env:"):
            return owner
        now = time.monotonic()
        cached = self._cache.get(owner)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._engine.connect() as conn:
            found = await conn.scalar(sa.select(api_keys.c.name).where(api_keys.c.id == owner))
        name = str(found) if found is not None else owner
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[owner] = (name, now + _NAME_SECONDS)
        return name
