"""Progress and latency: Google reports no progress, so it is estimated from elapsed time."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque

from veo_gateway.domain.catalog import Catalog


def estimate_progress(elapsed: float, expected: float) -> int:
    """A percentage from 1 to 99 that only grows with `elapsed`.

    Linear to 90 % at the expected latency, then creeping towards 99 %: a slow job keeps moving
    without ever claiming to be done. 100 is reserved for completed tasks.
    """
    if expected <= 0:
        return 99
    fraction = max(elapsed, 0.0) / expected
    if fraction <= 1.0:
        return max(1, int(1 + 89 * fraction))
    # Past the expected time: approach 99 without reaching it.
    value = 90 + 9 * (1 - math.exp(-(fraction - 1)))
    return max(1, min(99, int(value)))


# Finished tasks enough to go by (the fastest of them, less a tenth, is the first poll).
_ENOUGH = 3
# Tasks seen still running, kept per model while fewer have finished: at most this many, and
# only while seen again within this many seconds (a task that stopped being polled, because it
# finished, failed or was cancelled elsewhere, no longer counts).
_RUNNING_KEPT = 32
_RUNNING_FRESH = 60.0


class LatencyModel:
    """Expected upstream latency per model: built-in defaults, then learned from finished tasks."""

    def __init__(
        self, catalog: Catalog, *, first_poll: float | None = None, window: int = 50
    ) -> None:
        self._catalog = catalog
        # An operator's fixed delay before every first poll; None: from the catalog, then learned.
        self._first_poll = first_poll
        self._samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        # Per model, while it has fewer than _ENOUGH finished: task id -> (seconds since its
        # submission when last seen running, time.monotonic() then).
        self._running: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)

    def _defaults(self, model: str) -> tuple[float, float]:
        row = self._catalog.get(model)
        if row is None:
            return 11.0, 60.0
        return row.min_latency, row.typical_latency

    def observe(self, model: str, seconds: float, task_id: str | None = None) -> None:
        """Record how long a finished task took upstream."""
        if task_id is not None:
            self.forget_running(model, task_id)
        if seconds > 0:
            self._samples[model].append(seconds)
        if len(self._samples[model]) >= _ENOUGH:
            self._running.pop(model, None)

    def observe_running(self, model: str, task_id: str, seconds: float) -> None:
        """Record that a task was still running `seconds` after its submission (a poll found
        it unfinished), while the model has fewer than three finished tasks to go by."""
        if self._first_poll is not None or len(self._samples.get(model, ())) >= _ENOUGH:
            return
        now = time.monotonic()
        running = self._running[model]
        running[task_id] = (seconds, now)
        if len(running) > _RUNNING_KEPT:
            for key in [k for k, (_, seen) in running.items() if now - seen > _RUNNING_FRESH]:
                del running[key]
            while len(running) > _RUNNING_KEPT:
                del running[min(running, key=lambda key: running[key][0])]

    def forget_running(self, model: str, task_id: str) -> None:
        """The task is no longer running upstream (finished, failed, or cancelled)."""
        self._running.get(model, {}).pop(task_id, None)

    def cold_wait(self, model: str, task_id: str, age: float, cap: float) -> float:
        """Seconds to put off the next poll of a task `age` seconds old, at most `cap`, while
        the model has fewer than three finished tasks to go by.

        The three oldest tasks seen still running (aged to now, as they were seen recently)
        bound the model's latency from below; as for finished tasks, a new one is not taken
        to be done before 0.9 of that. A task far younger than they are waits: until its age
        reaches 0.9 of theirs, both growing, but never more than `cap`, so that a task faster
        than the oldest ones (another shape of the same model) is seen late by at most that.
        """
        if self._first_poll is not None or len(self._samples.get(model, ())) >= _ENOUGH:
            return 0.0
        now = time.monotonic()
        ages = sorted(
            (
                seconds + (now - seen)
                for key, (seconds, seen) in self._running.get(model, {}).items()
                if key != task_id and now - seen <= _RUNNING_FRESH
            ),
            reverse=True,
        )
        if len(ages) < _ENOUGH:
            return 0.0
        # age + d >= 0.9 * (bound + d), the bound growing with d while they run.
        wait = (0.9 * ages[_ENOUGH - 1] - age) / 0.1
        return max(0.0, min(wait, cap))

    def expected(self, model: str) -> float:
        """A typical latency: the median of recent tasks, or the default."""
        samples = sorted(self._samples.get(model, ()))
        if len(samples) >= _ENOUGH:
            return samples[len(samples) // 2]
        return self._defaults(model)[1]

    def first_poll_after(self, model: str) -> float:
        """When to poll a new operation first: near the fastest the model has been seen to be."""
        if self._first_poll is not None:
            return self._first_poll
        samples = self._samples.get(model)
        if samples and len(samples) >= _ENOUGH:
            return max(0.5, 0.9 * min(samples))
        return self._defaults(model)[0]
