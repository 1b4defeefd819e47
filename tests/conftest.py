"""Fixtures: a real gateway (uvicorn on loopback, real SQLite file, the built-in emulator)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import serve_app
from veo_gateway.app import create_app
from veo_gateway.settings import Settings

KEY_A = "test-key-alice"
KEY_B = "test-key-bob"


@dataclass
class Gateway:
    """A running gateway and a client for it."""

    url: str
    settings: Settings
    client: httpx.Client

    def headers(self, key: str = KEY_A) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def create(self, body: dict[str, Any], key: str = KEY_A) -> httpx.Response:
        return self.client.post("/v1/videos", json=body, headers=self.headers(key))

    def get(self, task_id: str, key: str = KEY_A) -> httpx.Response:
        return self.client.get(f"/v1/videos/{task_id}", headers=self.headers(key))

    def wait(self, task_id: str, timeout: float = 90.0, key: str = KEY_A) -> dict[str, Any]:
        """Poll until the task is completed or failed; returns its last status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body: dict[str, Any] = self.get(task_id, key).json()
            if body["status"] in ("completed", "failure"):
                return body
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} did not finish in {timeout} s")


def gateway_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "api_keys": f"{KEY_A},{KEY_B}",
        "emulator_latency": "0.2",
        "poll_interval": 0.2,
        # The catalog's first poll (15 s and more) is for Google; the emulator here takes 0.2 s.
        "first_poll_after": 0.2,
        "log_level": "warning",
        "gemini_api_key": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start gateways with settings overrides; each one stops when the test ends."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> Gateway:
            settings = gateway_settings(tmp_path / "data", **overrides)
            url = stack.enter_context(serve_app(create_app(settings)))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=30))
            return Gateway(url=url, settings=settings, client=client)

        yield start


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway on the built-in emulator with two client keys, KEY_A and KEY_B."""
    return make_gateway()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgresql` run only in the PostgreSQL run (VEO_GATEWAY_TEST_DB=postgresql)."""
    if os.environ.get("VEO_GATEWAY_TEST_DB", "sqlite") == "postgresql":
        return
    dropped = [item for item in items if item.get_closest_marker("postgresql") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.get_closest_marker("postgresql") is None]
