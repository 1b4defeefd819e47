"""`/metrics`: Prometheus text that moves with the traffic, the tasks and the upstream calls."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KEY_A, Gateway

FAST = "veo-3.1-fast-generate-preview"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gateway: Gateway, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = gateway.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples carrying at least these labels."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_http_requests_are_counted_by_route_template(gateway: Gateway) -> None:
    before = scrape(gateway)
    task_id = gateway.create({"model": FAST, "prompt": "counted"}).json()["id"]
    for _ in range(3):
        assert gateway.get(task_id).status_code == 200
    assert gateway.client.get("/no/such/route/123").status_code == 404
    after = scrape(gateway)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    requests = "veo_gateway_http_requests_total"
    assert moved(requests, route="/v1/videos", method="POST", status="200") == 1
    # The status poll is answered before FastAPI's routing, and is still counted.
    assert moved(requests, route="/v1/videos/{task_id}", method="GET", status="200") == 3
    assert moved(requests, route="unmatched", status="404") == 1
    durations = "veo_gateway_http_request_duration_seconds_count"
    assert moved(durations, route="/v1/videos/{task_id}", method="GET") == 3
    assert moved("veo_gateway_http_request_duration_seconds_sum", route="/v1/videos") > 0
    # Raw paths never become labels.
    assert not any(task_id in str(labels) for _, labels in after)
    assert not any("/no/such" in str(labels) for _, labels in after)


def test_tasks_upstream_calls_and_bytes_move_when_a_task_completes(gateway: Gateway) -> None:
    before = scrape(gateway)
    assert total(before, "veo_gateway_tasks", state="completed") == 0
    assert total(before, "veo_gateway_stored_video_bytes") == 0
    for state in ("queued", "submitting", "in_progress", "completed", "failed", "cancelled"):
        assert ("veo_gateway_tasks", frozenset({("state", state)})) in before
    assert ("veo_gateway_queue_depth", frozenset()) in before

    task_id = gateway.create({"model": FAST, "prompt": "measured", "metadata": {}}).json()["id"]
    assert gateway.wait(task_id)["status"] == "completed"
    content = gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers(KEY_A))
    after = scrape(gateway)

    assert total(after, "veo_gateway_tasks", state="completed") == 1
    assert total(after, "veo_gateway_queue_depth") == 0
    assert total(after, "veo_gateway_stored_video_bytes") == len(content.content) > 0
    completions = "veo_gateway_task_duration_seconds_count"
    assert total(after, completions, model=FAST) - total(before, completions, model=FAST) == 1

    # Upstream calls are labelled with the credential's id (the one /readyz lists).
    ready = gateway.client.get("/readyz").json()
    (credential,) = [c["id"] for c in ready["credentials"]]
    calls = "veo_gateway_upstream_calls_total"
    for kind in ("submit", "poll", "download"):
        assert total(after, calls, credential=credential, kind=kind, outcome="ok") >= 1, kind
        timed = total(
            after,
            "veo_gateway_upstream_call_duration_seconds_count",
            credential=credential,
            kind=kind,
        )
        assert timed >= 1, kind


def test_deleting_a_video_shrinks_the_bytes_stored(gateway: Gateway) -> None:
    task_id = gateway.create({"model": FAST, "prompt": "kept, then deleted"}).json()["id"]
    gateway.wait(task_id)
    assert total(scrape(gateway), "veo_gateway_stored_video_bytes") > 0
    deleted = gateway.client.delete(f"/v1/videos/{task_id}", headers=gateway.headers())
    assert deleted.status_code == 200
    assert total(scrape(gateway), "veo_gateway_stored_video_bytes") == 0


def test_a_metrics_token_is_required_once_set(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(metrics_token="scrape-secret")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {KEY_A}"},  # a client key is not the metrics token
        {"Authorization": "Basic scrape-secret"},
    ):
        refused = gateway.client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["status"] == "UNAUTHENTICATED"
    assert (
        "veo_gateway_tasks"
        in gateway.client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).text
    )


def test_metrics_are_open_without_a_token(gateway: Gateway) -> None:
    assert gateway.client.get("/metrics").status_code == 200


def test_two_apps_keep_their_own_counts(make_gateway: Callable[..., Gateway]) -> None:
    first, second = make_gateway(), make_gateway()
    for _ in range(4):
        first.client.get("/healthz")
    counted = "veo_gateway_http_requests_total"
    assert total(scrape(first), counted, route="/healthz") == 4
    assert total(scrape(second), counted, route="/healthz") == 0
