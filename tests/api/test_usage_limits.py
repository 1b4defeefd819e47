"""Key limits refused at create, and the usage ledger charged only for delivered videos."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable

from tests.conftest import Gateway
from veo_gateway.store.database import create_engine
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.usage import Limits

FAST = "veo-3.1-fast-generate-preview"
BODY = {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}}


def stored_key(gateway: Gateway, limits: Limits) -> str:
    """A client key with limits, stored in the running gateway's database."""

    async def create() -> str:
        engine = create_engine(gateway.settings.resolved_database_url)
        try:
            _, secret = await KeyStore(engine).create("limited", limits)
        finally:
            await engine.dispose()
        return secret

    return asyncio.run(create())


def ledger(gateway: Gateway) -> dict[str, tuple[str, int, float]]:
    rows = gateway.db.rows("select task_id, state, seconds, cost_usd from usage")
    return {row["task_id"]: (row["state"], row["seconds"], row["cost_usd"]) for row in rows}


def test_a_model_the_key_may_not_use_is_403(gateway: Gateway) -> None:
    key = stored_key(gateway, Limits(allowed_models=("veo-3.1-generate-preview",)))
    refused = gateway.create(BODY, key=key)
    assert refused.status_code == 403
    assert "may not use model" in refused.json()["error"]["message"]


def test_in_flight_and_daily_seconds_limits_are_429_with_retry_after(gateway: Gateway) -> None:
    key = stored_key(gateway, Limits(max_in_flight=1))
    first = gateway.create(BODY, key=key)
    assert first.status_code == 200
    second = gateway.create(BODY, key=key)
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert "max_in_flight 1" in second.json()["error"]["message"]
    gateway.wait(first.json()["id"], key=key)
    assert gateway.create(BODY, key=key).status_code == 200

    daily = stored_key(gateway, Limits(max_video_seconds_per_day=6))
    assert gateway.create(BODY, key=daily).status_code == 200
    refused = gateway.create(BODY, key=daily)
    assert refused.status_code == 429 and "video seconds" in refused.json()["error"]["message"]


def test_only_delivered_videos_are_charged(gateway: Gateway) -> None:
    key = stored_key(gateway, Limits(monthly_budget_usd=0.9))
    done = gateway.create(BODY, key=key).json()["id"]
    failed = gateway.create({**BODY, "prompt": "x [emulator:fail]"}, key=key).json()["id"]
    assert gateway.wait(done, key=key)["status"] == "completed"
    assert gateway.wait(failed, key=key)["status"] == "failure"
    entries = ledger(gateway)
    assert entries[done] == ("charged", 4, 0.4)  # 4 s at the fast model's 0.10 USD/s
    assert entries[failed][0] == "released"
    # 0.40 charged and the failed task's reservation released: room for one more 0.40 video
    # (it is reserved at once), but not for two.
    assert gateway.create(BODY, key=key).status_code == 200
    over = gateway.create(BODY, key=key)
    assert over.status_code == 429 and "monthly budget" in over.json()["error"]["message"]


def veo_gateway(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `veo-gateway` command on the gateway's database."""
    return subprocess.run(
        [sys.executable, "-m", "veo_gateway", *args],
        env={**os.environ, "VEO_GATEWAY_DATA_DIR": str(gateway.settings.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_created_and_updated_from_the_command_line(gateway: Gateway) -> None:
    created = veo_gateway(
        gateway,
        *("keys", "create", "--name", "ci", "--models", "veo-3.1-generate-preview"),
        *("--max-in-flight", "1"),
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    key_id = created.stdout.split()[2]
    assert gateway.create(BODY, key=key).status_code == 403

    updated = veo_gateway(gateway, "keys", "update", key_id, "--clear", "models")
    assert updated.returncode == 0, updated.stderr
    assert "max_in_flight=1" in updated.stdout and "allowed_models" not in updated.stdout
    first = gateway.create(BODY, key=key)
    assert first.status_code == 200
    assert gateway.create(BODY, key=key).status_code == 429
    gateway.wait(first.json()["id"], key=key)

    report = veo_gateway(gateway, "keys", "usage", key_id)
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert body["key"]["id"] == key_id and body["total"]["videos"] == 1

    # Contradictions, nothing to change, and unknown keys are refused with a message.
    both = veo_gateway(
        gateway, "keys", "update", key_id, "--clear", "max-in-flight", "--max-in-flight", "2"
    )
    assert both.returncode == 2 and "contradict" in both.stderr
    assert veo_gateway(gateway, "keys", "update", key_id).returncode == 2
    missing = veo_gateway(gateway, "keys", "update", "key_nope", "--name", "x")
    assert missing.returncode == 1 and "no active key" in missing.stderr
    assert veo_gateway(gateway, "keys", "revoke", key_id).returncode == 0
    listed = json.loads(veo_gateway(gateway, "keys", "list", "--json").stdout)
    assert [(key["id"], key["name"]) for key in listed] == [(key_id, "ci")]
    assert listed[0]["revoked_at"] is not None


def test_blocked_and_cancelled_tasks_cost_nothing(gateway: Gateway) -> None:
    blocked = gateway.create({**BODY, "prompt": "x [emulator:blocked]"}).json()["id"]
    cancelled = gateway.create({**BODY, "prompt": "cancel me"}).json()["id"]
    deleted = gateway.client.delete(f"/v1/videos/{cancelled}", headers=gateway.headers())
    assert deleted.status_code == 200
    assert gateway.wait(blocked)["status"] == "failure"
    entries = ledger(gateway)
    assert entries[blocked][0] == "released"
    assert entries[cancelled][0] == "released"
    # The usage report agrees: nothing charged, nothing held.
    report = gateway.client.get("/v1/usage", headers=gateway.headers()).json()
    assert report["total"]["videos"] == 0 and report["reserved"]["videos"] == 0


def test_timed_out_tasks_cost_nothing(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(emulator_latency="30", task_timeout=1.0)
    task_id = gateway.create(BODY).json()["id"]
    status = gateway.wait(task_id, timeout=30)
    assert status["status"] == "failure" and "timed out" in str(status)
    assert ledger(gateway)[task_id][0] == "released"
