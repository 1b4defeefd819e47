"""A SHA-256 of every stored sample, by task: how an uploaded MP4 that is a video this gateway
made is known for the task that made it (an extension of it names that task upstream)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from veo_gateway.store.tables import video_digests
from veo_gateway.store.tasks import TaskStore


async def record_digests(
    store: TaskStore, task_id: str, owner: str, digests: Sequence[str | None]
) -> None:
    """Keep the digests of a task's samples (in sample order; None: not known), replacing any
    a takeover of the same task wrote before."""
    rows = [
        {"task_id": task_id, "sample": index, "owner": owner, "sha256": digest}
        for index, digest in enumerate(digests)
        if digest is not None
    ]
    async with store.transaction() as conn:
        await conn.execute(video_digests.delete().where(video_digests.c.task_id == task_id))
        if rows:
            await conn.execute(video_digests.insert(), rows)


async def find_digest(store: TaskStore, owner: str, digest: str) -> list[tuple[str, int]]:
    """The (task id, sample) of `owner`'s stored videos whose bytes have this SHA-256."""
    query = (
        sa.select(video_digests.c.task_id, video_digests.c.sample)
        .where(video_digests.c.owner == owner, video_digests.c.sha256 == digest)
        .order_by(video_digests.c.task_id, video_digests.c.sample)
    )
    async with store.reading() as conn:
        rows = (await conn.execute(query)).all()
    return [(str(row.task_id), int(row.sample)) for row in rows]
