"""No secret reaches a log: client keys, upstream keys, tokens, image bytes."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY_A, gateway_settings
from tests.support.media import b64, make_image
from tests.support.servers import serve_app
from veo_gateway.app import create_app
from veo_gateway.observability.logs import JsonFormatter, RedactSecrets, TextFormatter, redact

FAST = "veo-3.1-fast-generate-preview"


def test_a_task_with_an_image_logs_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, libraries' debug lines included
    image = b64(make_image(size=(640, 360)))
    admin_token, metrics_token = "admin-" + "a" * 30, "metrics-" + "m" * 30
    app = create_app(
        gateway_settings(tmp_path / "data", admin_token=admin_token, metrics_token=metrics_token)
    )
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {KEY_A}"}
        body = {"model": FAST, "prompt": "a secretive cat", "images": [image]}
        created = client.post("/v1/videos", json=body, headers=headers)
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        status: dict[str, Any] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = client.get(f"/v1/videos/{task_id}", headers=headers).json()
            if status["status"] in ("completed", "failure"):
                break
            time.sleep(0.1)
        assert status["status"] == "completed", status
        client.get(f"/v1/videos/{task_id}/content", headers=headers)
        # A key made through the admin API, used once; the metrics scraped with their token.
        admin = {"Authorization": f"Bearer {admin_token}"}
        made = client.post("/admin/keys", json={"name": "logged?"}, headers=admin)
        secret = made.json()["secret"]
        used = client.get("/v1/usage", headers={"Authorization": f"Bearer {secret}"})
        assert used.status_code == 200
        metrics = {"Authorization": f"Bearer {metrics_token}"}
        assert client.get("/metrics", headers=metrics).status_code == 200
        # The embedded emulator's key is made up at start-up: read it from the running app.
        (credential,) = app.state.services.pool.credentials()
        # The credential's Veo adapter (beside Gemini Omni's, behind the protocol switch).
        upstream_key = vars(credential.provider.veo)["_key"]
    assert len(upstream_key) >= 16

    texts = [caplog.text]
    for record in caplog.records:
        texts.append(JsonFormatter().format(record))
        texts.append(TextFormatter().format(record))
    logged = "\n".join(texts)
    assert "veo_gateway.access" in logged  # the requests were logged, and the task ran
    assert KEY_A not in logged
    assert upstream_key not in logged
    for token in (admin_token, metrics_token, secret):
        assert token not in logged
    for start in range(0, len(image) - 40, 997):  # no piece of the image's base64
        assert image[start : start + 40] not in logged


def test_redact_hides_what_looks_like_a_secret() -> None:
    upstream = "AIza" + "x" * 35
    blob = "iVBORw0KGgo" + "A" * 300 + "=="
    text = redact(
        f"headers: Authorization: Bearer vgw_abc.def and ('x-goog-api-key', 'k-123') "
        f"url https://h/v1?key={upstream}&alt=json token=t0k and {upstream} image {blob}"
    )
    for secret in ("vgw_abc.def", "k-123", upstream, "t0k", blob[:100]):
        assert secret not in text
    assert "Bearer [redacted]" in text and "key=[redacted]" in text
    assert "[base64: 313 chars]" in text
    assert (
        redact("task video_123 completed (1024 bytes)") == "task video_123 completed (1024 bytes)"
    )


def test_the_filter_cleans_messages_arguments_and_tracebacks() -> None:
    try:
        raise RuntimeError("upstream said no to Bearer abc.def")
    except RuntimeError:
        record = logging.LogRecord(
            "veo_gateway", logging.ERROR, __file__, 1, "call with %s", ("key=s3cr3t",), None
        )
        record.exc_info = sys.exc_info()
    assert RedactSecrets().filter(record)
    line = JsonFormatter().format(record)
    assert "s3cr3t" not in line and "abc.def" not in line
    assert "key=[redacted]" in line and "Bearer [redacted]" in line
