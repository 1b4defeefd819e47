"""A DELETE that lands while the worker downloads the task's finished video, both through the
real app: the task ends cancelled, never charged nor announced, its video never kept, and its
credential slot freed once, by the DELETE, without the finishing job freeing anyone else's."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_pool_e2e import gemini_config
from tests.conftest import KEY_A, gateway_settings
from tests.support.postgres import Database
from tests.support.servers import serve_app
from veo_gateway.app import create_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.emulator.faults import Faults
from veo_gateway.settings import Settings

FAST = "veo-3.1-fast-generate-preview"
HEADERS = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.5, 0.5),
        api_keys=frozenset({"k1"}),
        storage_dir=tmp_path / "emulator",
        fps=6,
        render="once",
        # Every download trickles out over 2 s: the DELETE lands in the middle of one.
        faults=Faults.parse("download.slow=1,slow_seconds=2"),
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in Database(settings.resolved_database_url).rows(query)]


def test_a_delete_racing_a_finishing_download_cancels_it_for_good(
    tmp_path: Path, emulator_url: str
) -> None:
    config = gemini_config(tmp_path, emulator_url, ["k1"], extra="max_in_flight = 1\n")
    settings = gateway_settings(
        tmp_path / "data",
        config=config,
        poll_interval=0.1,
        inline_submit_timeout=0.0,
        webhook_urls="http://127.0.0.1:9/hook",  # events are queued; nobody receives them
        webhook_secret="a-secret-for-the-race",
        allow_private_webhook_urls=True,
    )
    app = create_app(settings)
    videos = settings.resolved_videos_dir
    with serve_app(app) as url, httpx.Client(base_url=url, headers=HEADERS) as client:
        (credential,) = app.state.services.pool.credentials()

        def create(prompt: str) -> str:
            response = client.post("/v1/videos", json={"model": FAST, "prompt": prompt})
            assert response.status_code == 200, response.text
            return str(response.json()["id"])

        doomed, waiting = create("deleted while it downloads"), create("waits for the slot")
        # The doomed task's download is under way: its temp file is there.
        (partial,) = wait_for(lambda: list(videos.glob(".tmp-*")), "the download to start")
        assert credential.holders == {doomed}

        assert client.delete(f"/v1/videos/{doomed}").status_code == 200
        assert client.get(f"/v1/videos/{doomed}").status_code == 404
        assert doomed not in credential.holders  # given back by the DELETE, at once

        # The slot went to the waiting task, and the doomed download ends meanwhile.
        wait_for(lambda: waiting in credential.holders, "the waiting task to take the slot")
        wait_for(
            lambda: not partial.exists() and not (videos / f"{doomed}.mp4").exists(),
            "the doomed download to end",
        )
        # Its job's end freed nothing it did not hold: the waiting task keeps its slot.
        status = client.get(f"/v1/videos/{waiting}").json()["status"]
        if status != "completed":
            assert credential.holders == {waiting}, status

        wait_for(
            lambda: client.get(f"/v1/videos/{waiting}").json()["status"] == "completed",
            "the waiting task to complete",
        )
        # Given back just after the commit that makes it completed (a poll may land between).
        wait_for(lambda: credential.holders == set(), "the finished task's slot to be freed")

    # No orphan: the doomed video was never kept; the other one is.
    assert sorted(p.name for p in videos.iterdir()) == [f"{waiting}.mp4"]
    assert rows(settings, "select id, state from tasks order by id") == sorted(
        [(doomed, "cancelled"), (waiting, "completed")]
    )
    # Never charged, never announced; the finished one both.
    assert rows(settings, "select task_id, state from usage order by task_id") == sorted(
        [(doomed, "released"), (waiting, "charged")]
    )
    # The event is queued by the dispatcher's round that the task's end woke, just after it.
    wait_for(
        lambda: (
            rows(settings, "select task_id, event from webhook_deliveries")
            == [(waiting, "video.completed")]
        ),
        "the finished task's event to be queued",
    )
