"""Choosing the upstreams: the embedded emulator is polled on the gateway's own schedule; the
environment is read with the google-genai SDK's names and precedence."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from veo_gateway.config import ConfigError
from veo_gateway.domain.catalog import Catalog
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.vertex import vertex_base_url
from veo_gateway.settings import Settings
from veo_gateway.store.credentials import CredentialStore
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import TaskStore
from veo_gateway.upstreams import open_upstreams, plan_upstreams

FAST = "veo-3.1-fast-generate-preview"


@pytest.fixture
async def credentials(tmp_path: Path) -> AsyncIterator[CredentialStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    await migrate(engine)
    yield CredentialStore(TaskStore(engine))
    await engine.dispose()


async def test_the_embedded_emulators_latency_is_not_handed_to_the_schedule(
    tmp_path: Path, credentials: CredentialStore
) -> None:
    settings = Settings(data_dir=tmp_path, gemini_api_key=None, emulator_latency="0.2-0.4")
    row = Catalog()[FAST]
    async with (
        UpstreamHttp(timeout=30) as client,
        open_upstreams(settings, client, credentials) as upstreams,
    ):
        assert upstreams.description.startswith("built-in emulator")
        # The catalog's latencies, as against Google: not the emulator's 0.2 to 0.4 s.
        assert upstreams.latency.first_poll_after(FAST) == row.min_latency
        assert upstreams.latency.expected(FAST) == row.typical_latency


async def test_a_configured_first_poll_is_used_for_every_upstream(
    tmp_path: Path, credentials: CredentialStore
) -> None:
    settings = Settings(data_dir=tmp_path, gemini_api_key=None, first_poll_after=0.3)
    async with (
        UpstreamHttp(timeout=30) as client,
        open_upstreams(settings, client, credentials) as upstreams,
    ):
        assert upstreams.latency.first_poll_after(FAST) == 0.3


# -- what the environment asks for, read as the google-genai SDK reads it -----------------------

GOOGLE_VARIABLES = (
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "VEO_GATEWAY_GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "VEO_GATEWAY_GEMINI_BASE_URL",
    "VEO_GATEWAY_VERTEX_ACCESS_TOKEN",
    "VEO_GATEWAY_CONFIG",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The process environment, with none of Google's variables set to begin with."""
    for name in GOOGLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VEO_GATEWAY_DATA_DIR", str(tmp_path))
    return monkeypatch


