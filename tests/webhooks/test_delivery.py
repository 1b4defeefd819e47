"""Webhook events end to end: a real gateway (emulator, SQLite) and a real receiver on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import KEY_A, Gateway, gateway_settings
from tests.support.servers import serve_app
from tests.webhooks.conftest import SECRET, Outbox, ReceiverServer, verify, wait_until
from veo_gateway.app import create_app

MODEL = "veo-3.1-fast-generate-preview"
RAW_SECRET = "raw-secret:its-UTF-8-bytes-are-the-key"


def hooked(receiver: ReceiverServer, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "webhook_urls": f"{receiver.url}/hook",
        "webhook_secret": SECRET,
        "allow_private_webhook_urls": True,
        "webhook_retry_base": 0.2,
    }
    settings.update(overrides)
    return settings


def create(gateway: Gateway, prompt: str, **extra: Any) -> str:
    response = gateway.create({"model": MODEL, "prompt": prompt, **extra})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


def test_completed_and_failed_events_are_signed_and_delivered(
    make_gateway: Callable[..., Gateway], receiver: ReceiverServer, outbox: Outbox
) -> None:
    # Two secrets, as during a rotation: each one alone verifies the message.
    gateway = make_gateway(**hooked(receiver, webhook_secret=f"{SECRET} {RAW_SECRET}"))
    done = create(gateway, "a lighthouse at dusk")
    failed = create(gateway, "a storm [emulator:fail]")

    received = receiver.app.wait(2)
    events = {}
    for request in received:
        assert request.path == "/hook"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"].startswith("msg_")
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        event = verify(SECRET, request.headers, request.body)
        assert verify(RAW_SECRET, request.headers, request.body) == event
        events[event["data"]["id"]] = event
    assert events[done]["type"] == "video.completed"
    assert events[done]["data"]["status"] == "completed"
    assert events[done]["data"] == gateway.get(done).json() | {"progress": 100}
    assert events[failed]["type"] == "video.failed"
    assert events[failed]["data"]["status"] == "failure"
    assert events[failed]["timestamp"].endswith("Z")

    # A tampered body or another key is refused by the same verifier.
    request = received[0]
    for secret, body in ((SECRET, request.body + b" "), (RAW_SECRET + "x", request.body)):
        try:
            verify(secret, request.headers, body)
        except AssertionError:
            continue
        raise AssertionError("a bad signature was accepted")

    for task_id in (done, failed):
        # The receiver has the request before the dispatcher records the attempt's answer.
        deadline = time.monotonic() + 30
        while (delivery := outbox.deliveries(task_id)[0])["state"] == "pending":
            assert time.monotonic() < deadline, "the delivery was never recorded"
            time.sleep(0.05)
        assert len(outbox.deliveries(task_id)) == 1
        assert delivery["state"] == "delivered" and delivery["attempts"] == 1
        assert [a["status"] for a in outbox.attempts(delivery["id"])] == [200]
        assert outbox.task(task_id)["notified_at"] is not None


def test_a_failing_receiver_gets_the_event_again(
    make_gateway: Callable[..., Gateway], receiver: ReceiverServer, outbox: Outbox
) -> None:
    receiver.app.statuses = [500, 302, 200]
    gateway = make_gateway(**hooked(receiver))
    task_id = create(gateway, "a fox in the snow")

    received = receiver.app.wait(3)
    assert [r.status for r in received] == [500, 302, 200]
    # The same message each time (one webhook-id), signed afresh.
    assert len({r.headers["webhook-id"] for r in received}) == 1
    assert len({r.body for r in received}) == 1
    for request in received:
        verify(SECRET, request.headers, request.body)

    delivery = wait_until(
        lambda: next((d for d in outbox.deliveries(task_id) if d["state"] == "delivered"), None)
    )
    assert delivery["id"] == received[0].headers["webhook-id"]
    assert delivery["attempts"] == 3 and delivery["last_status"] == 200
    attempts = outbox.attempts(delivery["id"])
    assert [(a["status"], a["error"]) for a in attempts] == [
        (500, "HTTP 500"),
        (302, "redirects are not followed"),
        (200, None),
    ]
    # Backed off between attempts (0.2 s, then 0.4 s, ±20 %).
    assert attempts[1]["at"] - attempts[0]["at"] >= 0.15
    assert attempts[2]["at"] - attempts[1]["at"] >= 0.3
    assert len(receiver.app.requests) == 3


def test_a_restart_in_the_middle_delivers_once_more(
    tmp_path: Path, receiver: ReceiverServer, outbox: Outbox
) -> None:
    data_dir = tmp_path / "data"
    receiver.app.default = 503
    # A first backoff of 4 to 6 s: the gateway stops between two attempts.
    first = gateway_settings(data_dir, **hooked(receiver, webhook_retry_base=5))
    with serve_app(create_app(first)) as url, httpx.Client(base_url=url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {KEY_A}"}
        response = client.post(
            "/v1/videos", json={"model": MODEL, "prompt": "a train"}, headers=headers
        )
        task_id = response.json()["id"]
        # The task's render and the first attempt (60 s: a loaded machine is slow at both).
        (delivery,) = wait_until(
            lambda: [d for d in outbox.deliveries(task_id) if d["attempts"]], timeout=60
        )
        assert delivery["state"] == "pending" and delivery["last_status"] == 503
        assert delivery["next_attempt_at"] > delivery["created_at"] + 3

    assert len(receiver.app.requests) == 1
    receiver.app.default = 200
    # A new gateway on the same data directory keeps the schedule and delivers it once.
    with serve_app(create_app(gateway_settings(data_dir, **hooked(receiver)))):
        wait_until(lambda: outbox.deliveries(task_id)[0]["state"] != "pending", timeout=60)
    (delivery,) = outbox.deliveries(task_id)
    assert delivery["state"] == "delivered" and delivery["attempts"] == 2
    assert [r.status for r in receiver.app.requests] == [503, 200]
    assert {r.headers["webhook-id"] for r in receiver.app.requests} == {delivery["id"]}
    assert [a["status"] for a in outbox.attempts(delivery["id"])] == [503, 200]
