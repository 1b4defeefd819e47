"""Wake-ups and revocations between the parts of the gateway: publish and subscribe on channels.

Three channels: a task was created (a worker should look for work now), a task finished (its
webhook should go out now, and its credential slot is free), a key was revoked (drop it from
the key cache). Two implementations, chosen once from the database (`open_notifier`):

- `LocalNotifier` (SQLite): the subscribers of this process, called at once. Other processes on
  the same data directory find the work at their next look (their timers).
- `PostgresNotifier` (`store/pg_notifier.py`): this process's subscribers at once, and
  PostgreSQL's `NOTIFY` for every other process, which `LISTEN`s on a connection of its own.

A notification is a hint, never the only way work is found: every loop that is woken also
looks on a timer, and a cached key expires after `KEY_CACHE_SECONDS`. A lost notification
costs latency, not correctness. Publish after the transaction that made the change commits,
so whoever is woken sees it.
"""

from __future__ import annotations

import enum
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("veo_gateway.notifier")


class Channel(enum.StrEnum):
    """What happened; the value is the PostgreSQL channel name."""

    TASK_CREATED = "veo_gateway_task_created"  # payload: the task's id
    TASK_FINISHED = "veo_gateway_task_finished"  # payload: the task's id, or empty
    KEY_REVOKED = "veo_gateway_key_revoked"  # payload: the key's id


# Called with the payload; an empty payload means "anything may have happened" (sent to every
# subscriber when a lost listening connection is back, since notifications were missed).
Subscriber = Callable[[str], None]


class Notifier(Protocol):
    """Publish to, and subscribe to, the channels of every process sharing the database."""

    def subscribe(self, channel: Channel, subscriber: Subscriber) -> None:
        """Call `subscriber` (on the event loop, quickly) for each notification on `channel`."""

    async def publish(self, channel: Channel, payload: str = "") -> None:
        """Tell every subscriber, here and in other processes; never raises (a hint)."""

    async def run(self) -> None:
        """Receive other processes' notifications until cancelled (returns when there are none)."""


class LocalNotifier:
    """The subscribers of this process only (SQLite: one machine, one worker)."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[Channel, list[Subscriber]] = defaultdict(list)

    def subscribe(self, channel: Channel, subscriber: Subscriber) -> None:
        """Call `subscriber` for each notification on `channel`."""
        self._subscribers[channel].append(subscriber)

    async def publish(self, channel: Channel, payload: str = "") -> None:
        """Call this process's subscribers now."""
        self.deliver(channel, payload)

    def deliver(self, channel: Channel, payload: str) -> None:
        """Call the subscribers of `channel`; one that raises is logged and the rest still run."""
        for subscriber in list(self._subscribers[channel]):
            try:
                subscriber(payload)
            except Exception:  # a subscriber's bug must not stop the others, nor the publisher
                log.exception("a subscriber of %s failed", channel.name)

    async def run(self) -> None:
        """Nothing comes from other processes."""


def open_notifier(engine: AsyncEngine) -> Notifier:
    """The notifier for the database behind `engine` (its `Dialect` chooses)."""
    from veo_gateway.store.dialect import dialect_of

    return dialect_of(engine).notifier(engine)
