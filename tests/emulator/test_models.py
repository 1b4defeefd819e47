"""The read-only model calls the doctor makes, answered as Google answers them: the Gemini API's
GetModel and Vertex AI's publisher model read, driven by the google-genai SDK and by plain HTTP
(bad keys and tokens, unknown and retired models)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import google.oauth2.credentials
import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.conftest import FAST, KEY, STANDARD
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app

TOKEN = "vertex-test-token"
VERTEX_STANDARD = "veo-3.1-generate-001"
RETIRED = frozenset({FAST, "veo-3.1-fast-generate-001"})


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = EmulatorConfig(
        api_keys=frozenset({KEY}),
        vertex_tokens=frozenset({TOKEN}),
        storage_dir=tmp_path_factory.mktemp("emulator"),
        retired_models=RETIRED,
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def test_the_sdk_reads_a_model_on_both_protocols(emulator_url: str) -> None:
    options = types.HttpOptions(base_url=emulator_url)
    gemini = genai.Client(api_key=KEY, http_options=options)
    assert gemini.models.get(model=STANDARD).name == f"models/{STANDARD}"
    vertex = genai.Client(
        vertexai=True,
        project="demo-project",
        location="us-central1",
        credentials=google.oauth2.credentials.Credentials(token=TOKEN),  # type: ignore[no-untyped-call]
        http_options=options,
    )
    assert vertex.models.get(model=VERTEX_STANDARD).name == (
        f"publishers/google/models/{VERTEX_STANDARD}"
    )
    with pytest.raises(errors.ClientError) as gone:
        vertex.models.get(model="veo-3.1-fast-generate-001")
    assert gone.value.code == 404


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["status"], body["message"]


def test_gemini_get_model(emulator_url: str) -> None:
    url = f"{emulator_url}/v1beta/models"
    ok = httpx.get(f"{url}/{STANDARD}", headers={"x-goog-api-key": KEY})
    assert ok.status_code == 200
    assert ok.json()["supportedGenerationMethods"] == ["predictLongRunning"]
    # The key is checked before the model is looked up, as Google does.
    bad = httpx.get(f"{url}/veo-9", headers={"x-goog-api-key": "not-a-key"})
    assert error(bad)[:2] == (400, "INVALID_ARGUMENT") and "API key not valid" in error(bad)[2]
    assert error(httpx.get(f"{url}/{STANDARD}"))[:2] == (403, "PERMISSION_DENIED")
    for model in ("veo-9", FAST):  # unknown, and retired for the drill
        code, status, message = error(httpx.get(f"{url}/{model}", headers={"x-goog-api-key": KEY}))
        assert (code, status) == (404, "NOT_FOUND") and f"models/{model}" in message
    listed = httpx.get(url, headers={"x-goog-api-key": KEY}).json()["models"]
    assert f"models/{FAST}" not in [m["name"] for m in listed]
    assert f"models/{STANDARD}" in [m["name"] for m in listed]


def test_vertex_publisher_model(emulator_url: str) -> None:
    for version in ("v1", "v1beta1"):
        url = f"{emulator_url}/{version}/publishers/google/models"
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        ok = httpx.get(f"{url}/{VERTEX_STANDARD}", headers=bearer)
        assert ok.status_code == 200 and ok.json()["launchStage"] == "GA"
        refused = httpx.get(f"{url}/{VERTEX_STANDARD}", headers={"Authorization": "Bearer x"})
        assert error(refused)[:2] == (401, "UNAUTHENTICATED")
        assert error(httpx.get(f"{url}/{VERTEX_STANDARD}"))[:2] == (401, "UNAUTHENTICATED")
        for model in ("veo-9", "veo-3.1-fast-generate-001"):
            code, status, message = error(httpx.get(f"{url}/{model}", headers=bearer))
            assert (code, status) == (404, "NOT_FOUND")
            assert message == f"Publisher Model `publishers/google/models/{model}` not found."


def test_a_retired_model_is_refused_at_submission_on_both_protocols(emulator_url: str) -> None:
    body = {"instances": [{"prompt": "p"}]}
    gemini = httpx.post(
        f"{emulator_url}/v1beta/models/{FAST}:predictLongRunning",
        headers={"x-goog-api-key": KEY},
        json=body,
    )
    assert error(gemini)[:2] == (404, "NOT_FOUND")
    vertex = httpx.post(
        f"{emulator_url}/v1/projects/p/locations/global/publishers/google/models/"
        "veo-3.1-fast-generate-001:predictLongRunning",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json=body,
    )
    assert error(vertex)[:2] == (404, "NOT_FOUND")


def test_the_retired_models_setting_reaches_the_emulator(tmp_path: Path) -> None:
    from veo_gateway.emulator.core import config_from_settings
    from veo_gateway.settings import Settings

    settings = Settings(emulator_retired_models=f" {FAST}, veo-2.0-generate-001 ")
    config = config_from_settings(settings, storage_dir=tmp_path)
    assert config.retired_models == {FAST, "veo-2.0-generate-001"}
