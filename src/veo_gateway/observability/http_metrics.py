"""HTTP request counts and durations, kept as plain numbers and read at scrape time.

Every request updates them, status polls included. prometheus_client's Counter and Histogram
take a lock on each update (three a request) and cost about 4 microseconds together, a sizeable
part of a status poll; these are updated on the event loop only, so plain dictionaries do. The
exposition is the same families, samples and labels as a Counter and a Histogram would give.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


class _Durations:
    """One histogram child: counts per bucket (not yet cumulative), their sum, and its birth."""

    __slots__ = ("counts", "created", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is +Inf
        self.sum = 0.0
        self.created = time.time()


class HttpMetrics(Collector):
    """`{prefix}_http_requests` (route, method, status) and `{prefix}_http_request_duration_seconds`
    (route, method)."""

    def __init__(self, prefix: str, buckets: Sequence[float]) -> None:
        self._requests_name = f"{prefix}_http_requests"
        self._duration_name = f"{prefix}_http_request_duration_seconds"
        self._bounds = tuple(sorted(buckets))
        # The library's own spelling of `le` (untyped).
        self._les = [*(floatToGoString(b) for b in self._bounds), "+Inf"]  # type: ignore[no-untyped-call]
        self._requests: dict[tuple[str, str, int], list[float]] = {}  # [count, created]
        self._durations: dict[tuple[str, str], _Durations] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request answered."""
        counted = self._requests.get((route, method, status))
        if counted is None:
            counted = self._requests[(route, method, status)] = [0, time.time()]
        counted[0] += 1
        durations = self._durations.get((route, method))
        if durations is None:
            durations = self._durations[(route, method)] = _Durations(len(self._bounds))
        # A bucket counts the durations at most its bound (`le`).
        durations.counts[bisect.bisect_left(self._bounds, seconds)] += 1
        durations.sum += seconds

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            self._requests_name,
            "HTTP requests answered, by route template, method and status code.",
            labels=("route", "method", "status"),
        )
        for (route, method, status), (count, created) in list(self._requests.items()):
            requests.add_metric((route, method, str(status)), count, created=created)
        yield requests
        durations = HistogramMetricFamily(
            self._duration_name,
            "Time from a request's arrival to the end of its response, by route template.",
            labels=("route", "method"),
        )
        for (route, method), child in list(self._durations.items()):
            cumulative, total = [], 0
            for le, count in zip(self._les, child.counts, strict=True):
                total += count
                cumulative.append((le, float(total)))
            durations.add_metric((route, method), cumulative, child.sum)
            labels = {"route": route, "method": method}
            durations.samples.append(
                Sample(f"{self._duration_name}_created", labels, child.created)
            )
        yield durations
