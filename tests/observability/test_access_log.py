"""Request ids in and out, and one structured access-log line per request."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY_A, Gateway
from tests.support.processes import free_port, start, stop, wait_http
from veo_gateway.observability.logs import JsonFormatter, LineHandler, formatter

FAST = "veo-3.1-fast-generate-preview"
GENERATED = re.compile(r"[0-9a-f]{24}")


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access log as the JSON format writes it, one object per line."""
    text = JsonFormatter()
    return [
        json.loads(text.format(record))
        for record in caplog.records
        if record.name == "veo_gateway.access"
    ]


def wait_for(caplog: pytest.LogCaptureFixture, *request_ids: str) -> list[dict[str, Any]]:
    """The access lines, once those of `request_ids` are there (each is written after its reply)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = access_lines(caplog)
        if set(request_ids) <= {line["request_id"] for line in lines}:
            return lines
        time.sleep(0.01)
    raise AssertionError(f"no access line for some of {request_ids}")


def test_a_sane_request_id_is_echoed(gateway: Gateway) -> None:
    for given in ("abc-123_X.y", "a" * 128):
        response = gateway.client.get("/healthz", headers={"X-Request-ID": given})
        assert response.headers["x-request-id"] == given


def test_a_missing_or_odd_request_id_is_replaced(gateway: Gateway) -> None:
    seen = set()
    for headers in ({}, {"X-Request-ID": "has space"}, {"X-Request-ID": "a" * 129}):
        request_id = gateway.client.get("/healthz", headers=headers).headers["x-request-id"]
        assert GENERATED.fullmatch(request_id)
        seen.add(request_id)
    assert len(seen) == 3


def test_errors_carry_the_request_id_too(gateway: Gateway) -> None:
    headers = {"X-Request-ID": "err-1"}
    assert gateway.client.get("/v1/videos/x", headers=headers).headers["x-request-id"] == "err-1"
    assert gateway.client.get("/nowhere", headers=headers).headers["x-request-id"] == "err-1"
    refused = gateway.client.post("/v1/videos", json={}, headers={**gateway.headers(), **headers})
    assert refused.status_code == 400
    assert refused.headers["x-request-id"] == "err-1"


def test_one_json_line_per_request(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="veo_gateway.access")
    created = gateway.client.post(
        "/v1/videos",
        json={"model": FAST, "prompt": "logged"},
        headers={**gateway.headers(), "X-Request-ID": "create-1"},
    )
    task_id = created.json()["id"]
    gateway.client.get(
        f"/v1/videos/{task_id}", headers={**gateway.headers(), "X-Request-ID": "poll-1"}
    )
    gateway.client.get("/v1/videos/nope", headers={"X-Request-ID": "anonymous-1"})
    gateway.client.get("/missing", headers={"X-Request-ID": "unrouted-1"})

    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in wait_for(caplog, "create-1", "poll-1", "anonymous-1", "unrouted-1"):
        by_id.setdefault(line["request_id"], []).append(line)
    for request_id in ("create-1", "poll-1", "anonymous-1", "unrouted-1"):
        assert len(by_id.get(request_id, [])) == 1, request_id
    env_name = f"env:{hashlib.sha256(KEY_A.encode()).hexdigest()[:12]}"

    (create,) = by_id["create-1"]
    assert create["logger"] == "veo_gateway.access" and create["level"] == "info"
    assert create["method"] == "POST" and create["route"] == "/v1/videos"
    assert create["status"] == 200 and create["task_id"] == task_id
    assert create["key"] == env_name
    assert isinstance(create["duration_ms"], float) and create["duration_ms"] >= 0
    assert create["ts"].endswith("Z")

    (poll,) = by_id["poll-1"]
    assert (poll["method"], poll["route"], poll["status"]) == ("GET", "/v1/videos/{task_id}", 200)
    assert poll["task_id"] == task_id and poll["key"] == env_name

    (anonymous,) = by_id["anonymous-1"]
    assert (anonymous["status"], anonymous["key"]) == (401, None)
    (unrouted,) = by_id["unrouted-1"]
    assert (unrouted["route"], unrouted["status"], unrouted["task_id"]) == ("unmatched", 404, None)


def test_a_stored_key_is_logged_by_its_name(
    make_gateway: Callable[..., Gateway], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {**os.environ, "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data")}
    made = subprocess.run(
        [sys.executable, "-m", "veo_gateway", "keys", "create", "--name", "dashboard"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    secret = made.stdout.strip().splitlines()[-1]
    gateway = make_gateway()
    caplog.set_level(logging.INFO, logger="veo_gateway.access")
    gateway.client.get("/v1/videos", headers={**gateway.headers(secret), "X-Request-ID": "list-1"})
    (line,) = [line for line in wait_for(caplog, "list-1") if line["request_id"] == "list-1"]
    assert line["key"] == "dashboard"
    assert secret not in caplog.text


def test_the_text_format_keeps_the_fields(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="veo_gateway.access")
    gateway.client.get("/healthz", headers={"X-Request-ID": "text-1"})
    wait_for(caplog, "text-1")
    (record,) = [
        r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == "text-1"
    ]
    line = formatter("text").format(record)
    assert "veo_gateway.access: GET /healthz 200" in line
    assert "request_id=text-1" in line and "route=/healthz" in line


def test_errors_only_access_log(
    make_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway(access_log="errors")
    caplog.set_level(logging.INFO, logger="veo_gateway.access")
    gateway.client.get("/healthz", headers={"X-Request-ID": "fine-1"})
    gateway.client.get("/v1/videos/x", headers={"X-Request-ID": "refused-1"})
    lines = wait_for(caplog, "refused-1")
    assert [line["status"] for line in lines] == [401]


def test_an_odd_task_id_in_a_path_is_not_logged(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="veo_gateway.access")
    odd = "Bearer%20abc%0Aforged line"
    gateway.client.get(f"/v1/videos/{odd}/content", headers={"X-Request-ID": "odd-1"})
    (line,) = [line for line in wait_for(caplog, "odd-1") if line["request_id"] == "odd-1"]
    assert line["route"] == "/v1/videos/{task_id}/content" and line["task_id"] is None


def test_alone_with_the_gateways_handler_a_line_makes_no_record(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `veo-gateway serve` sets up: its own handler on the root logger and nothing else.
    # Then each access line is written directly, the same text with no LogRecord made.
    stream = io.StringIO()
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [LineHandler(stream, "json")])
    root_level = root.level
    root.setLevel(logging.INFO)
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if record.name == "veo_gateway.access":
            made.append(record)
        return record

    logging.setLogRecordFactory(counting)
    try:
        created = gateway.create({"model": FAST, "prompt": "direct"})
        task_id = created.json()["id"]
        gateway.client.get(
            f"/v1/videos/{task_id}", headers={**gateway.headers(), "X-Request-ID": "direct-1"}
        )
        deadline = time.monotonic() + 10
        while '"direct-1"' not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logging.setLogRecordFactory(factory)
        root.setLevel(root_level)
    assert made == []
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (poll,) = [line for line in lines if line.get("request_id") == "direct-1"]
    env_name = f"env:{hashlib.sha256(KEY_A.encode()).hexdigest()[:12]}"
    assert list(poll) == [
        *("ts", "level", "logger", "message", "request_id", "method", "route", "status"),
        *("duration_ms", "key", "task_id"),
    ]
    assert poll["message"] == "GET /v1/videos/{task_id} 200"
    assert (poll["key"], poll["task_id"], poll["status"]) == (env_name, task_id, 200)


def test_serve_writes_its_access_lines_as_it_goes_and_at_exit(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "VEO_GATEWAY_API_KEYS": KEY_A,
        "VEO_GATEWAY_PORT": str(port),
        "VEO_GATEWAY_EMULATOR_LATENCY": "0.2",
    }
    process = start(["serve"], env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", process, log)
        auth = {"Authorization": f"Bearer {KEY_A}"}
        with httpx.Client(base_url=url, timeout=30) as client:
            created = client.post(
                "/v1/videos",
                json={"model": FAST, "prompt": "served"},
                headers={**auth, "X-Request-ID": "served-create"},
            )
            task_id = created.json()["id"]
            client.get(f"/v1/videos/{task_id}", headers={**auth, "X-Request-ID": "served-poll"})
            # Written while the gateway runs, with nothing else to push them out.
            deadline = time.monotonic() + 10
            while '"served-poll"' not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert '"served-poll"' in log.read_text()
            client.get("/v1/videos/nope", headers={"X-Request-ID": "served-last"})
    finally:
        stop(process)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    by_id = {line["request_id"]: line for line in lines if line["logger"] == "veo_gateway.access"}
    assert by_id["served-create"]["task_id"] == task_id
    assert by_id["served-poll"]["route"] == "/v1/videos/{task_id}"
    assert by_id["served-poll"]["key"] == f"env:{hashlib.sha256(KEY_A.encode()).hexdigest()[:12]}"
    # The last line was still waiting when SIGTERM came: it is written on the way out.
    assert (by_id["served-last"]["status"], by_id["served-last"]["key"]) == (401, None)
