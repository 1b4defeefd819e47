"""Fixtures: a real gateway (uvicorn on loopback, the test's database, the built-in emulator)."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.servers import serve_app
from veo_gateway.app import create_app
from veo_gateway.settings import Settings

if TYPE_CHECKING:  # imported by pytest as a plugin (below), not here, so its asserts are rewritten
    from tests.support.postgres import Database

# The backend switch (--db=sqlite|postgresql) and each test's database.
pytest_plugins = ["tests.support.postgres", "tests.support.s3"]

KEY_A = "test-key-alice"
KEY_B = "test-key-bob"
# `-n auto` starts this many xdist workers at least: most tests wait (on emulator latencies,
# polls, servers and subprocesses) rather than compute, so two per core keeps the cores busy.
MIN_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for `-n auto`: twice the usable cores, and never fewer than MIN_WORKERS."""
    return max(MIN_WORKERS, 2 * len(os.sched_getaffinity(0)))


_TIMER = pytest.StashKey[threading.Timer]()


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """On an xdist worker, pytest-timeout's thread method prints its stacks to the worker's
    stdout, which xdist sends nowhere: this timer prints them to stderr, which reaches the
    terminal, then ends the worker as pytest-timeout does (xdist fails the test and starts
    another worker)."""
    if settings.method != "thread" or not hasattr(item.config, "workerinput"):
        return None
    timer = threading.Timer(settings.timeout, _stacks_then_exit, (item, settings.timeout))
    timer.name = f"timeout {item.nodeid}"
    timer.daemon = True
    item.stash[_TIMER] = timer
    timer.start()
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool | None:
    timer = item.stash.get(_TIMER, None)
    if timer is None:
        return None
    timer.cancel()
    timer.join()
    del item.stash[_TIMER]
    return True


def _stacks_then_exit(item: pytest.Item, timeout: float) -> None:
    capture = item.config.pluginmanager.getplugin("capturemanager")
    output = None
    if capture is not None:
        capture.suspend_global_capture(in_=True)
        output = capture.read_global_capture()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "?")
    sys.stderr.write(f"\n+++ [{worker}] Timeout: {item.nodeid} ran past {timeout:g} s\n")
    if output is not None:
        sys.stderr.write(f"~~~ captured stdout\n{output.out}\n~~~ captured stderr\n{output.err}\n")
    sys.stderr.write("~~~ every thread's stack\n")
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.write(f"+++ [{worker}] Timeout: {item.nodeid}\n")
    sys.stderr.flush()
    os._exit(1)


@dataclass
class Gateway:
    """A running gateway and a client for it."""

    url: str
    settings: Settings
    client: httpx.Client

    @property
    def db(self) -> Database:
        """Plain SQL on this gateway's database (SQLite or PostgreSQL)."""
        from tests.support.postgres import Database

        return Database(self.settings.resolved_database_url)

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
        # The google-genai SDK's variables of the machine running the tests never leak in.
        "google_api_key": None,
        "google_genai_use_vertexai": None,
        "google_genai_use_enterprise": None,
        # One video per output shape (model, duration, size, audio), not one per task: these
        # tests look at a video's format, never at its pictures. A test that does says "each".
        "emulator_render": "once",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def once_renders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in emulators' render="once" videos, kept for the whole run and shared by its
    xdist workers: each output shape is rendered once per run, not once per test. (Renders
    land by an atomic rename, so workers rendering the same shape at once do no harm.)"""
    base = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        base = base.parent  # the run's directory, above each worker's own
    directory = base / "once-renders"
    directory.mkdir(exist_ok=True)
    return directory


def share_once_renders(data_dir: Path, once_renders: Path) -> None:
    """Point the built-in emulator's shared-render directory (`<data dir>/emulator/once`) at
    the run's `once_renders`, where an emulator finds a shape already rendered and uses it."""
    emulator_dir = data_dir / "emulator"
    emulator_dir.mkdir(parents=True, exist_ok=True)
    link = emulator_dir / "once"
    if not link.is_symlink():
        link.symlink_to(once_renders, target_is_directory=True)


@pytest.fixture
def make_gateway(tmp_path: Path, once_renders: Path) -> Iterator[Callable[..., Gateway]]:
    """Start gateways with settings overrides; each one stops when the test ends."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> Gateway:
            settings = gateway_settings(tmp_path / "data", **overrides)
            if settings.emulator_render == "once":
                share_once_renders(settings.data_dir, once_renders)
            url = stack.enter_context(serve_app(create_app(settings)))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=30))
            return Gateway(url=url, settings=settings, client=client)

        yield start


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway on the built-in emulator with two client keys, KEY_A and KEY_B."""
    return make_gateway()
