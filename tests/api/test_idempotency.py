"""Idempotency-Key at its edges: malformed keys, a key whose video was deleted, and a key whose
create Google refused at once. A key names a task its owner still has; when there is none (it
was deleted, or Google refused the request and nothing was kept), the key is free again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_upstreams import emulator, write_config
from tests.conftest import Gateway

__all__ = ["emulator"]  # the fixture, used by name

FAST = "veo-3.1-fast-generate-preview"
BODY = {"model": FAST, "prompt": "a kite", "metadata": {"durationSeconds": 4}}


def create(gateway: Gateway, key: str | bytes, body: dict[str, Any] = BODY) -> httpx.Response:
    headers: dict[str, Any] = {**gateway.headers(), "Idempotency-Key": key}
    return gateway.client.post("/v1/videos", json=body, headers=headers)


def rows(gateway: Gateway, table: str) -> int:
    return int(gateway.db.scalar(f"select count(*) from {table}"))


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "Idempotency-Key is empty; send 1 to 255 printable ASCII characters"),
        ("k" * 256, "Idempotency-Key is 256 characters long; the limit is 255"),
        ("order\t42", "Idempotency-Key must be printable ASCII"),
        ("clé-42".encode(), "Idempotency-Key must be printable ASCII"),
    ],
)
def test_a_malformed_key_is_a_clear_400(gateway: Gateway, key: str | bytes, message: str) -> None:
    refused = create(gateway, key)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["param"] == "Idempotency-Key"
    assert error["message"].startswith(message)
    assert rows(gateway, "tasks") == 0 and rows(gateway, "idempotency_keys") == 0


def test_the_longest_key_is_accepted(gateway: Gateway) -> None:
    key = "~ " + "k" * 253
    first = create(gateway, key)
    assert first.status_code == 200, first.text
    again = create(gateway, key)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"


def test_deleting_the_video_frees_its_key(gateway: Gateway) -> None:
    first = create(gateway, "nightly-7").json()["id"]
    deleted = gateway.client.delete(f"/v1/videos/{first}", headers=gateway.headers())
    assert deleted.status_code == 200
    # The same request with the same key is a new task now, not a replay of the deleted one.
    second = create(gateway, "nightly-7")
    assert second.status_code == 200, second.text
    assert second.json()["id"] != first and "idempotent-replayed" not in second.headers
    # ...and the key is bound to the new one as any key is.
    replay = create(gateway, "nightly-7")
    assert replay.json()["id"] == second.json()["id"]
    assert replay.headers["idempotent-replayed"] == "true"
    other = create(gateway, "nightly-7", {**BODY, "prompt": "another kite"})
    assert other.status_code == 409 and "different request" in other.json()["error"]["message"]
    assert gateway.wait(second.json()["id"])["status"] == "completed"


def test_a_key_whose_create_google_refused_tries_again(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    gateway = make_gateway(config=write_config(tmp_path, emulator, ["good-key"]))
    # Unknown metadata goes to Google untouched, which refuses it while the POST waits.
    refused_body = {**BODY, "metadata": {"fps": 24}}
    for _ in range(2):
        refused = create(gateway, "batch-1", refused_body)
        assert refused.status_code == 400, refused.text
        assert "fps" in refused.json()["error"]["message"]
        assert "idempotent-replayed" not in refused.headers
    # Each retry went to Google again (no refusal is replayed), and nothing was kept.
    sent = [r for r in httpx.get(f"{emulator}/_emulator/requests").json() if "Long" in r["path"]]
    assert len(sent) == 2
    assert (
        rows(gateway, "tasks") == rows(gateway, "idempotency_keys") == rows(gateway, "usage") == 0
    )
    # The key is free: the corrected request with it is a new task, and then bound to it.
    accepted = create(gateway, "batch-1")
    assert accepted.status_code == 200, accepted.text
    assert create(gateway, "batch-1").json()["id"] == accepted.json()["id"]
    assert gateway.wait(accepted.json()["id"])["status"] == "completed"
