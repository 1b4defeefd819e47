"""Keys: Bearer auth on every route but health, stored keys, tenant isolation."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import KEY_B, Gateway

FAST = "veo-3.1-fast-generate-preview"


def test_health_needs_no_key(gateway: Gateway) -> None:
    assert gateway.client.get("/healthz").json() == {"status": "ok"}


def test_missing_and_wrong_keys_get_401(gateway: Gateway) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = gateway.client.post(
            "/v1/videos", json={"model": FAST, "prompt": "p"}, headers=headers
        )
        assert response.status_code == 401
        assert response.json()["error"]["status"] == "UNAUTHENTICATED"
        assert gateway.client.get("/v1/videos/x", headers=headers).status_code == 401


def test_a_task_is_visible_only_to_its_key(gateway: Gateway) -> None:
    task_id = gateway.create({"model": FAST, "prompt": "mine"}).json()["id"]
    assert gateway.get(task_id).status_code == 200
    other = gateway.get(task_id, key=KEY_B)
    assert other.status_code == 404
    assert other.json()["error"]["status"] == "NOT_FOUND"
    content = gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers(KEY_B))
    assert content.status_code == 404
    gateway.wait(task_id)
    assert (
        gateway.client.get(
            f"/v1/videos/{task_id}/content", headers=gateway.headers(KEY_B)
        ).status_code
        == 404
    )


def test_keys_create_prints_a_key_that_works(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    env = {**os.environ, "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "veo_gateway", "keys", "create", "--name", "ci"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("vgw_")
    gateway = make_gateway()
    assert secret not in str(gateway.db.rows("select * from api_keys"))  # only its hash
    response = gateway.create({"model": FAST, "prompt": "p"}, key=secret)
    assert response.status_code == 200
    listed = subprocess.run(
        [sys.executable, "-m", "veo_gateway", "keys", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "ci" in listed and secret not in listed
