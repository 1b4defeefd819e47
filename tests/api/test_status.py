"""The status poll's reply, byte for byte what a JSONResponse of the same object would be."""

from __future__ import annotations

import json
from collections.abc import Callable

import openai

from tests.conftest import KEY_A, KEY_B, Gateway

FAST = "veo-3.1-fast-generate-preview"


def test_a_poll_is_compact_utf8_json_with_its_headers(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(emulator_latency="4")
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0)
    created = sdk.videos.create(model=FAST, prompt="un café ☕ « sous la pluie »", seconds="4")

    poll = gateway.get(created.id)
    assert poll.status_code == 200
    body = poll.json()
    assert body["prompt"] == "un café ☕ « sous la pluie »"
    # Starlette's JSONResponse encoding: no spaces, non-ASCII as UTF-8, not escaped.
    expected = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert poll.content == expected
    assert poll.headers["content-type"] == "application/json"
    assert poll.headers["content-length"] == str(len(expected))
    assert 1000 <= int(poll.headers["openai-poll-after-ms"]) <= 10000
    assert len(poll.headers["x-request-id"]) == 24

    # Another key's poll of the same task is the error envelope, as from every other route.
    hidden = gateway.get(created.id, key=KEY_B)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["status"] == "NOT_FOUND"
    assert hidden.headers["content-type"] == "application/json"
    assert "openai-poll-after-ms" not in hidden.headers
