"""The credential pool against the emulator's real quotas and ownership, and Vertex end to end."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.support.media import assert_length, b64, make_image
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.media.probe import probe_video

FAST = "veo-3.1-fast-generate-preview"
STANDARD = "veo-3.1-generate-preview"
TOKEN = "vertex-e2e-token"


@pytest.fixture
def start_emulator(tmp_path: Path) -> Iterator[Callable[..., str]]:
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            values: dict[str, Any] = {
                "latency": (0.3, 0.3),
                "api_keys": frozenset({"k1", "k2"}),
                "vertex_tokens": frozenset({TOKEN}),
                "storage_dir": tmp_path / "emulator",
            }
            values.update(overrides)
            return stack.enter_context(serve_app(create_emulator_app(EmulatorConfig(**values))))

        yield start


def quick_polls(*models: str) -> str:
    """Config overrides so the first poll comes at once, not after the model's real minimum."""
    return "".join(f'[models."{m}"]\nmin_latency = 0.2\ntypical_latency = 0.5\n' for m in models)


def gemini_config(tmp_path: Path, url: str, keys: list[str], extra: str = "") -> Path:
    path = tmp_path / "veo.toml"
    key_list = ", ".join(f'"{key}"' for key in keys)
    path.write_text(
        f'[[upstreams]]\nname = "emu"\nkind = "gemini"\napi_keys = [{key_list}]\n'
        f'base_url = "{url}"\n{extra}{quick_polls(FAST)}'
    )
    return path


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def pinned(gateway: Gateway) -> dict[str, str]:
    """Each task's credential, as the gateway stored it."""
    return {row["id"]: row["upstream"] for row in gateway.db.rows("select id, upstream from tasks")}


def test_a_real_429_cools_the_credential_down_without_costing_an_attempt(
    make_gateway: Callable[..., Gateway], start_emulator: Callable[..., str], tmp_path: Path
) -> None:
    # The gateway believes the key can run 5 jobs; the emulator's quota says 1. The second task's
    # submission is refused with 429: the key cools down and the task waits, without counting
    # an attempt (one attempt allowed: a counted 429 would fail the task).
    url = start_emulator(latency=(1.0, 1.0), max_in_flight_per_credential=1)
    config = gemini_config(tmp_path, url, ["k1"], "max_in_flight = 5\ncool_down_seconds = 5\n")
    gateway = make_gateway(config=config, submit_attempts=1, max_in_flight=5)
    body = {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}}
    # Each create submits inline (a credential looks free), so the refusal has happened when
    # the second create answers; the 5 s cool-down is still running when we look.
    ids = [gateway.create(body).json()["id"] for _ in range(2)]
    (credential,) = gateway.client.get("/readyz").json()["credentials"]
    assert credential["cooling_down_for"] > 0
    assert gateway.get(ids[1]).json()["status"] == ""  # waiting, not failed
    for task_id in ids:
        assert gateway.wait(task_id)["status"] == "completed"
    stats = httpx.get(f"{url}/_emulator/stats").json()
    assert stats["quota_refusals"] >= 1
    assert stats["submissions"] == 2


def test_polls_and_downloads_use_the_submitting_key(
    make_gateway: Callable[..., Gateway], start_emulator: Callable[..., str], tmp_path: Path
) -> None:
    # The emulator answers 404 to a key polling or downloading another key's operation, so
    # every task completing shows each one stayed on the credential that submitted it.
    url = start_emulator()
    config = gemini_config(tmp_path, url, ["k1", "k2"], "max_in_flight = 2\n")
    gateway = make_gateway(config=config, max_in_flight=4)
    body = {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}}
    ids = [gateway.create(body).json()["id"] for _ in range(6)]
    for task_id in ids:
        final = gateway.wait(task_id)
        assert final["status"] == "completed", final
    stats = httpx.get(f"{url}/_emulator/stats").json()
    by_key = stats["submissions_by_credential"]
    # Both keys took work, and the gateway's pins say the same as the emulator's counts.
    assert set(by_key) == {fingerprint("k1"), fingerprint("k2")}
    pins = pinned(gateway)
    for key in ("k1", "k2"):
        mine = [tid for tid, cid in pins.items() if cid == f"emu#{fingerprint(key)}"]
        assert len(mine) == by_key[fingerprint(key)]
    assert stats["downloads"] == 6


