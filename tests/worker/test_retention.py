"""Retention: finished tasks' files deleted after the retention or over the byte cap, `content`
then 410 while the record stays; unfinished tasks untouched; one winner per task across sweepers.

The gateway runs for real (uvicorn, SQLite file, emulator); sweeps are driven from the test with
an explicit `now` on the same database and directories, so no test waits for days to pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from tests.conftest import KEY_A, Gateway, gateway_settings
from tests.observability.test_metrics import scrape, total
from tests.support.media import data_uri, make_image
from veo_gateway.media.storage import LocalStorage, open_storage
from veo_gateway.observability.metrics import Metrics
from veo_gateway.store.database import create_engine
from veo_gateway.store.tasks import TaskStore
from veo_gateway.worker.retention import RetentionPolicy, Sweeper, describe_period

FAST = "veo-3.1-fast-generate-preview"
DAY = 86400.0
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a loop of its own, in a thread of its own (this thread may
    already have a loop running, left by the browser tests' driver)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _sweep(
    gateway: Gateway, now: float, max_bytes: int | None, metrics: Metrics | None
) -> list[str]:
    settings = gateway.settings
    engine = create_engine(settings.resolved_database_url)
    store = TaskStore(engine)
    try:
        sweeper = Sweeper(
            store=store,
            storage=open_storage(
                settings.storage_url, data_dir=settings.data_dir, videos_dir=settings.videos_dir
            ),
            policy=RetentionPolicy(settings.retention_seconds, max_bytes),
            metrics=metrics,
        )
        return await sweeper.sweep(now)
    finally:
        await store.aclose()
        await engine.dispose()


def sweep(
    gateway: Gateway,
    now: float,
    *,
    max_bytes: int | None = None,
    metrics: Metrics | None = None,
) -> list[str]:
    """One sweep at `now` over the running gateway's database and storage."""
    return run(_sweep(gateway, now, max_bytes, metrics))


def finished(gateway: Gateway, prompt: str, **extra: Any) -> dict[str, Any]:
    """A completed spec task (4 s), with its status body."""
    body = {"model": FAST, "prompt": prompt, "metadata": {"durationSeconds": 4}, **extra}
    response = gateway.create(body)
    assert response.status_code == 200, response.text
    status = gateway.wait(response.json()["id"])
    assert status["status"] == "completed", status
    return status


def content(gateway: Gateway, task_id: str, variant: str = "video") -> Any:
    return gateway.client.get(
        f"/v1/videos/{task_id}/content", params={"variant": variant}, headers=gateway.headers()
    )


def files_of(gateway: Gateway, task_id: str) -> list[Path]:
    """Every stored file of a task: video, derived images, inputs."""
    settings = gateway.settings
    videos = sorted(settings.resolved_videos_dir.glob(f"{task_id}.*"))
    inputs = sorted((settings.data_dir / "inputs" / task_id).glob("*"))
    return videos + inputs


def expired_at(gateway: Gateway, task_id: str) -> float | None:
    value: float | None = gateway.db.scalar(
        "select expired_at from tasks where id = :id", id=task_id
    )
    return value


