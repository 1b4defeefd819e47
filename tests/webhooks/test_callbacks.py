"""Per-request callback URLs, refused addresses, cancelled tasks, an attempt cut by a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY_A, Gateway, gateway_settings
from tests.support.servers import serve_app
from tests.webhooks.conftest import SECRET, Outbox, ReceiverServer, verify, wait_until
from tests.webhooks.test_delivery import MODEL, create, hooked
from veo_gateway.app import create_app


def test_a_callback_url_receives_the_event_beside_the_endpoints(
    make_gateway: Callable[..., Gateway], receiver: ReceiverServer, outbox: Outbox
) -> None:
    gateway = make_gateway(**hooked(receiver))
    task_id = create(gateway, "a paper boat", callback_url=f"{receiver.url}/mine?task=1")
    received = receiver.app.wait(2)
    assert sorted(r.path for r in received) == ["/hook", "/mine"]
    for request in received:
        event = verify(SECRET, request.headers, request.body)
        assert event["type"] == "video.completed" and event["data"]["id"] == task_id
    # One delivery per endpoint, each with its own webhook-id.
    deliveries = outbox.deliveries(task_id)
    assert sorted(d["url"] for d in deliveries) == [
        f"{receiver.url}/hook",
        f"{receiver.url}/mine?task=1",
    ]
    assert {d["id"] for d in deliveries} == {r.headers["webhook-id"] for r in received}
    # Another task without a callback goes to the operator's endpoint only.
    other = create(gateway, "a kite")
    wait_until(lambda: [d for d in outbox.deliveries(other) if d["state"] == "delivered"])
    assert [d["url"] for d in outbox.deliveries(other)] == [f"{receiver.url}/hook"]


@pytest.mark.parametrize(
    ("callback_url", "words"),
    [
        (42, "must be a string"),
        ("ftp://example.com/hook", "http or https"),
        ("https://example.com/" + "a" * 2100, "longer than 2048"),
        ("http://10.1.2.3/hook", "10.1.2.3 is private"),
        ("http://[::1]:8080/hook", "::1 is loopback"),
        ("http://169.254.169.254/latest", "cloud metadata"),
        ("https://user:pw@example.com/hook", "user name or password"),
    ],
)
def test_a_bad_callback_url_is_refused(
    make_gateway: Callable[..., Gateway], callback_url: Any, words: str
) -> None:
    gateway = make_gateway(webhook_secret=SECRET)
    response = gateway.create({"model": MODEL, "prompt": "x", "callback_url": callback_url})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "callback_url" and words in error["message"]


def test_a_callback_url_needs_a_secret(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway()  # no VEO_GATEWAY_WEBHOOK_SECRET
    response = gateway.create(
        {"model": MODEL, "prompt": "x", "callback_url": "https://example.com/hook"}
    )
    assert response.status_code == 400
    assert "VEO_GATEWAY_WEBHOOK_SECRET" in response.json()["error"]["message"]


def test_metadata_stays_refused_when_private_urls_are_allowed(
    make_gateway: Callable[..., Gateway], receiver: ReceiverServer
) -> None:
    gateway = make_gateway(**hooked(receiver))
    body = {"model": MODEL, "prompt": "x", "callback_url": "http://169.254.169.254/"}
    assert gateway.create(body).status_code == 400
    body["callback_url"] = "http://127.0.0.1:9/hook"
    assert gateway.create(body).status_code == 200


def test_a_private_address_is_refused_at_delivery_and_recorded(
    make_gateway: Callable[..., Gateway], receiver: ReceiverServer, outbox: Outbox
) -> None:
    # Loopback is private: with private URLs not allowed, nothing reaches the receiver. A name
    # passes the create's check and is judged on the address it resolves to.
    port = httpx.URL(receiver.url).port
    gateway = make_gateway(
        **hooked(
            receiver,
            allow_private_webhook_urls=False,
            webhook_retry_base=5,
            webhook_retry_for=1.0,
        )
    )
    task_id = create(gateway, "a moth", callback_url=f"http://localhost:{port}/cb")
    deliveries = wait_until(
        lambda: (
            (ds := outbox.deliveries(task_id)) and all(d["state"] == "failed" for d in ds) and ds
        )
    )
    assert len(deliveries) == 2
    for delivery in deliveries:
        (attempt,) = outbox.attempts(delivery["id"])
        assert attempt["status"] is None
        assert "is loopback" in attempt["error"]
        assert delivery["last_error"] == attempt["error"]
    assert receiver.app.requests == []


def test_a_cancelled_task_has_no_event(
    make_gateway: Callable[..., Gateway], receiver: ReceiverServer, outbox: Outbox
) -> None:
    gateway = make_gateway(**hooked(receiver, emulator_latency="5"))
    task_id = create(gateway, "a slow sunrise")
    response = gateway.client.delete(f"/v1/videos/{task_id}", headers=gateway.headers())
    assert response.status_code == 200, response.text
    wait_until(lambda: outbox.task(task_id)["notified_at"])
    assert outbox.task(task_id)["state"] == "cancelled"
    assert outbox.deliveries(task_id) == []
    assert receiver.app.requests == []


# SQLite's lock holder lifts cut-off attempts at start; beside other dispatchers
# (PostgreSQL) they are taken when their lease runs out (tests/webhooks/test_dispatch_leases.py).
@pytest.mark.sqlite
def test_an_attempt_cut_off_by_a_restart_is_made_again(
    tmp_path: Path, receiver: ReceiverServer, outbox: Outbox
) -> None:
    data_dir = tmp_path / "data"
    receiver.app.delay = 3.0  # the gateway stops while the receiver is still answering
    settings = gateway_settings(data_dir, **hooked(receiver))
    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = {"model": MODEL, "prompt": "a bridge"}
        task_id = client.post(
            "/v1/videos", json=body, headers={"Authorization": f"Bearer {KEY_A}"}
        ).json()["id"]
        receiver.app.wait(1)
    (delivery,) = outbox.deliveries(task_id)
    assert delivery["state"] == "pending" and delivery["attempts"] == 0
    assert delivery["lease_until"] > 0

    receiver.app.delay = 0.0
    with serve_app(create_app(settings)):
        wait_until(lambda: outbox.deliveries(task_id)[0]["state"] == "delivered")
    assert [r.headers["webhook-id"] for r in receiver.app.requests] == [delivery["id"]] * 2
    assert [a["status"] for a in outbox.attempts(delivery["id"])] == [200]


def test_the_callback_is_kept_in_the_task_s_own_transaction(database_url: str) -> None:
    """Written with the task or not at all: a create refused by a limit leaves neither row."""
    import asyncio

    import sqlalchemy as sa

    from veo_gateway.errors import ResourceExhausted
    from veo_gateway.store.database import create_engine, migrate
    from veo_gateway.store.tables import tasks, webhook_callbacks
    from veo_gateway.store.tasks import TaskStore
    from veo_gateway.store.usage import Charge, Limits

    async def scenario() -> tuple[list[str], list[tuple[str, str]]]:
        engine = create_engine(database_url)
        await migrate(engine)
        store = TaskStore(engine)
        charge = Charge(model=MODEL, seconds=8, resolution="720p", audio=False, cost_usd=0.8)
        common: dict[str, Any] = {"owner": "o", "dialect": "spec", "model": MODEL, "request": {}}
        try:
            await store.create(
                task_id="kept", charge=charge, callback_url="https://example.com/a", **common
            )
            with pytest.raises(ResourceExhausted):
                await store.create(
                    task_id="refused",
                    charge=charge,
                    limits=Limits(max_video_seconds_per_day=10),
                    callback_url="https://example.com/b",
                    **common,
                )
            await store.create(task_id="refused-upstream", callback_url="https://x/c", **common)
            await store.delete("refused-upstream")
            async with engine.connect() as conn:
                ids = list((await conn.scalars(sa.select(tasks.c.id))).all())
                hooks = [tuple(r) for r in (await conn.execute(webhook_callbacks.select())).all()]
        finally:
            await store.aclose()
            await engine.dispose()
        return ids, hooks

    ids, hooks = asyncio.run(scenario())
    assert ids == ["kept"]
    assert hooks == [("kept", "https://example.com/a")]