@pytest.mark.parametrize("storage_uri", [None, "gs://veo-results/gateway"])
def test_vertex_upstream_end_to_end(
    make_gateway: Callable[..., Gateway],
    start_emulator: Callable[..., str],
    tmp_path: Path,
    storage_uri: str | None,
) -> None:
    # A public model name routed to Vertex's GA model id; results inline, or through GCS.
    url = start_emulator()
    storage = f'storage_uri = "{storage_uri}"\n' if storage_uri else ""
    config = tmp_path / "veo.toml"
    config.write_text(
        f'[[upstreams]]\nname = "vx"\nkind = "vertex"\nproject = "demo"\nlocation = "us-central1"\n'
        f'access_token = "{TOKEN}"\nbase_url = "{url}"\n{storage}'
        f'[[routes]]\nmodel = "{STANDARD}"\n'
        f'targets = [{{ upstream = "vx", model = "veo-3.1-generate-001" }}]\n'
        + quick_polls(STANDARD)
    )
    gateway = make_gateway(config=config)
    first, last = b64(make_image(color=(200, 0, 0))), b64(make_image(color=(0, 0, 200)))
    response = gateway.create(
        {
            "model": STANDARD,
            "prompt": "from red to blue",
            "images": [first, last],
            "metadata": {"durationSeconds": 8, "aspectRatio": "9:16"},
        }
    )
    assert response.status_code == 200, response.text
    task_id = response.json()["id"]
    final = gateway.wait(task_id)
    assert final["status"] == "completed", final
    content = gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers())
    assert content.status_code == 200
    path = tmp_path / "vertex.mp4"
    path.write_bytes(content.content)
    info = probe_video(path)
    assert (info.width, info.height) == (720, 1280)
    assert_length(info, 8)
    stats = httpx.get(f"{url}/_emulator/stats").json()
    assert stats["submissions_by_model"] == {"veo-3.1-generate-001": 1}
    sent = httpx.get(f"{url}/_emulator/requests").json()[0]
    assert sent["path"] == (
        "/v1/projects/demo/locations/us-central1/publishers/google/models/"
        "veo-3.1-generate-001:predictLongRunning"
    )
    assert sent["body"].get("parameters", {}).get("storageUri") == storage_uri
    # Inline results are never "downloaded"; GCS ones are fetched once through the JSON API.
    assert stats["downloads"] == (0 if storage_uri is None else 1)


def test_a_vertex_token_the_emulator_refuses_takes_the_credential_out(
    make_gateway: Callable[..., Gateway], start_emulator: Callable[..., str], tmp_path: Path
) -> None:
    url = start_emulator()
    config = tmp_path / "veo.toml"
    config.write_text(
        '[[upstreams]]\nname = "vx"\nkind = "vertex"\nproject = "demo"\nlocation = "us-central1"\n'
        f'access_token = "expired-token"\nbase_url = "{url}"\n'
    )
    gateway = make_gateway(config=config)
    task_id = gateway.create({"model": FAST, "prompt": "p"}).json()["id"]
    final = gateway.wait(task_id)
    assert final["status"] == "failure"
    assert "invalid authentication credentials" in final["fail_reason"]
    (credential,) = gateway.client.get("/readyz").json()["credentials"]
    assert credential["out_of_service"]


def test_the_config_file_can_run_an_emulator_with_faults(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    # A rehearsal upstream: the built-in emulator, with its faults set in the config file.
    config = tmp_path / "veo.toml"
    config.write_text(
        '[[upstreams]]\nname = "rehearsal"\nkind = "emulator"\nlatency = "0.2"\n'
        'faults = "operation.fail=1"\n' + quick_polls(FAST)
    )
    gateway = make_gateway(config=config)
    task_id = gateway.create({"model": FAST, "prompt": "p"}).json()["id"]
    final = gateway.wait(task_id)
    assert final["status"] == "failure"
    assert "internal error (emulated)" in final["fail_reason"]
    (credential,) = gateway.client.get("/readyz").json()["credentials"]
    assert credential["upstream"] == "rehearsal"