def test_a_task_past_the_retention_loses_its_files_and_content_answers_410(
    gateway: Gateway,
) -> None:
    image = data_uri(make_image())
    spec = finished(gateway, "kept a week", images=[image])
    task_id = spec["id"]
    assert spec["expires_at"] == spec["completed_at"] + 7 * DAY
    assert content(gateway, task_id, "thumbnail").status_code == 200
    names = {path.name for path in files_of(gateway, task_id)}
    assert {f"{task_id}.mp4", f"{task_id}.thumbnail.jpg", "image.png"} <= names

    openai_id = gateway.create({"prompt": "openai shaped", "seconds": "4"}).json()["id"]
    video = gateway.wait(openai_id)
    assert video["status"] == "completed"
    assert video["expires_at"] == video["completed_at"] + 7 * DAY

    def digests(task: str) -> int:
        count: int = gateway.db.scalar(
            "select count(*) from video_digests where task_id = :id", id=task
        )
        return count

    assert digests(task_id) == digests(openai_id) == 1  # how an upload of it would be known

    now = time.time() + 7 * DAY + 60
    metrics = Metrics()
    assert sorted(sweep(gateway, now, metrics=metrics)) == sorted([task_id, openai_id])
    assert files_of(gateway, task_id) == files_of(gateway, openai_id) == []
    assert digests(task_id) == digests(openai_id) == 0
    assert total(_samples(metrics), "veo_gateway_retention_expired_total", reason="retention") == 2

    response = content(gateway, task_id)
    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == 410 and error["status"] == "NOT_FOUND" and error["param"] == "id"
    assert error["type"] == "not_found_error"
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    assert error["message"] == (
        f"the video of task {task_id} was deleted on {day} "
        f"{time.strftime('%H:%M', time.gmtime(now))} UTC after the 7-day retention period; "
        "the task record is kept. Generate it again to get a new video"
    )
    for variant in ("thumbnail", "spritesheet"):
        assert content(gateway, task_id, variant).status_code == 410
    head = gateway.client.head(f"/v1/videos/{task_id}/content", headers=gateway.headers())
    assert head.status_code == 410

    # The record stays, as it was, with the moment its video went.
    after = gateway.get(task_id).json()
    assert after["status"] == "completed" and after["progress"] == 100
    assert after["completed_at"] == spec["completed_at"]
    assert after["expires_at"] == int(now)
    listed = gateway.client.get("/v1/videos", headers=gateway.headers()).json()["data"]
    assert {item["id"] for item in listed} == {task_id, openai_id}
    openai_after = gateway.get(openai_id).json()
    assert openai_after["status"] == "completed" and openai_after["expires_at"] == int(now)
    assert content(gateway, openai_id).status_code == 410

    # A second sweep finds nothing left to do.
    assert sweep(gateway, now + DAY) == []


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def test_a_task_within_the_retention_is_untouched(gateway: Gateway) -> None:
    task_id = finished(gateway, "fresh")["id"]
    before = files_of(gateway, task_id)
    assert sweep(gateway, time.time() + 6.9 * DAY) == []
    assert files_of(gateway, task_id) == before
    assert expired_at(gateway, task_id) is None
    assert content(gateway, task_id).status_code == 200


