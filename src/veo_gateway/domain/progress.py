"""Progress and latency: Google reports no progress, so it is estimated from elapsed time."""

from __future__ import annotations

import math
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


class LatencyModel:
    """Expected upstream latency per model: built-in defaults, then learned from finished tasks."""

    def __init__(
        self, catalog: Catalog, *, first_poll: float | None = None, window: int = 50
    ) -> None:
        self._catalog = catalog
        # An operator's fixed delay before every first poll; None: from the catalog, then learned.
        self._first_poll = first_poll
        self._samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))

    def _defaults(self, model: str) -> tuple[float, float]:
        row = self._catalog.get(model)
        if row is None:
            return 11.0, 60.0
        return row.min_latency, row.typical_latency

    def observe(self, model: str, seconds: float) -> None:
        """Record how long a finished task took upstream."""
        if seconds > 0:
            self._samples[model].append(seconds)

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
        samples = self._samples.get(model)
        if samples and len(samples) >= 3:
            return max(0.5, 0.9 * min(samples))
        return self._defaults(model)[0]