def test_vertex_from_the_environment_serves_the_spec_names_by_the_ga_ids(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("GOOGLE_GENAI_USE_VERTEXAI", "True")
    env.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    env.setenv("VEO_GATEWAY_VERTEX_ACCESS_TOKEN", "static-token")
    plan = plan_upstreams(Settings())
    assert not plan.embedded and plan.notes == ()
    (upstream,) = plan.config.upstreams
    assert (upstream.kind, upstream.project, upstream.location) == (
        "vertex",
        "my-project",
        "global",
    )
    assert upstream.access_token == "static-token" and upstream.base_url is None
    routes = {
        public: [(t.upstream, t.model) for t in ts] for public, ts in plan.config.routes.items()
    }
    assert routes == {
        "veo-3.1-generate-preview": [("vertex", "veo-3.1-generate-001")],
        "veo-3.1-generate-001": [("vertex", "veo-3.1-generate-001")],
        "veo-3.1-fast-generate-preview": [("vertex", "veo-3.1-fast-generate-001")],
        "veo-3.1-fast-generate-001": [("vertex", "veo-3.1-fast-generate-001")],
        "gemini-omni-1.1-flash": [("vertex", "gemini-omni-1.1-flash")],
        "gemini-omni-1.2-flash": [("vertex", "gemini-omni-1.2-flash")],
    }
    assert {row.name for row in plan.config.models} == set(routes)
    assert "https://aiplatform.googleapis.com" in plan.description  # global, as the SDK
    env.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    env.setenv("GOOGLE_VERTEX_BASE_URL", "http://127.0.0.1:9/")
    (upstream,) = plan_upstreams(Settings()).config.upstreams
    assert (upstream.location, upstream.base_url) == ("europe-west4", "http://127.0.0.1:9/")


def test_vertex_hosts_by_location() -> None:
    assert vertex_base_url("global") == "https://aiplatform.googleapis.com"
    assert vertex_base_url("us") == "https://aiplatform.us.rep.googleapis.com"
    assert vertex_base_url("eu") == "https://aiplatform.eu.rep.googleapis.com"
    assert vertex_base_url("us-central1") == "https://us-central1-aiplatform.googleapis.com"
    assert vertex_base_url("us-central1", "http://h:1/") == "http://h:1"


@pytest.mark.parametrize(
    ("vertexai", "enterprise", "vertex", "warned"),
    [
        ("true", None, True, False),
        ("1", None, True, False),
        ("TRUE", None, True, False),
        ("yes", None, False, False),  # the SDK takes only true and 1
        (None, "true", True, False),
        ("true", "false", False, True),  # the enterprise variable wins, with the SDK's warning
        ("false", "1", True, True),
        ("true", "true", True, False),
    ],
)
def test_the_vertex_switch_is_read_as_the_sdk_reads_it(
    env: pytest.MonkeyPatch,
    vertexai: str | None,
    enterprise: str | None,
    vertex: bool,
    warned: bool,
) -> None:
    env.setenv("GOOGLE_CLOUD_PROJECT", "p")
    env.setenv("VEO_GATEWAY_VERTEX_ACCESS_TOKEN", "t")
    for name, value in (
        ("GOOGLE_GENAI_USE_VERTEXAI", vertexai),
        ("GOOGLE_GENAI_USE_ENTERPRISE", enterprise),
    ):
        if value is not None:
            env.setenv(name, value)
    plan = plan_upstreams(Settings())
    assert (plan.config.upstreams[0].kind == "vertex") is vertex
    assert plan.embedded is not vertex
    conflict = [note for note in plan.notes if "GOOGLE_GENAI_USE_ENTERPRISE will be used" in note]
    assert bool(conflict) is warned


def test_google_api_key_wins_over_gemini_api_key_with_the_sdks_warning(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("GEMINI_API_KEY", "gemini-key")
    plan = plan_upstreams(Settings())
    assert plan.config.upstreams[0].api_keys == ("gemini-key",) and plan.notes == ()
    env.setenv("GOOGLE_API_KEY", "google-key-1, google-key-2")
    plan = plan_upstreams(Settings())
    assert plan.config.upstreams[0].api_keys == ("google-key-1", "google-key-2")
    assert plan.notes == ("Both GOOGLE_API_KEY and GEMINI_API_KEY are set. Using GOOGLE_API_KEY.",)
    assert "from GOOGLE_API_KEY" in plan.description
    env.delenv("GEMINI_API_KEY")
    assert plan_upstreams(Settings()).config.upstreams[0].api_keys[0] == "google-key-1"


def test_vertex_takes_precedence_over_an_api_key_as_in_the_sdk(env: pytest.MonkeyPatch) -> None:
    env.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    env.setenv("GOOGLE_API_KEY", "k")
    with pytest.raises(ConfigError, match="express mode"):
        plan_upstreams(Settings())  # an API key and no project: the SDK's express mode
    env.setenv("GOOGLE_CLOUD_PROJECT", "p")
    env.setenv("VEO_GATEWAY_VERTEX_ACCESS_TOKEN", "t")
    plan = plan_upstreams(Settings())
    assert plan.config.upstreams[0].kind == "vertex"
    assert any("will take precedence over the API key" in note for note in plan.notes)


def test_vertex_needs_a_project_when_it_cannot_ask_adc(env: pytest.MonkeyPatch) -> None:
    env.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    env.setenv("VEO_GATEWAY_VERTEX_ACCESS_TOKEN", "t")
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        plan_upstreams(Settings())


def test_vertex_takes_the_project_of_the_application_default_credentials(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A service-account key file names its project; google-auth reads it from
    # GOOGLE_APPLICATION_CREDENTIALS, as on an operator's machine (no call is made).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    adc = tmp_path / "sa.json"
    adc.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "adc-project",
                "private_key_id": "1",
                "private_key": pem,
                "client_email": "veo@adc-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    env.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    plan = plan_upstreams(Settings())
    assert plan.config.upstreams[0].project == "adc-project"
    assert plan.config.upstreams[0].access_token is None  # tokens come from the same ADC
    assert "Application Default Credentials" in plan.description


async def test_the_sdks_warnings_go_to_the_operators_log(
    env: pytest.MonkeyPatch,
    tmp_path: Path,
    credentials: CredentialStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env.setenv("GEMINI_API_KEY", "a")
    env.setenv("GOOGLE_API_KEY", "b")
    async with (
        UpstreamHttp(timeout=30) as client,
        open_upstreams(Settings(), client, credentials) as upstreams,
    ):
        assert "from GOOGLE_API_KEY" in upstreams.description
    warned = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "veo_gateway"]
    assert [r.getMessage() for r in warned] == [
        "Both GOOGLE_API_KEY and GEMINI_API_KEY are set. Using GOOGLE_API_KEY."
    ]
