"""Status polls on PostgreSQL: while the database is away they answer 503 in the error envelope,
and the first poll after it is back is answered again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import KEY_A, KEY_B, gateway_settings
from tests.support.postgres import PrivateServer
from tests.support.servers import serve_app
from veo_gateway.app import create_app
from veo_gateway.settings import Settings

pytestmark = pytest.mark.postgresql

BODY = {"model": "veo-3.1-fast-generate-preview", "prompt": "a lighthouse at dusk"}


@pytest.fixture
def server(private_postgres: PrivateServer) -> PrivateServer:
    return private_postgres


def test_polls_answer_503_while_the_database_is_away(server: PrivateServer, tmp_path: Path) -> None:
    url = server.url
    # The API alone: the worker's own retries during the outage are another test's business.
    settings = gateway_settings(tmp_path / "data", database_url=url, worker_enabled=False)
    with serve_app(create_app(settings)) as base, httpx.Client(base_url=base, timeout=30) as client:
        alice = {"Authorization": f"Bearer {KEY_A}"}
        created = client.post("/v1/videos", json=BODY, headers=alice)
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        first = client.get(f"/v1/videos/{task_id}", headers=alice)
        assert first.status_code == 200 and first.json()["id"] == task_id
        # Another key's task does not exist for it; nor does an unknown id.
        other = client.get(f"/v1/videos/{task_id}", headers={"Authorization": f"Bearer {KEY_B}"})
        assert other.status_code == 404 and other.json()["error"]["status"] == "NOT_FOUND"
        assert client.get("/v1/videos/video_nope", headers=alice).status_code == 404

        server.stop()
        for _ in range(2):  # the cut connections, then no server at all
            away = client.get(f"/v1/videos/{task_id}", headers=alice)
            assert away.status_code == 503, away.text
            error = away.json()["error"]
            assert error["code"] == 503 and error["status"] == "UNAVAILABLE"
            assert "database" in error["message"]
            assert away.headers["retry-after"]

        server.start()
        back = client.get(f"/v1/videos/{task_id}", headers=alice)
        assert back.status_code == 200, back.text
        assert back.json() == first.json() | {"progress": back.json()["progress"]}


def test_polls_on_a_fresh_database_of_the_test_server(tmp_path: Path, database_url: str) -> None:
    settings = gateway_settings(tmp_path / "data", database_url=database_url, worker_enabled=False)
    _create_and_poll(settings)


def _create_and_poll(settings: Settings) -> None:
    with serve_app(create_app(settings)) as base, httpx.Client(base_url=base, timeout=30) as client:
        alice = {"Authorization": f"Bearer {KEY_A}"}
        task_id = client.post("/v1/videos", json=BODY, headers=alice).json()["id"]
        polled = client.get(f"/v1/videos/{task_id}", headers=alice)
        assert polled.status_code == 200 and polled.json()["id"] == task_id
        deleted = client.delete(f"/v1/videos/{task_id}", headers=alice)
        assert deleted.status_code == 200, deleted.text
        assert client.get(f"/v1/videos/{task_id}", headers=alice).status_code == 404
