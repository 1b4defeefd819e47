"""Google's own variables through the real app and the real emulator: Vertex AI from the
environment serving the spec's names by the GA ids, GOOGLE_API_KEY's precedence, and a model id
Google no longer serves (404 at submission) named with the routes that could serve instead."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app

FAST = "veo-3.1-fast-generate-preview"
STANDARD = "veo-3.1-generate-preview"
TOKEN = "vertex-test-token"
PREDICT = "/v1/projects/proj-1/locations/global/publishers/google/models/{}:predictLongRunning"


def start_emulator(tmp_path: Path, retired: frozenset[str] = frozenset()) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.2, 0.2),
        api_keys=frozenset({"good-key"}),
        vertex_tokens=frozenset({TOKEN}),
        storage_dir=tmp_path / "emulator",
        retired_models=retired,
        render="once",
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    yield from start_emulator(tmp_path)


@pytest.fixture
def drifted(tmp_path: Path) -> Iterator[str]:
    """An emulator on which Google has shut the fast preview id down."""
    yield from start_emulator(tmp_path, frozenset({FAST}))


def vertex_env(emulator: str, token: str = TOKEN) -> dict[str, str]:
    return {
        "google_genai_use_vertexai": "true",
        "google_cloud_project": "proj-1",
        "google_vertex_base_url": emulator,
        "vertex_access_token": token,
    }


def submitted_paths(emulator: str) -> list[str]:
    return [entry["path"] for entry in httpx.get(f"{emulator}/_emulator/requests").json()]


def test_vertex_from_the_environment_serves_a_task_by_the_spec_names(
    make_gateway: Callable[..., Gateway], emulator: str
) -> None:
    gateway = make_gateway(**vertex_env(emulator))
    models = gateway.client.get("/v1/models", headers=gateway.headers()).json()["data"]
    assert sorted(m["id"] for m in models) == sorted(
        [
            STANDARD,
            FAST,
            "veo-3.1-generate-001",
            "veo-3.1-fast-generate-001",
            "gemini-omni-1.1-flash",
            "gemini-omni-1.2-flash",
        ]
    )
    created = gateway.create({"model": STANDARD, "prompt": "a lighthouse at dusk"})
    assert created.status_code == 200, created.text
    done = gateway.wait(created.json()["id"])
    assert done["status"] == "completed", done
    content = gateway.client.get(f"/v1/videos/{done['id']}/content", headers=gateway.headers())
    assert content.status_code == 200 and content.content[4:8] == b"ftyp"
    # The GA id under its own name too, and the fast tier by its GA id.
    for model in ("veo-3.1-generate-001", FAST):
        task = gateway.create({"model": model, "prompt": "p"}).json()["id"]
        assert gateway.wait(task)["status"] == "completed"
    assert submitted_paths(emulator) == [
        PREDICT.format("veo-3.1-generate-001"),
        PREDICT.format("veo-3.1-generate-001"),
        PREDICT.format("veo-3.1-fast-generate-001"),
    ]


def test_a_refused_vertex_token_is_not_served(
    make_gateway: Callable[..., Gateway], emulator: str
) -> None:
    gateway = make_gateway(**vertex_env(emulator, token="stale-token"))
    task = gateway.create({"model": FAST, "prompt": "p"}).json()["id"]
    failed = gateway.wait(task)
    assert failed["status"] == "failure"
    assert "UNAUTHENTICATED" in failed["fail_reason"] or "401" in failed["fail_reason"]


def test_google_api_key_wins_over_gemini_api_key(
    make_gateway: Callable[..., Gateway], emulator: str
) -> None:
    # The emulator knows only good-key: a task completes only if GOOGLE_API_KEY's is used.
    gateway = make_gateway(
        google_api_key="good-key", gemini_api_key="bad-key", gemini_base_url=emulator
    )
    task = gateway.create({"model": FAST, "prompt": "p"}).json()["id"]
    assert gateway.wait(task)["status"] == "completed"


def test_a_gone_model_id_refuses_the_create_with_what_could_serve_instead(
    make_gateway: Callable[..., Gateway], drifted: str, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway(gemini_api_key="good-key", gemini_base_url=drifted)
    with caplog.at_level(logging.ERROR, logger="veo_gateway"):
        refused = gateway.create({"model": FAST, "prompt": "p"})
    assert refused.status_code == 404, refused.text
    message = refused.json()["error"]["message"]
    assert message.startswith(
        f"upstream model id {FAST} is gone at upstream 'gemini' (Google answered 404: models/{FAST}"
    )
    assert f"No other route serves {FAST} here" in message
    assert "Vertex AI serves it as veo-3.1-fast-generate-001" in message
    # Nothing is kept, and the operator's log says the same.
    listed = gateway.client.get("/v1/videos", headers=gateway.headers()).json()["data"]
    assert listed == []
    assert any(message in record.getMessage() for record in caplog.records)
    # The other models are still served.
    task = gateway.create({"model": STANDARD, "prompt": "p"}).json()["id"]
    assert gateway.wait(task)["status"] == "completed"


def test_a_gone_model_id_fails_a_queued_task_naming_the_other_routes(
    make_gateway: Callable[..., Gateway], drifted: str, tmp_path: Path
) -> None:
    config = tmp_path / "veo.toml"
    config.write_text(
        f'[[upstreams]]\nname = "gemini"\nkind = "gemini"\napi_keys = ["good-key"]\n'
        f'base_url = "{drifted}"\n\n'
        f'[[upstreams]]\nname = "vertex"\nkind = "vertex"\nproject = "proj-1"\n'
        f'location = "global"\nbase_url = "{drifted}"\naccess_token = "{TOKEN}"\n\n'
        f'[[routes]]\nmodel = "{FAST}"\ntargets = [\n  {{ upstream = "gemini" }},\n'
        f'  {{ upstream = "vertex", model = "veo-3.1-fast-generate-001" }},\n]\n'
    )
    # No inline wait: the worker submits, and the task fails with the message.
    gateway = make_gateway(config=config, inline_submit_timeout=0)
    created = gateway.create({"model": FAST, "prompt": "p"})
    assert created.status_code == 200, created.text
    failed = gateway.wait(created.json()["id"])
    assert failed["status"] == "failure"
    reason = failed["fail_reason"]
    assert reason.startswith(f"upstream model id {FAST} is gone at upstream 'gemini'")
    assert (
        f"Other routes that could serve {FAST}: vertex -> veo-3.1-fast-generate-001; remove "
        f"gemini -> {FAST} from the route." in reason
    )
