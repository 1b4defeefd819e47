"""The gateway's Prometheus metrics, one registry per app (nothing global at import).

`Metrics` is built by `create_app`; the worker and the retention sweeper report to it through
the small `WorkerMetrics` interface, whose base class reports nothing, so a worker built without
metrics needs no stub.
Gauges read from the database (tasks by state, queue depth, bytes stored) are set by the
`/metrics` handler just before it renders, from one grouped query (`observability/census.py`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from veo_gateway.errors import UpstreamError
from veo_gateway.observability.http_metrics import HttpMetrics

# Seconds. HTTP requests are mostly a millisecond or two; uploads of large images take longer.
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Upstream calls: submits and polls take a fraction of a second, downloads of 4k videos longer.
_UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Submission to completion: Veo takes from about 30 s to several minutes (the emulator less).
_TASK_BUCKETS = (1.0, 5.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 360.0, 600.0, 1200.0)

TASK_STATES = ("queued", "submitting", "in_progress", "completed", "failed", "cancelled")


class WorkerMetrics:
    """What the worker reports about its upstream calls and finished tasks; this base drops it."""

    def upstream_call(self, credential: str, kind: str, outcome: str, seconds: float) -> None:
        """One call to an upstream: `kind` is submit, poll or download."""

    def task_completed(self, model: str, seconds: float) -> None:
        """A task reached `completed`, `seconds` after it was submitted."""

    def retention_expired(self, reason: str, count: int) -> None:
        """The retention sweeper deleted the files of `count` tasks (`retention`, `storage_cap`)."""

    def stored_input_bytes(self, size: int) -> None:
        """The bytes of stored input images, as the retention sweeper last measured them."""


class Metrics(WorkerMetrics):
    """Every metric of one gateway app, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http = HttpMetrics("veo_gateway", _HTTP_BUCKETS)
        r.register(self.http)
        self.tasks = Gauge(
            "veo_gateway_tasks",
            "Tasks in the database by state (read at scrape time).",
            ("state",),
            registry=r,
        )
        self.queue_depth = Gauge(
            "veo_gateway_queue_depth",
            "Tasks waiting to be submitted upstream (state queued).",
            registry=r,
        )
        self.stored_bytes = Gauge(
            "veo_gateway_stored_video_bytes",
            "Bytes of finished videos kept in storage: completed tasks neither deleted nor "
            "expired.",
            registry=r,
        )
        self.stored_inputs = Gauge(
            "veo_gateway_stored_input_bytes",
            "Bytes of stored input images (measured on disk by each retention sweep).",
            registry=r,
        )
        self.storage_free = Gauge(
            "veo_gateway_storage_free_bytes",
            "Bytes free on the fuller of the filesystems holding stored inputs and videos "
            "(read at scrape time); at or under VEO_GATEWAY_MIN_FREE_BYTES new work is refused.",
            registry=r,
        )
        self.retention_expirations = Counter(
            "veo_gateway_retention_expired",
            "Tasks whose stored files the retention sweeper deleted, by reason (retention, "
            "storage_cap).",
            ("reason",),
            registry=r,
        )
        self.upstream_calls = Counter(
            "veo_gateway_upstream_calls",
            "Calls to upstreams by credential id, kind (submit, poll, download) and outcome.",
            ("credential", "kind", "outcome"),
            registry=r,
        )
        self.upstream_duration = Histogram(
            "veo_gateway_upstream_call_duration_seconds",
            "Duration of upstream calls by credential id and kind (downloads: whole transfer).",
            ("credential", "kind"),
            buckets=_UPSTREAM_BUCKETS,
            registry=r,
        )
        self.task_duration = Histogram(
            "veo_gateway_task_duration_seconds",
            "Time from upstream submission to completion (video stored), by model.",
            ("model",),
            buckets=_TASK_BUCKETS,
            registry=r,
        )

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request answered (called for every request: kept cheap)."""
        self.http.observe(route, method, status, seconds)

    def upstream_call(self, credential: str, kind: str, outcome: str, seconds: float) -> None:
        self.upstream_calls.labels(credential, kind, outcome).inc()
        self.upstream_duration.labels(credential, kind).observe(seconds)

    def task_completed(self, model: str, seconds: float) -> None:
        self.task_duration.labels(model).observe(seconds)

    def retention_expired(self, reason: str, count: int) -> None:
        self.retention_expirations.labels(reason).inc(count)

    def stored_input_bytes(self, size: int) -> None:
        self.stored_inputs.set(size)

    def set_census(self, by_state: dict[str, int], stored_bytes: int) -> None:
        """Set the gauges read from the database; every state is reported, zero included."""
        for state in sorted({*TASK_STATES, *by_state}):
            self.tasks.labels(state).set(by_state.get(state, 0))
        self.queue_depth.set(by_state.get("queued", 0))
        self.stored_bytes.set(stored_bytes)

    def set_storage_free(self, free_bytes: int) -> None:
        """Set the free-space gauge (measured by the `/metrics` handler)."""
        self.storage_free.set(free_bytes)

    def render(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)


def call_outcome(exc: UpstreamError) -> str:
    """The `outcome` label of a failed upstream call."""
    if exc.code == 429 or exc.google_status == "RESOURCE_EXHAUSTED":
        return "rate_limited"
    if exc.code in (401, 403):
        return "unauthorized"
    if exc.code < 500 and not exc.retryable:
        return "refused"
    return "error"