def test_unfinished_tasks_keep_their_inputs(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(worker_enabled=False, storage_max_bytes=1)
    body = {"model": FAST, "prompt": "waiting", "images": [data_uri(make_image())]}
    task_id = gateway.create(body).json()["id"]
    inputs = files_of(gateway, task_id)
    assert [path.name for path in inputs] == ["image.png"]
    assert sweep(gateway, time.time() + 365 * DAY, max_bytes=1) == []
    assert files_of(gateway, task_id) == inputs
    assert gateway.get(task_id).json()["status"] == ""


def test_failed_and_deleted_tasks_lose_their_inputs_too(gateway: Gateway) -> None:
    image = data_uri(make_image())
    failed = gateway.create({"model": FAST, "prompt": "[emulator:fail] no", "images": [image]})
    failed_id = failed.json()["id"]
    assert gateway.wait(failed_id)["status"] == "failure"
    assert files_of(gateway, failed_id) != []
    assert "expires_at" not in gateway.get(failed_id).json()

    # A deleted task: DELETE marks the row, then removes the files; a crash between the two
    # leaves them behind (put back here as the crash would have left them). The sweep takes them.
    deleted_id = finished(gateway, "deleted soon", images=[image])["id"]
    left = files_of(gateway, deleted_id)
    assert [p.suffix for p in left].count(".mp4") == 1 and len(left) >= 2
    saved = {path: path.read_bytes() for path in left}
    removed = gateway.client.delete(f"/v1/videos/{deleted_id}", headers=gateway.headers())
    assert removed.status_code == 200 and files_of(gateway, deleted_id) == []
    for path, data in saved.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    assert sorted(sweep(gateway, time.time() + 8 * DAY)) == sorted([failed_id, deleted_id])
    assert files_of(gateway, failed_id) == []
    assert files_of(gateway, deleted_id) == []
    assert expired_at(gateway, deleted_id) is not None
    assert gateway.get(deleted_id).status_code == 404
    # A failed task never had a video: its content keeps saying why.
    response = content(gateway, failed_id)
    assert response.status_code == 400 and "failed" in response.json()["error"]["message"]


def test_the_byte_cap_evicts_the_oldest_first(make_gateway: Callable[..., Gateway]) -> None:
    # The app's own cap is far away; the sweeps below bring theirs.
    gateway = make_gateway(storage_max_bytes=10**12)
    ids = [finished(gateway, f"video {n}")["id"] for n in range(3)]
    sizes = [(gateway.settings.resolved_videos_dir / f"{i}.mp4").stat().st_size for i in ids]
    assert total(scrape(gateway), "veo_gateway_stored_video_bytes") == sum(sizes)

    now = time.time()
    # Room for the two newest: only the oldest goes, though it is well within the retention.
    assert sweep(gateway, now, max_bytes=sizes[1] + sizes[2]) == [ids[0]]
    assert files_of(gateway, ids[0]) == [] and files_of(gateway, ids[1]) != []
    assert total(scrape(gateway), "veo_gateway_stored_video_bytes") == sizes[1] + sizes[2]
    error = content(gateway, ids[0]).json()["error"]
    assert "early, to keep the gateway's storage under its size limit" in error["message"]
    assert gateway.get(ids[0]).json()["expires_at"] == int(now)

    # Under the cap already: nothing more goes.
    assert sweep(gateway, now, max_bytes=sizes[1] + sizes[2]) == []
    # One byte less than the two newest: the older of them goes.
    assert sweep(gateway, now, max_bytes=sizes[1] + sizes[2] - 1) == [ids[1]]
    assert content(gateway, ids[2]).status_code == 200


def test_two_sweepers_on_the_same_tasks_expire_each_once(gateway: Gateway) -> None:
    ids = [finished(gateway, f"contested {n}")["id"] for n in range(2)]
    now = time.time() + 8 * DAY
    settings = gateway.settings
    counters = [Metrics(), Metrics()]

    async def race() -> list[list[str]]:
        engines = [create_engine(settings.resolved_database_url) for _ in counters]
        stores = [TaskStore(engine) for engine in engines]
        storage = LocalStorage(settings.data_dir / "inputs", settings.resolved_videos_dir)
        sweepers = [
            Sweeper(store=store, storage=storage, policy=RetentionPolicy(DAY), metrics=metrics)
            for store, metrics in zip(stores, counters, strict=True)
        ]
        try:
            # Both picked the same tasks (as replicas sweeping at the same moment do).
            return list(await asyncio.gather(*(s.expire(ids, now, "retention") for s in sweepers)))
        finally:
            for store, engine in zip(stores, engines, strict=True):
                await store.aclose()
                await engine.dispose()

    first, second = run(race())
    assert sorted(first + second) == sorted(ids)
    counted = [
        total(_samples(m), "veo_gateway_retention_expired_total", reason="retention")
        for m in counters
    ]
    assert sum(counted) == len(ids)
    assert all(files_of(gateway, task_id) == [] for task_id in ids)
    assert all(expired_at(gateway, task_id) == now for task_id in ids)


def test_concurrent_sweeps_expire_each_task_once(gateway: Gateway) -> None:
    ids = {finished(gateway, f"raced {n}")["id"] for n in range(3)}
    now = time.time() + 8 * DAY
    counters = [Metrics(), Metrics()]

    async def both() -> list[list[str]]:
        return list(
            await asyncio.gather(*(_sweep(gateway, now, None, metrics) for metrics in counters))
        )

    first, second = run(both())
    assert not set(first) & set(second)
    assert set(first) | set(second) == ids
    counted = sum(
        total(_samples(m), "veo_gateway_retention_expired_total", reason="retention")
        for m in counters
    )
    assert counted == len(ids)
    assert all(expired_at(gateway, task_id) == now for task_id in ids)


def test_a_crash_between_deleting_and_marking_is_finished_by_the_next_sweep(
    gateway: Gateway,
) -> None:
    task_id = finished(gateway, "half swept")["id"]
    # What a sweeper killed after deleting the files, before marking the row, leaves behind.
    for path in files_of(gateway, task_id):
        path.unlink()
    response = content(gateway, task_id)
    assert response.status_code == 410
    assert "deleted from the gateway's storage" in response.json()["error"]["message"]
    assert expired_at(gateway, task_id) is None

    now = time.time() + 8 * DAY
    assert sweep(gateway, now) == [task_id]
    assert expired_at(gateway, task_id) == now


def test_a_tiny_retention_runs_through_the_lifespan(make_gateway: Callable[..., Gateway]) -> None:
    # 3 seconds: the app sweeps every second.
    gateway = make_gateway(retention_days=3 / DAY)
    image = data_uri(make_image())
    status = finished(gateway, "short lived", images=[image])
    task_id = status["id"]
    assert status["expires_at"] == status["completed_at"] + 3
    deadline = time.monotonic() + 20
    while content(gateway, task_id).status_code == 200:
        assert time.monotonic() < deadline, "the video was never deleted"
        time.sleep(0.2)
    response = content(gateway, task_id)
    assert response.status_code == 410
    assert "after the 3-second retention period" in response.json()["error"]["message"]
    assert gateway.get(task_id).json()["status"] == "completed"

    deadline = time.monotonic() + 10
    while True:
        samples = scrape(gateway)
        if total(samples, "veo_gateway_retention_expired_total", reason="retention") == 1:
            break
        assert time.monotonic() < deadline, "the expiry was never counted"
        time.sleep(0.2)
    assert total(samples, "veo_gateway_stored_video_bytes") == 0
    assert files_of(gateway, task_id) == []
    assert total(samples, "veo_gateway_stored_input_bytes") == 0


def test_stored_input_bytes_are_measured(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(worker_enabled=False, retention_days=1 / DAY)
    image = make_image()
    created = gateway.create({"model": FAST, "prompt": "p", "images": [data_uri(image)]}).json()
    assert created["status"] == ""
    deadline = time.monotonic() + 10
    while total(scrape(gateway), "veo_gateway_stored_input_bytes") != len(image):
        assert time.monotonic() < deadline, "input bytes never reported"
        time.sleep(0.2)


def test_retention_settings(tmp_path: Path) -> None:
    assert gateway_settings(tmp_path).retention_seconds == 7 * DAY
    assert gateway_settings(tmp_path, retention_days=0.5).retention_seconds == DAY / 2
    with pytest.raises(ValidationError):
        gateway_settings(tmp_path, retention_days=-1)
    with pytest.raises(ValidationError):
        gateway_settings(tmp_path, storage_max_bytes=0)
    assert RetentionPolicy(7 * DAY).sweep_interval == 60
    assert RetentionPolicy(30).sweep_interval == 3
    assert RetentionPolicy(2).sweep_interval == 1
    assert RetentionPolicy(0).sweep_interval == 60
    periods = {
        7 * DAY: "7-day",
        1.5 * DAY: "36-hour",
        1.3 * DAY: "1.3-day",
        12 * 3600: "12-hour",
        5400: "90-minute",
        90: "1.5-minute",
        3: "3-second",
    }
    for seconds, text in periods.items():
        assert describe_period(seconds) == text


def test_keeping_forever_reports_no_expiry(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(retention_days=0)
    status = finished(gateway, "forever")
    assert "expires_at" not in status
    created = gateway.create({"prompt": "openai forever", "seconds": "4"}, key=KEY_A).json()
    assert gateway.wait(created["id"])["expires_at"] is None
    assert sweep(gateway, time.time() + 3650 * DAY) == []
    assert content(gateway, status["id"]).status_code == 200
