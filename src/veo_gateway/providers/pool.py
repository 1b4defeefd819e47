"""The credential pool: which upstream credential may take the next submission, and when.

Each credential has a requests-per-minute limit and a cap on operations in flight. A 429 cools
it down for a while; a 401 or 403 takes it out of service until restart (and says why). A task
stays pinned to the credential that submitted it: its polls and download use that one.

A slot in flight is held by a task id, not counted: releasing is idempotent, so every path
that ends a task's hold (a finished job, a failure, a DELETE, whatever raised) may release it
without a second release freeing someone else's slot, and none can leak it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from veo_gateway.config import Target
from veo_gateway.errors import UpstreamError
from veo_gateway.providers.base import Provider

log = logging.getLogger("veo_gateway.pool")


@dataclass
class Credential:
    """One upstream credential (a Gemini API key, or a Vertex project's identity)."""

    id: str
    upstream: str
    provider: Provider
    rpm: int
    max_in_flight: int
    cool_down_seconds: float = 30.0
    cool_until: float = 0.0
    disabled: str | None = None
    # The tasks holding a slot: submitting, or running upstream.
    holders: set[str] = field(default_factory=set)
    _recent: deque[float] = field(default_factory=deque)

    @property
    def in_flight(self) -> int:
        """Slots taken (tasks being submitted or running upstream)."""
        return len(self.holders)

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - 60.0:
            self._recent.popleft()

    def free_at(self, now: float) -> float:
        """When this credential can take a submission (now if it can; inf if never)."""
        if self.disabled is not None:
            return float("inf")
        self._trim(now)
        ready = max(now, self.cool_until)
        if len(self._recent) >= self.rpm:
            ready = max(ready, self._recent[0] + 60.0)
        if self.in_flight >= self.max_in_flight:
            return float("inf")  # freed by a finishing task, which wakes the worker
        return ready


@dataclass(frozen=True)
class Lease:
    """A reserved submission slot: the credential, and the model id it knows the model by."""

    credential: Credential
    upstream_model: str


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
        max_in_flight: int | None = None,
    ) -> None:
        self._credentials = {c.id: c for c in credentials}
        self._routes = routes
        self._max_in_flight = max_in_flight

    def get(self, credential_id: str | None) -> Credential | None:
        """The credential a task is pinned to, if it is still configured."""
        return self._credentials.get(credential_id or "")

    def credentials(self) -> list[Credential]:
        """Every credential, in declaration order."""
        return list(self._credentials.values())

    def _candidates(self, model: str) -> list[tuple[Credential, str]]:
        found = []
        for target in self._routes.get(model, ()):
            for credential in self._credentials.values():
                if credential.upstream == target.upstream:
                    found.append((credential, target.model))
        return found

    def total_in_flight(self) -> int:
        """Operations running across every credential."""
        return sum(c.in_flight for c in self._credentials.values())

    def acquire(self, model: str, holder: str, now: float | None = None) -> Lease | None:
        """Reserve a slot for task `holder`'s submission of `model`, or None when all are busy.

        Targets are tried in route order; within an upstream, the least loaded key first.
        Raises NoRoute when every credential for the model is out of service.
        """
        now = time.time() if now is None else now
        candidates = self._candidates(model)
        if not candidates or all(c.disabled for c, _ in candidates):
            reasons = "; ".join(f"{c.id}: {c.disabled}" for c, _ in candidates) or "no route"
            raise NoRoute(f"no upstream credential can serve {model} ({reasons})")
        if self._max_in_flight is not None and self.total_in_flight() >= self._max_in_flight:
            return None
        if any(holder in c.holders for c in self._credentials.values()):
            return None  # its last job has not given its slot back yet: one slot per task
        ready = [(c, m) for c, m in candidates if c.free_at(now) <= now]
        if not ready:
            return None
        credential, upstream_model = min(ready, key=lambda pair: pair[0].in_flight)
        credential.holders.add(holder)
        credential._recent.append(now)
        return Lease(credential, upstream_model)

    def next_free_at(self, now: float | None = None) -> float:
        """The earliest moment a cooling or rate-limited credential frees up (inf: none)."""
        now = time.time() if now is None else now
        return min((c.free_at(now) for c in self._credentials.values()), default=float("inf"))

    def release(self, credential_id: str | None, holder: str) -> None:
        """Task `holder`'s operation on this credential ended (or its submission did not start
        one); releasing a slot already released does nothing."""
        credential = self.get(credential_id)
        if credential is not None:
            credential.holders.discard(holder)

    def cool_down(self, credential_id: str, seconds: float | None = None) -> None:
        """The upstream said 429: give this credential a rest (its configured time)."""
        credential = self.get(credential_id)
        if credential is not None:
            seconds = credential.cool_down_seconds if seconds is None else seconds
            credential.cool_until = max(credential.cool_until, time.time() + seconds)
            log.warning(
                "credential %s is rate limited; cooling down %.0f s", credential_id, seconds
            )

    def disable(self, credential_id: str, reason: str) -> None:
        """The upstream refused the credential itself (401/403): stop using it."""
        credential = self.get(credential_id)
        if credential is not None and credential.disabled is None:
            credential.disabled = reason
            log.error("credential %s taken out of service: %s", credential_id, reason)

    def restore_in_flight(self, holders: dict[str, list[str]]) -> None:
        """Take the slots of the tasks the store has running upstream (at start-up)."""
        for credential_id, task_ids in holders.items():
            credential = self.get(credential_id)
            if credential is not None:
                credential.holders.update(task_ids)

    def can_take_work(self) -> bool:
        """True when at least one credential is in service (readiness)."""
        return any(c.disabled is None for c in self._credentials.values())
