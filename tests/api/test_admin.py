"""The admin API (`/admin/`, behind VEO_GATEWAY_ADMIN_TOKEN) and a client's `GET /v1/usage`."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import KEY_A, Gateway

ADMIN = "admin-token-for-tests"
FAST = "veo-3.1-fast-generate-preview"
STANDARD = "veo-3.1-generate-preview"
BODY = {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}}

ROUTES = [
    ("POST", "/admin/keys", {"name": "x"}),
    ("GET", "/admin/keys", None),
    ("GET", "/admin/keys/key_0123", None),
    ("PATCH", "/admin/keys/key_0123", {"max_in_flight": 1}),
    ("DELETE", "/admin/keys/key_0123", None),
    ("GET", "/admin/keys/key_0123/usage", None),
    ("GET", "/admin/usage", None),
]


def call(
    gateway: Gateway, method: str, path: str, body: Any = None, token: str | None = ADMIN
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return gateway.client.request(method, path, json=body, headers=headers)


@pytest.fixture
def admin_gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway(admin_token=ADMIN)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_without_the_setting_the_admin_api_is_disabled(
    gateway: Gateway, method: str, path: str, body: Any
) -> None:
    for token in (None, ADMIN, KEY_A):
        answer = call(gateway, method, path, body, token)
        assert answer.status_code == 403, answer.text
        error = answer.json()["error"]
        assert error["status"] == "PERMISSION_DENIED"
        assert "VEO_GATEWAY_ADMIN_TOKEN" in error["message"]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_admin_routes_refuse_anything_but_the_token(
    admin_gateway: Gateway, method: str, path: str, body: Any
) -> None:
    for token in (None, "wrong", KEY_A, ADMIN + "x"):
        answer = call(admin_gateway, method, path, body, token)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    # A malformed body without the token learns nothing about the body either.
    answer = admin_gateway.client.post(
        "/admin/keys", content=b"{not json", headers={"Authorization": "Basic x"}
    )
    assert answer.status_code == 401
    # Nothing was created by the refused calls.
    assert call(admin_gateway, "GET", "/admin/keys").json()["data"] == []


def test_key_lifecycle_through_the_admin_api(admin_gateway: Gateway) -> None:
    created = call(
        admin_gateway,
        "POST",
        "/admin/keys",
        {"name": "team-a", "allowed_models": [STANDARD], "max_in_flight": 1},
    )
    assert created.status_code == 201, created.text
    key = created.json()
    secret, key_id = key["secret"], key["id"]
    assert secret.startswith("vgw_") and key["prefix"] == secret[: len(key["prefix"])]
    assert key["allowed_models"] == [STANDARD] and key["max_in_flight"] == 1
    assert key["monthly_budget_usd"] is None

    # The secret is shown once: no read shows it again.
    fetched = call(admin_gateway, "GET", f"/admin/keys/{key_id}").json()
    assert "secret" not in fetched and fetched["name"] == "team-a"
    listed = call(admin_gateway, "GET", "/admin/keys").json()
    assert [k["id"] for k in listed["data"]] == [key_id]
    assert secret not in str(listed)

    # The key works, within its limits.
    assert admin_gateway.create(BODY, key=secret).status_code == 403
    answer = call(
        admin_gateway,
        "PATCH",
        f"/admin/keys/{key_id}",
        {"allowed_models": None, "name": "team-a2"},
    )
    assert answer.status_code == 200, answer.text
    updated = answer.json()
    assert updated["allowed_models"] is None and updated["name"] == "team-a2"
    assert updated["max_in_flight"] == 1  # not sent, so unchanged
    first = admin_gateway.create(BODY, key=secret)
    assert first.status_code == 200
    second = admin_gateway.create(BODY, key=secret)
    assert second.status_code == 429 and "max_in_flight 1" in second.json()["error"]["message"]
    admin_gateway.wait(first.json()["id"], key=secret)

    # Revoked: refused at once, and no longer changeable.
    revoked = call(admin_gateway, "DELETE", f"/admin/keys/{key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert admin_gateway.create(BODY, key=secret).status_code == 401
    assert call(admin_gateway, "PATCH", f"/admin/keys/{key_id}", {"name": "n"}).status_code == 404
    assert call(admin_gateway, "DELETE", f"/admin/keys/{key_id}").status_code == 404
    assert call(admin_gateway, "GET", f"/admin/keys/{key_id}").json()["revoked_at"] is not None


@pytest.mark.parametrize(
    ("method", "body", "param", "words"),
    [
        ("POST", {}, "name", "Field required"),
        ("POST", {"name": ""}, "name", "at least 1 character"),
        ("POST", {"name": "x", "max_in_flight": 0}, "max_in_flight", "greater than or equal"),
        ("POST", {"name": "x", "monthly_budget_usd": -1}, "monthly_budget_usd", "greater"),
        ("POST", {"name": "x", "allowed_models": ["veo-9"]}, "allowed_models", "unknown model"),
        ("POST", {"name": "x", "colour": "red"}, "colour", "Extra inputs"),
        ("POST", ["x"], None, "should be an object"),
        ("PATCH", {"name": None}, "name", "cannot be null"),
        ("PATCH", {"max_video_seconds_per_day": "lots"}, "max_video_seconds_per_day", "integer"),
    ],
)
def test_bad_admin_bodies_are_400_naming_the_field(
    admin_gateway: Gateway, method: str, body: Any, param: str | None, words: str
) -> None:
    key_id = call(admin_gateway, "POST", "/admin/keys", {"name": "k"}).json()["id"]
    path = "/admin/keys" if method == "POST" else f"/admin/keys/{key_id}"
    answer = call(admin_gateway, method, path, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert words in error["message"]
    assert error.get("param") == param


def test_usage_for_the_client_and_for_the_operator(make_gateway: Callable[..., Gateway]) -> None:
    # Each operation takes 6 s upstream: the report read at once sees them still running.
    admin_gateway = make_gateway(admin_token=ADMIN, emulator_latency="6")
    key = call(admin_gateway, "POST", "/admin/keys", {"name": "u", "monthly_budget_usd": 10})
    secret, key_id = key.json()["secret"], key.json()["id"]
    done = [
        admin_gateway.create({**BODY, "prompt": f"p{i}"}, key=secret).json()["id"] for i in range(2)
    ]
    standard = admin_gateway.create(
        {"model": STANDARD, "prompt": "s", "metadata": {"durationSeconds": 6}}, key=secret
    ).json()["id"]
    failed = admin_gateway.create({**BODY, "prompt": "x [emulator:fail]"}, key=secret)

    # While they run, the reservations show; nothing is charged yet.
    running = admin_gateway.client.get("/v1/usage", headers=admin_gateway.headers(secret))
    assert running.status_code == 200
    report = running.json()
    # 4 + 4 + 4 s of the fast model at 0.10 USD/s and 6 s of the standard one at 0.40 USD/s.
    # On a slow machine the failing one may have ended (and let its reservation go) before the
    # report was read; still unfinished after it, it was surely reserved then.
    all_four = {"videos": 4, "seconds": 18, "cost_usd": 3.6}
    without_failed = {"videos": 3, "seconds": 14, "cost_usd": 3.2}
    failed_status = admin_gateway.get(failed.json()["id"], key=secret).json()["status"]
    if failed_status in ("queued", "in_progress"):
        assert report["reserved"] == all_four
    else:
        assert report["reserved"] in (all_four, without_failed)
    assert report["total"] == {"videos": 0, "seconds": 0, "cost_usd": 0.0}
    reserved = report["reserved"]
    assert report["current"] == {
        "in_flight": reserved["videos"],
        "video_seconds_today": reserved["seconds"],
        "month_cost_usd": reserved["cost_usd"],
    }

    for task_id in [*done, standard, failed.json()["id"]]:
        admin_gateway.wait(task_id, key=secret)
    report = admin_gateway.client.get("/v1/usage", headers=admin_gateway.headers(secret)).json()
    today = datetime.datetime.now(datetime.UTC).date()
    assert report["object"] == "usage" and report["currency"] == "USD"
    assert report["start"] == today.replace(day=1).isoformat()
    assert report["end"] == today.isoformat()
    # Two 4 s fast videos at 0.10 USD/s and one 6 s standard one at 0.40 USD/s; the failed
    # one costs nothing.
    assert report["total"] == {"videos": 3, "seconds": 14, "cost_usd": 3.2}
    assert report["by_model"] == [
        {"model": FAST, "videos": 2, "seconds": 8, "cost_usd": 0.8},
        {"model": STANDARD, "videos": 1, "seconds": 6, "cost_usd": 2.4},
    ]
    assert report["by_day"] == [
        {"day": today.isoformat(), "videos": 3, "seconds": 14, "cost_usd": 3.2}
    ]
    assert report["reserved"] == {"videos": 0, "seconds": 0, "cost_usd": 0.0}
    assert report["limits"]["monthly_budget_usd"] == 10
    assert report["current"] == {
        "in_flight": 0,
        "video_seconds_today": 14,
        "month_cost_usd": 3.2,
    }

    # Another client sees only its own usage.
    other = admin_gateway.client.get("/v1/usage", headers=admin_gateway.headers(KEY_A)).json()
    assert other["total"]["videos"] == 0 and other["limits"]["max_in_flight"] is None

    # The operator reads the same report per key, and a summary of every key.
    per_key = call(admin_gateway, "GET", f"/admin/keys/{key_id}/usage").json()
    assert per_key["key"]["id"] == key_id
    assert {k: v for k, v in per_key.items() if k != "key"} == report
    summary = call(admin_gateway, "GET", "/admin/usage").json()
    assert summary["total"] == report["total"]
    assert summary["by_key"] == [
        {"key_id": key_id, "name": "u", "videos": 3, "seconds": 14, "cost_usd": 3.2}
    ]

    # A period without usage, and periods that make no sense.
    old = admin_gateway.client.get(
        "/v1/usage?start=2020-01-01&end=2020-01-31", headers=admin_gateway.headers(secret)
    ).json()
    assert old["total"] == {"videos": 0, "seconds": 0, "cost_usd": 0.0}
    for query, param in [
        ("start=yesterday", "start"),
        ("end=2026-13-01", "end"),
        ("start=2026-02-01&end=2026-01-01", "start"),
        ("start=2020-01-01&end=2026-01-01", "start"),
    ]:
        bad = admin_gateway.client.get(f"/v1/usage?{query}", headers=admin_gateway.headers(secret))
        assert bad.status_code == 400, query
        assert bad.json()["error"]["param"] == param
    assert admin_gateway.client.get("/v1/usage").status_code == 401
