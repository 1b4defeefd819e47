"""The credential pool: which upstream credential may take the next submission, and when.

Each credential has a requests-per-minute limit and a cap on operations in flight. A 429 cools
it down for a while; a 401 or 403 takes it out of service (and says why) until a worker starts
again. A task stays pinned to the credential that submitted it: its polls and download use
that one.

The caps hold for every process on the database together: the slots, the window, cool-downs and
out-of-service marks live there (store/credentials.py), and this pool decides, under the
store's lock, which of a model's credentials takes a submission.

A slot in flight is held by a task id, not counted: releasing is idempotent, so every path
that ends a task's hold (a finished job, a failure, a DELETE, whatever raised) may release it
without a second release freeing someone else's slot, and none can leak it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from veo_gateway.config import Target
from veo_gateway.errors import UpstreamError
from veo_gateway.providers.base import Provider
from veo_gateway.store.credentials import CredentialState, CredentialStore, CutOff, Taken

log = logging.getLogger("veo_gateway.pool")

# Seconds a model found with no free credential is taken as still busy without asking the
# database again, unless this process gives a slot back meanwhile: a worker's round tries each
# queued task, and all but the first would find the same. Another process's release is seen
# at most this late.
BUSY_FOR = 0.5


@dataclass
class Credential:
    """One upstream credential (a Gemini API key, or a Vertex project's identity)."""

    id: str
    upstream: str
    provider: Provider
    rpm: int
    max_in_flight: int
    cool_down_seconds: float = 30.0
    # The tasks this process took a slot for and has not given back (a cache for logs and
    # tests; the database holds every process's slots, and decides).
    holders: set[str] = field(default_factory=set)

    @property
    def in_flight(self) -> int:
        """Slots this process holds on the credential."""
        return len(self.holders)

    def free_at(self, state: CredentialState, now: float) -> float:
        """When this credential can take a submission, by its shared state (inf: never, or not
        before a slot is given back, which wakes the worker)."""
        return state.free_at(now, self.rpm, self.max_in_flight)


@dataclass(frozen=True)
class Lease:
    """A reserved submission slot: the credential, and the model id it knows the model by."""

    credential: Credential
    upstream_model: str
    taken_at: float | None = None  # tells this slot from a later one of the same task


def rejects_credential(error: UpstreamError) -> bool:
    """True when the upstream refused the credential itself rather than the request.

    401 and 403 say so; the Gemini API answers an unknown key with a 400 whose message says it.
    """
    return (
        error.code in (401, 403)
        or error.google_status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        or "API key not valid" in error.message
    )


class NoRoute(Exception):
    """No credential that could ever serve the model is in service."""


class CredentialPool:
    """All credentials, and the routes from public model names to them."""

    def __init__(
        self,
        credentials: Iterable[Credential],
        routes: dict[str, tuple[Target, ...]],
        *,
        store: CredentialStore,
        max_in_flight: int | None = None,
    ) -> None:
        self._credentials = {c.id: c for c in credentials}
        self._routes = routes
        self._store = store
        self._max_in_flight = max_in_flight
        self._busy_until: dict[str, float] = {}  # model -> when to ask the database again

    def get(self, credential_id: str | None) -> Credential | None:
        """The credential a task is pinned to, if it is still configured."""
        return self._credentials.get(credential_id or "")

    def credentials(self) -> list[Credential]:
        """Every credential, in declaration order."""
        return list(self._credentials.values())

    def targets(self, model: str) -> tuple[Target, ...]:
        """The route of a public model: its targets, in the order they are tried."""
        return self._routes.get(model, ())

    def _candidates(self, model: str) -> list[tuple[Credential, str]]:
        found = []
        for target in self._routes.get(model, ()):
            for credential in self._credentials.values():
                if credential.upstream == target.upstream:
                    found.append((credential, target.model))
        return found

    async def acquire(
        self, model: str, holder: str, now: float | None = None, *, only: str | None = None
    ) -> Lease | None:
        """Reserve a slot for task `holder`'s submission of `model`, or None when all are busy.

        Targets are tried in route order; within an upstream, the least loaded key first (by
        every process's slots). Raises NoRoute when every credential for the model is out of
        service. With `only`, the one credential of that id is tried (an extension's source
        lives in its project).
        """
        candidates = [c for c in self._candidates(model) if only is None or c[0].id == only]
        if not candidates and only is not None:
            raise NoRoute(
                f"the credential {only!r} that made the video to extend no longer serves {model}"
            )
        if not candidates:
            raise NoRoute(f"no upstream credential can serve {model} (no route)")
        if (time.time() if now is None else now) < self._busy_until.get(model, -math.inf):
            return None
        models = {c.id: m for c, m in reversed(candidates)}  # a credential's first target wins
        found_busy = False

        def choose(taken: Taken) -> str | None:
            nonlocal found_busy
            found_busy = True  # unless a credential is chosen below
            states = taken.states
            if all(states[c.id].out_of_service for c, _ in candidates):
                reasons = "; ".join(f"{c.id}: {states[c.id].out_of_service}" for c, _ in candidates)
                raise NoRoute(f"no upstream credential can serve {model} ({reasons})")
            if self._max_in_flight is not None and taken.total_in_flight >= self._max_in_flight:
                return None
            ready = [c for c, _ in candidates if c.free_at(states[c.id], taken.now) <= taken.now]
            if not ready:
                return None
            found_busy = False
            return min(ready, key=lambda c: states[c.id].in_flight).id

        pool = None if self._max_in_flight is None else list(self._credentials)
        slot = await self._store.acquire(list(models), holder, choose, now=now, pool=pool)
        if found_busy and only is None:
            self._busy_until[model] = (time.time() if now is None else now) + BUSY_FOR
        if slot is None:
            return None
        credential = self._credentials[slot.credential]
        credential.holders.add(holder)
        return Lease(credential, models[slot.credential], slot.taken_at)

    async def states(self, now: float | None = None) -> dict[str, CredentialState]:
        """Every credential's shared state (slots of every process, window, cool-down, out of
        service), by id."""
        now = time.time() if now is None else now
        return await self._store.states(list(self._credentials), now)

    async def next_free_at(self, now: float | None = None) -> float:
        """The earliest moment a cooling or rate-limited credential frees up (inf: none)."""
        now = time.time() if now is None else now
        states = await self.states(now)
        return min(
            (c.free_at(states[c.id], now) for c in self._credentials.values()), default=math.inf
        )

    async def release(
        self, credential_id: str | None, holder: str, taken_at: float | None = None
    ) -> None:
        """Task `holder`'s operation on this credential ended (or its submission did not start
        one); releasing a slot already released does nothing. `taken_at` (a lease's) gives back
        that slot only, not one taken for the task since."""
        credential = self.get(credential_id)
        if credential is not None:
            credential.holders.discard(holder)
            await self._store.release(credential.id, holder, taken_at)
            self._busy_until.clear()

    async def hold_cut_off(self, credential_id: str, holder: str, seconds: float) -> None:
        """Task `holder`'s submission on this credential ended without an answer (a timeout, a
        broken connection): Google may be running it, so a slot stays taken for `seconds` (every
        process counts it), whatever becomes of the task."""
        if self.get(credential_id) is not None:
            await self._store.hold(CutOff(holder, credential_id, seconds))

    def forget(self, credential_id: str | None, holder: str) -> None:
        """This process no longer works on task `holder` (another worker took it over): drop it
        from this process's own view only. Its slot row stays: it is the task's, now held by
        the new holder, and stops counting when the task leaves its in-flight states."""
        credential = self.get(credential_id)
        if credential is not None:
            credential.holders.discard(holder)

    async def cool_down(
        self, credential_id: str, seconds: float | None = None, now: float | None = None
    ) -> None:
        """The upstream said 429: give this credential a rest (its configured time), seen by
        every process."""
        credential = self.get(credential_id)
        if credential is not None:
            seconds = credential.cool_down_seconds if seconds is None else seconds
            now = time.time() if now is None else now
            await self._store.cool_down(credential.id, now + seconds)
            log.warning(
                "credential %s is rate limited; cooling down %.0f s", credential_id, seconds
            )

    async def disable(self, credential_id: str, reason: str) -> None:
        """The upstream refused the credential itself (401/403): no process uses it any more."""
        credential = self.get(credential_id)
        if credential is not None:
            await self._store.take_out_of_service(credential.id, reason, time.time())
            log.error("credential %s taken out of service: %s", credential_id, reason)

    async def restore_in_flight(self, holders: dict[str, list[str]]) -> None:
        """At a worker's start: the tasks the store has running upstream hold their slots, and
        the credentials out of service are tried again (one still refused is taken out again
        by its first submission)."""
        known = {cid: ids for cid, ids in holders.items() if cid in self._credentials}
        await self._store.restore(known, time.time())
        await self._store.put_back_in_service(list(self._credentials))
        for cid, task_ids in known.items():
            self._credentials[cid].holders.update(task_ids)
        self._busy_until.clear()

    async def can_take_work(self) -> bool:
        """True when at least one credential is in service (readiness)."""
        states = await self.states()
        return any(state.out_of_service is None for state in states.values())
