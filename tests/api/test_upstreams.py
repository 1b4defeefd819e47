"""Routes, the credential pool and /v1/models through the real app and emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import KEY_B, Gateway
from tests.support.servers import serve_app
from veo_gateway.config import UpstreamConfig
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.providers.registry import credential_id

FAST = "veo-3.1-fast-generate-preview"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.3, 0.3), api_keys=frozenset({"good-key"}), storage_dir=tmp_path / "emulator"
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def write_config(tmp_path: Path, emulator: str, keys: list[str], extra: str = "") -> Path:
    """A config file with one Gemini upstream, "emu", on the test's emulator."""
    path = tmp_path / "veo.toml"
    key_list = ", ".join(f'"{key}"' for key in keys)
    path.write_text(
        f'[[upstreams]]\nname = "emu"\nkind = "gemini"\napi_keys = [{key_list}]\n'
        f'base_url = "{emulator}"\n{extra}'
    )
    return path


def test_models_lists_capabilities(gateway: Gateway) -> None:
    assert gateway.client.get("/v1/models").status_code == 401
    body = gateway.client.get("/v1/models", headers=gateway.headers()).json()
    assert body["object"] == "list"
    models = {m["id"]: m["capabilities"] for m in body["data"]}
    # Vertex's GA ids are not served by the Gemini API; Gemini Omni's two are.
    assert len(models) == 8
    assert "veo-3.1-generate-001" not in models
    standard = models["veo-3.1-generate-preview"]
    assert standard["modes"] == ["text", "image", "interpolation", "reference"]
    assert standard["durations"] == [4, 6, 8] and standard["max_reference_images"] == 3
    assert standard["resolutions_need_long_duration"] == ["1080p", "4k"]
    assert models[FAST]["max_reference_images"] == 0
    assert models["veo-2.0-generate-001"]["audio"] is False


def test_config_routes_and_overrides(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    routes = f'[[routes]]\nmodel = "{FAST}"\ntargets = [{{ upstream = "emu" }}]\n'
    overrides = f'[models."{FAST}"]\ndurations = [8]\n'
    config = write_config(tmp_path, emulator, ["good-key"], routes + overrides)
    gateway = make_gateway(config=config)
    models = gateway.client.get("/v1/models", headers=gateway.headers()).json()["data"]
    assert [m["id"] for m in models] == [FAST]
    assert models[0]["capabilities"]["durations"] == [8]
    refused = gateway.create({"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        f"durationSeconds must be one of 8 for {FAST}; got 4"
    )
    unknown = gateway.create({"model": "veo-3.1-generate-preview", "prompt": "p"})
    assert unknown.status_code == 400 and FAST in unknown.json()["error"]["message"]
    task_id = gateway.create({"model": FAST, "prompt": "routed"}).json()["id"]
    assert gateway.wait(task_id)["status"] == "completed"


def test_a_rejected_key_is_taken_out_and_tasks_use_the_other(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, emulator, ["revoked-key", "good-key"])
    gateway = make_gateway(config=config)
    ids = [
        gateway.create(
            {"model": FAST, "prompt": f"t{i}", "metadata": {"durationSeconds": 4}}
        ).json()["id"]
        for i in range(4)
    ]
    for task_id in ids:
        assert gateway.wait(task_id)["status"] == "completed"
    # Every task is pinned to the key that worked; the refused key submitted nothing.
    upstream = UpstreamConfig(name="emu", kind="gemini")
    good = credential_id(upstream, "good-key")
    pinned = {row["upstream"] for row in gateway.db.rows("select upstream from tasks")}
    assert pinned == {good}
    stats = httpx.get(f"{emulator}/_emulator/stats").json()
    assert stats["submissions"] == 4


def test_no_usable_credential_fails_tasks_with_the_reason(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, emulator, ["revoked-key"])
    gateway = make_gateway(config=config)
    task_id = gateway.create({"model": FAST, "prompt": "p"}).json()["id"]
    final = gateway.wait(task_id)
    assert final["status"] == "failure"
    assert "API key not valid" in final["fail_reason"]


def test_readiness_reports_credentials(
    make_gateway: Callable[..., Gateway], emulator: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, emulator, ["revoked-key"])
    gateway = make_gateway(config=config)
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    task_id = gateway.create({"model": FAST, "prompt": "p"}).json()["id"]
    gateway.wait(task_id)
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 503
    (credential,) = ready.json()["credentials"]
    assert "API key not valid" in credential["out_of_service"]
    assert "revoked-key" not in ready.text


def test_one_clients_burst_does_not_starve_another(make_gateway: Callable[..., Gateway]) -> None:
    # One slot upstream: alice queues six tasks, then bob one. Bob's goes second, not seventh.
    gateway = make_gateway(emulator_latency="0.5", max_in_flight=1, poll_interval=0.1)
    body = {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 4}}
    alice = [gateway.create(body).json()["id"] for _ in range(6)]
    bob = gateway.create(body, key=KEY_B).json()["id"]
    finished = {task_id: gateway.wait(task_id)["completed_at"] for task_id in alice}
    bob_done = gateway.wait(bob, key=KEY_B)
    assert bob_done["status"] == "completed"
    order = [row["id"] for row in gateway.db.rows("select id from tasks order by submitted_at")]
    assert order.index(bob) <= 2, order
    assert len(finished) == 6
