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


# Finished tasks enough to go by; before that, tasks seen running count as lower bounds.
_ENOUGH = 3
# Tasks seen running are kept per model at most this many, and for this long (seconds).
_RUNNING_KEPT = 32
_RUNNING_FOR = 600.0


class LatencyModel:
    """Expected upstream latency per model: built-in defaults, then learned from finished tasks."""

    def __init__(
        self, catalog: Catalog, *, first_poll: float | None = None, window: int = 50
    ) -> None:
        self._catalog = catalog
        # An operator's fixed delay before every first poll; None: from the catalog, then learned.
        self._first_poll = first_poll
        self._samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        # Per model, tasks seen still running: task id -> (seconds since submission, when seen).
        self._running: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)

    def _defaults(self, model: str) -> tuple[float, float]:
        row = self._catalog.get(model)
        if row is None:
            return 11.0, 60.0
        return row.min_latency, row.typical_latency

    def observe(self, model: str, seconds: float) -> None:
        """Record how long a finished task took upstream."""
        if seconds > 0:
            self._samples[model].append(seconds)

    def observe_running(self, model: str, task_id: str, seconds: float) -> None:
        """Record that a task was still running `seconds` after its submission: a lower bound
        of its latency, which counts until the model has finished tasks enough to go by."""
        if len(self._samples.get(model, ())) >= _ENOUGH:
            return
        now = time.monotonic()
        running = self._running[model]
        running[task_id] = (max(seconds, running.get(task_id, (0.0, 0.0))[0]), now)
        if len(running) > _RUNNING_KEPT:
            stale = [key for key, (_, seen) in running.items() if now - seen > _RUNNING_FOR]
            for key in stale:
                del running[key]
            while len(running) > _RUNNING_KEPT:
                del running[min(running, key=lambda key: running[key][0])]

    def expected(self, model: str) -> float:
        """A typical latency: the median of recent tasks, or the default."""
        samples = sorted(self._samples.get(model, ()))
        if len(samples) >= 3:
            return samples[len(samples) // 2]
        return self._defaults(model)[1]

    def first_poll_after(self, model: str) -> float:
        """When to poll a new operation first: near the fastest the model has been seen to be."""
        if self._first_poll is not None:
            return self._first_poll
        samples: list[float] = list(self._samples.get(model, ()))
        if len(samples) >= _ENOUGH:
            return max(0.5, 0.9 * min(samples))
        # Fewer finished than that (a gateway new to the model): tasks seen still running count
        # too, each as the least it can take. With one finished in 30 s and two seen running
        # at 40 s, the three took at least 30 s; with none finished and the three oldest seen
        # running at 40, 39 and 38 s, at least 38 s. The same rule as for finished tasks (new
        # tasks are not much faster than the fastest of the last few), so that a thousand
        # tasks sent to a model the gateway has not seen finish are not each polled from its
        # catalog minimum on.
        default = self._defaults(model)[0]
        now = time.monotonic()
        running = sorted(
            (
                age
                for age, seen in self._running.get(model, {}).values()
                if now - seen <= _RUNNING_FOR
            ),
            reverse=True,
        )
        wanted = _ENOUGH - len(samples)
        if len(running) < wanted:
            return default
        lowest: float = min([running[wanted - 1], *samples])
        return max(default, 0.9 * lowest)
