"""Several gateway processes on one PostgreSQL database: an API replica and a worker complete a
task (as real processes, and as two apps whose worker idles for an hour, so only a notification
can explain a prompt submission), and a key revoked on one replica, or from the command line, is
refused by another as soon as it hears of it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY_A, gateway_settings
from tests.support.processes import start, stop, wait_http
from tests.support.servers import serve_app
from tests.test_roles import distinct_ports, emulator_url, worker_env
from tests.webhooks.conftest import SECRET, ReceiverServer, receiver, verify, wait_until
from tests.worker.test_crash import FAST, HEADERS, serve_env, wait_for
from veo_gateway.app import create_app
from veo_gateway.roles import Role
from veo_gateway.store.database import create_engine
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.notifier import Channel, Notifier

__all__ = ["emulator_url", "receiver"]  # fixtures shared with test_roles and tests/webhooks

HOUR = 3600.0
ADMIN = "replica-admin-token"

pytestmark = pytest.mark.postgresql


def status(url: str, task_id: str, headers: dict[str, str] = HEADERS) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/v1/videos/{task_id}", headers=headers).json()
    return body


def test_an_api_replica_and_a_worker_process_share_a_postgresql_database(
    tmp_path: Path, emulator_url: str, database_url: str
) -> None:
    api_port, worker_port = distinct_ports(2)
    api_url, worker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{worker_port}"
    on_postgres = {"VEO_GATEWAY_DATABASE_URL": database_url}
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    api_env = {**serve_env(tmp_path, emulator_url, api_port), **on_postgres}
    api = start(["serve", "--no-worker"], api_env, api_log)
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"{api_url}/healthz", api, api_log, timeout=120)
        worker_envs = {**worker_env(tmp_path, emulator_url, worker_port), **on_postgres}
        worker = start(["worker"], worker_envs, worker_log)
        wait_http(f"{worker_url}/healthz", worker, worker_log, timeout=120)
        assert httpx.get(f"{worker_url}/readyz").status_code == 200
        created = httpx.post(
            f"{api_url}/v1/videos", headers=HEADERS, json={"model": FAST, "prompt": "replicas"}
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        final = wait_for(
            lambda: (
                s if (s := status(api_url, task_id))["status"] in ("completed", "failure") else None
            ),
            "the task to finish",
            timeout=120,
        )
        assert final["status"] == "completed", final
    finally:
        if worker is not None:
            stop(worker)
        stop(api)
    assert f"task {task_id} submitted" in worker_log.read_text()
    # No file lock on PostgreSQL: workers share the database.
    assert not (tmp_path / "data" / "worker.lock").exists()


class Replicas:
    """Gateway apps on one database, each served on loopback in a thread of its own."""

    def __init__(self, stack: ExitStack, data_dir: Path, **shared: Any) -> None:
        self._stack, self._data_dir, self._shared = stack, data_dir, shared

    def start(self, role: Role, **overrides: Any) -> tuple[str, Any]:
        settings = gateway_settings(self._data_dir, **(self._shared | overrides))
        app = create_app(settings, role=role)
        url = self._stack.enter_context(serve_app(app))
        notifier = app.state.services.notifier
        assert wait_for(notifier.listening.is_set, "the replica to listen", timeout=60)
        return url, app


def heard(notifier: Notifier, channel: Channel) -> dict[str, threading.Event]:
    """An event per payload heard on `channel` (set on the replica's own loop)."""
    events: dict[str, threading.Event] = {}

    def subscriber(payload: str) -> None:
        events.setdefault(payload, threading.Event()).set()

    notifier.subscribe(channel, subscriber)
    return events


def wait_heard(events: dict[str, threading.Event], payload: str) -> None:
    wait_for(lambda: payload in events, f"the notification {payload!r}", timeout=60)


@pytest.fixture
def replicas(tmp_path: Path, emulator_url: str, database_url: str) -> Iterator[Replicas]:
    with ExitStack() as stack:
        yield Replicas(
            stack,
            tmp_path / "data",
            database_url=database_url,
            gemini_api_key="replica-upstream-key",
            gemini_base_url=emulator_url,
            inline_submit_timeout=0.0,
            # Only a notification can wake a worker in time: its own look is an hour away.
            worker_idle_seconds=HOUR,
            key_cache_seconds=HOUR,
            admin_token=ADMIN,
        )


def test_a_task_created_on_one_replica_is_submitted_by_another_at_once(
    replicas: Replicas,
) -> None:
    api_url, _ = replicas.start(Role.API)
    worker_url, worker_app = replicas.start(Role.WORKER)
    assert httpx.get(f"{worker_url}/readyz").status_code == 200
    created_heard = heard(worker_app.state.services.notifier, Channel.TASK_CREATED)
    headers = {"Authorization": f"Bearer {KEY_A}"}
    created = httpx.post(
        f"{api_url}/v1/videos", headers=headers, json={"model": FAST, "prompt": "woken"}
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    wait_heard(created_heard, task_id)
    # Well before the worker's hourly look: it was the notification that woke it.
    final = wait_for(
        lambda: s if (s := status(api_url, task_id, headers))["status"] == "completed" else None,
        "the worker to submit and finish the task",
        timeout=120,
    )
    assert final["status"] == "completed"


def test_a_task_finished_by_a_worker_apart_is_announced_at_once_and_retried_when_due(
    replicas: Replicas, receiver: ReceiverServer
) -> None:
    """The dispatcher, in the worker process, looks on its own only once an hour here: the
    event goes out because the task's end woke it, and the retry because it was due."""
    api_url, _ = replicas.start(Role.API)
    replicas.start(
        Role.WORKER,
        webhook_urls=f"{receiver.url}/hooks",
        webhook_secret=SECRET,
        allow_private_webhook_urls=True,
        webhook_retry_base=0.5,
    )
    receiver.app.statuses = [503]  # the first attempt fails
    headers = {"Authorization": f"Bearer {KEY_A}"}
    created = httpx.post(
        f"{api_url}/v1/videos", headers=headers, json={"model": FAST, "prompt": "announced"}
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    attempts = wait_until(lambda: r if len(r := receiver.app.requests) >= 2 else None, 120)
    assert [a.status for a in attempts[:2]] == [503, 200]
    first, second = attempts[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    event = verify(SECRET, second.headers, second.body)
    assert event["type"] == "video.completed" and event["data"]["id"] == task_id


def test_a_key_revoked_anywhere_is_refused_by_every_replica(
    replicas: Replicas, tmp_path: Path, database_url: str
) -> None:
    first_url, _ = replicas.start(Role.API)
    second_url, second_app = replicas.start(Role.API)
    revoked = heard(second_app.state.services.notifier, Channel.KEY_REVOKED)

    async def new_keys() -> list[tuple[str, str]]:
        engine = create_engine(database_url)
        try:
            store = KeyStore(engine)
            made = [await store.create(name) for name in ("by-admin", "by-cli")]
        finally:
            await engine.dispose()
        return [(key.id, secret) for key, secret in made]

    (admin_id, admin_secret), (cli_id, cli_secret) = asyncio.run(new_keys())

    def listing(url: str, secret: str) -> int:
        answer = httpx.get(f"{url}/v1/videos", headers={"Authorization": f"Bearer {secret}"})
        return answer.status_code

    # Found, and cached for an hour by both replicas.
    for secret in (admin_secret, cli_secret):
        assert listing(first_url, secret) == 200
        assert listing(second_url, secret) == 200

    # Through the admin API of the first replica.
    answer = httpx.delete(
        f"{first_url}/admin/keys/{admin_id}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert answer.status_code == 200, answer.text
    assert listing(first_url, admin_secret) == 401  # at once where it was revoked
    wait_heard(revoked, admin_id)
    assert listing(second_url, admin_secret) == 401
    assert listing(second_url, cli_secret) == 200  # only the revoked key was dropped

    # From the command line, another process on the same database.
    command = subprocess.run(
        [sys.executable, "-m", "veo_gateway", "keys", "revoke", cli_id],
        env={**os.environ, "VEO_GATEWAY_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert command.returncode == 0, command.stderr
    wait_heard(revoked, cli_id)
    assert listing(second_url, cli_secret) == 401
    assert listing(first_url, cli_secret) == 401
