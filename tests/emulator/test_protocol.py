"""The emulator speaks Google's protocol: routes, keys, errors, validation and counters."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.emulator.conftest import FAST, KEY, STANDARD, Emulator, inline, png

PREDICT = f"/v1beta/models/{FAST}:predictLongRunning"
BODY: dict[str, Any] = {"instances": [{"prompt": "a fox"}], "parameters": {"durationSeconds": 4}}


def _error(response: httpx.Response, code: int, status: str) -> str:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    # Exactly Google's envelope: nothing added.
    assert set(error) == {"code", "message", "status"}
    assert error["code"] == code and error["status"] == status
    return str(error["message"])


async def test_missing_key_is_permission_denied(emulator: Emulator) -> None:
    for headers in ({}, {"x-goog-api-key": ""}):
        response = await emulator.client.post(
            PREDICT, json=BODY, headers={"x-goog-api-key": ""} | headers
        )
        message = _error(response, 403, "PERMISSION_DENIED")
        assert message == (
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API."
        )
    assert (
        await emulator.client.get("/v1beta/models/m/operations/x", headers={"x-goog-api-key": ""})
    ).status_code == 403


async def test_wrong_key_is_invalid_argument(emulator: Emulator) -> None:
    response = await emulator.client.post(PREDICT, json=BODY, headers={"x-goog-api-key": "nope"})
    assert _error(response, 400, "INVALID_ARGUMENT") == (
        "API key not valid. Please pass a valid API key."
    )


async def test_key_in_query_parameter(emulator: Emulator) -> None:
    response = await emulator.client.post(
        f"{PREDICT}?key={KEY}", json=BODY, headers={"x-goog-api-key": ""}
    )
    assert response.status_code == 200, response.text


async def test_any_key_accepted_when_none_configured(make_emulator: Any) -> None:
    async with make_emulator(api_keys=frozenset()) as emulator:
        response = await emulator.client.post(
            PREDICT, json=BODY, headers={"x-goog-api-key": "whatever"}
        )
        assert response.status_code == 200, response.text


async def test_reply_is_an_operation_name(emulator: Emulator) -> None:
    response = await emulator.client.post(PREDICT, json=BODY)
    assert response.status_code == 200
    assert re.fullmatch(
        rf"models/{re.escape(FAST)}/operations/[a-z0-9]{{12}}", response.json()["name"]
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/veo-0:predictLongRunning",
        f"/v1beta/models/{FAST}:generateContent",
    ],
)
async def test_unknown_model_or_method_is_not_found(emulator: Emulator, path: str) -> None:
    message = _error(await emulator.client.post(path, json=BODY), 404, "NOT_FOUND")
    if "veo-0" in path:
        assert message == (
            "models/veo-0 is not found for API version v1beta, or is not supported for "
            "predictLongRunning. Call ListModels to see the list of available models and their "
            "supported methods."
        )


async def test_unknown_operation_and_file_are_not_found(emulator: Emulator) -> None:
    response = await emulator.client.get(f"/v1beta/models/{FAST}/operations/zzzzzzzzzzzz")
    _error(response, 404, "NOT_FOUND")
    # An operation is only found under the model that created it.
    name = (await emulator.client.post(PREDICT, json=BODY)).json()["name"]
    other = name.replace(FAST, STANDARD)
    _error(await emulator.client.get(f"/v1beta/{other}"), 404, "NOT_FOUND")
    response = await emulator.client.get("/v1beta/files/abc123:download?alt=media")
    _error(response, 404, "NOT_FOUND")
    _error(await emulator.client.get("/v1beta/nothing/here"), 404, "NOT_FOUND")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]"])
async def test_malformed_json(emulator: Emulator, content: bytes) -> None:
    response = await emulator.client.post(
        PREDICT, content=content, headers={"content-type": "application/json"}
    )
    assert _error(response, 400, "INVALID_ARGUMENT").startswith("Invalid JSON payload received.")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "instances"),
        ({"instances": []}, "instances"),
        ({"instances": [{}]}, "prompt"),
        ({"instances": [{"prompt": 3}]}, "prompt"),
        ({"instances": [{"prompt": "x"}], "extra": 1}, 'Unknown name "extra"'),
        ({"instances": [{"prompt": "x", "video": {}}]}, "instances[0].video"),
        (
            {"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": "8"}},
            "durationSeconds",
        ),
        (
            {"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 4.5}},
            "durationSeconds",
        ),
        ({"instances": [{"prompt": "x"}], "parameters": {"sampleCount": 9}}, "sampleCount"),
        ({"instances": [{"prompt": "x", "image": {"gcsUri": "gs://b/o.png"}}]}, "gcsUri"),
        (
            {"instances": [{"prompt": "x", "image": {"bytesBase64Encoded": "!!notbase64!!"}}]},
            "Base64 decoding failed",
        ),
        (
            {"instances": [{"prompt": "x", "image": inline(b"not an image at all")}]},
            "Unable to process input image",
        ),
        ({"instances": [{"prompt": "x", "image": inline(png(), "image/gif")}]}, "mimeType"),
        ({"instances": [{"prompt": "   "}]}, "A text prompt is required for text-to-video"),
    ],
)
async def test_malformed_requests(emulator: Emulator, body: dict[str, Any], fragment: str) -> None:
    response = await emulator.client.post(PREDICT, json=body)
    assert fragment in _error(response, 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    ("model", "instance", "parameters", "message"),
    [
        (
            FAST,
            {"prompt": "x", "image": inline(png()), "lastFrame": inline(png())},
            {"durationSeconds": 6},
            "Your use case is currently not supported.",
        ),
        (
            FAST,
            {
                "prompt": "x",
                "referenceImages": [{"image": inline(png()), "referenceType": "asset"}],
            },
            {},
            "`referenceImages` isn't supported by this model.",
        ),
        (
            FAST,
            {"prompt": "x"},
            {"personGeneration": "allow_all"},
            "allow_all for personGeneration is currently not supported",
        ),
        (
            FAST,
            {"prompt": "x"},
            {"durationSeconds": 5},
            f"Unsupported durationSeconds 5 for {FAST}; supported values: 4, 6, 8.",
        ),
        (
            FAST,
            {"prompt": "x"},
            {"resolution": "1080p", "durationSeconds": 4},
            "Resolution 1080p is only supported with durationSeconds 8.",
        ),
        (
            "veo-2.0-generate-001",
            {"prompt": "x"},
            {"resolution": "1080p"},
            "Unsupported resolution '1080p' for veo-2.0-generate-001; supported values: 720p.",
        ),
        (
            FAST,
            {"prompt": "x", "lastFrame": inline(png())},
            {},
            "`lastFrame` is only supported together with `image`.",
        ),
        (
            FAST,
            {"prompt": "x"},
            {"generateAudio": False},
            "`generateAudio` isn't supported by the Gemini API.",
        ),
        (
            FAST,
            {"prompt": "x"},
            {"personGeneration": "dont_allow"},
            "dont_allow for personGeneration is currently not supported",
        ),
        (
            STANDARD,
            {
                "prompt": "x",
                "referenceImages": [{"image": inline(png()), "referenceType": "STYLE"}],
            },
            {},
            "referenceType 'style' isn't supported by this model.",
        ),
        (FAST, {"prompt": "x"}, {"seed": -1}, "seed must be a whole number from 0"),
    ],
)
async def test_validation_as_the_real_service(
    emulator: Emulator,
    model: str,
    instance: dict[str, Any],
    parameters: dict[str, Any],
    message: str,
) -> None:
    response = await emulator.submit(model, instance, parameters)
    assert message in _error(response, 400, "INVALID_ARGUMENT")


async def test_reference_type_and_base64_alphabets_accepted(emulator: Emulator) -> None:
    image = png()
    urlsafe = {
        "bytesBase64Encoded": base64.urlsafe_b64encode(image).decode().rstrip("="),
        "mimeType": "image/png",
    }
    for kind in ("ASSET", "asset", "Asset"):
        response = await emulator.submit(
            STANDARD,
            {
                "prompt": "x [emulator:fail]",
                "referenceImages": [{"image": urlsafe, "referenceType": kind}],
            },
            {"durationSeconds": 8},
        )
        assert response.status_code == 200, response.text


async def test_stats_and_request_log(emulator: Emulator) -> None:
    await emulator.client.post(PREDICT, json={"instances": []})  # refused: not counted
    names = []
    for model in (FAST, FAST, STANDARD):
        response = await emulator.submit(
            model, {"prompt": "x [emulator:fail]", "image": inline(png())}, {"seed": 7}
        )
        names.append(response.json()["name"])
    for name in names:
        await emulator.wait(name)
    stats = (await emulator.client.get("/_emulator/stats", headers={"x-goog-api-key": ""})).json()
    assert stats["submissions"] == 3
    assert stats["submissions_by_model"] == {FAST: 2, STANDARD: 1}
    assert stats["polls"] >= 3 and stats["downloads"] == 0
    assert stats["operations"] == {
        name.rsplit("/", 1)[1]: {"model": name.split("/")[1], "done": True} for name in names
    }
    log = (await emulator.client.get("/_emulator/requests")).json()
    assert log[0] == {"path": PREDICT, "body": {"instances": []}}
    assert log[1]["path"] == f"/v1beta/models/{FAST}:predictLongRunning"
    image = log[1]["body"]["instances"][0]["image"]
    sent = inline(png())["bytesBase64Encoded"]
    digest = hashlib.sha256(sent.encode()).hexdigest()[:16]
    assert image == {
        "bytesBase64Encoded": f"<{len(png())} bytes sha256:{digest}>",
        "mimeType": "image/png",
    }
    assert log[1]["body"]["parameters"] == {"seed": 7}


async def test_list_models(emulator: Emulator) -> None:
    models = (await emulator.client.get("/v1beta/models")).json()["models"]
    assert {
        "name": f"models/{FAST}",
        "displayName": FAST,
        "supportedGenerationMethods": ["predictLongRunning"],
    } in models


async def test_large_bodies_are_parsed_too(emulator: Emulator) -> None:
    # Over the size parsed on the event loop: the same rules apply, from a worker thread.
    noise = Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    assert len(buffer.getvalue()) > 512 * 1024
    image = inline(buffer.getvalue())
    response = await emulator.submit(FAST, {"prompt": "x [emulator:fail]", "image": image})
    assert response.status_code == 200, response.text
    response = await emulator.submit(
        FAST, {"prompt": "x", "image": image, "lastFrame": image}, {"durationSeconds": 4}
    )
    assert _error(response, 400, "INVALID_ARGUMENT") == "Your use case is currently not supported."
    response = await emulator.client.post(PREDICT, content=b"{" + b" " * 400_000)
    assert _error(response, 400, "INVALID_ARGUMENT").startswith("Invalid JSON payload received.")
