"""What the worker does with each way the upstream goes wrong, injected by the real emulator:
retryable submission errors until the attempts run out, the backoff between attempts, 4xx
answers to a poll or a download, and downloads that break off or end early."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.worker.rig import FAST, KEY, Rig, emulator, rigs, set_faults
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.emulator.core import INTERNAL_MESSAGE, EmulatorCore
from veo_gateway.store.claims import Claims
from veo_gateway.store.credentials import CredentialStore
from veo_gateway.store.tasks import State, Task


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, EmulatorCore]]:
    with emulator(tmp_path) as found:
        yield found


@pytest.fixture
async def start(
    tmp_path: Path, database_url: str, upstream: tuple[str, EmulatorCore]
) -> AsyncIterator[Callable[..., Any]]:
    async with rigs(tmp_path, database_url, *upstream) as starter:
        yield starter


class Highest(random.Random):
    """Jitter at the top of its range, every time: each delay is known in advance."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    """Jitter at the bottom of its range, every time."""

    def uniform(self, a: float, b: float) -> float:
        return a


def served_video(rig: Rig, task: Task) -> bytes:
    """The bytes of the file the emulator serves as the task's video (read from its disk, so
    no download fault is drawn for it)."""
    base = rig.stats_url.rsplit("/_emulator", 1)[0]
    operation = httpx.get(
        f"{base}/v1beta/{task.operation_name}", headers={"x-goog-api-key": KEY}
    ).json()
    uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    file_id = uri.split("/files/")[1].split(":")[0]
    return rig.core.book.file(file_id, KEY).read_bytes()


async def test_retryable_submission_errors_fail_the_task_once_attempts_run_out(
    start: Callable[..., Any],
) -> None:
    rig: Rig = await start(submit_attempts=3)
    set_faults(rig.core, "submit.500=1")
    task = await rig.settled(await rig.add("always a 500"))
    assert task.state is State.FAILED
    assert task.attempts == 3
    assert task.fail_reason == INTERNAL_MESSAGE  # the upstream's own words
    stats = rig.emulator_stats()
    assert stats["faults"] == {"submit.500": 3}  # three tries, no fourth
    assert stats["submissions"] == 0
    assert await rig.slot_given_back(), rig.credential.holders


async def test_retries_wait_a_doubling_backoff_between_submission_attempts(
    start: Callable[..., Any],
) -> None:
    requeued: list[tuple[int, float]] = []  # (attempts so far, seconds until due)
    claimed: list[float] = []
    due: list[float] = []

    class Watched(Claims):
        """The real claims; it notes when the worker requeues and claims a submission."""

        async def update(self, task_id: str, expected: State, **f: Any) -> bool:
            if (expected, f.get("state")) == (State.SUBMITTING, State.QUEUED.value):
                requeued.append((f["attempts"], f["due_at"] - time.time()))
                due.append(f["due_at"])
            return await super().update(task_id, expected, **f)

        async def claim_task(self, task_id: str, *args: Any, **kwargs: Any) -> Task | None:
            claimed.append(time.time())
            return await super().claim_task(task_id, *args, **kwargs)

    rig: Rig = await start(submit_attempts=4, retry_base=0.05, claims_class=Watched, rng=Highest())
    set_faults(rig.core, "submit.500=1")
    task = await rig.settled(await rig.add("backs off"))
    assert task.state is State.FAILED and task.attempts == 4
    # retry_base * 2 ** attempt * the jitter's top (1.2): 0.12, 0.24, 0.48 s.
    assert [attempts for attempts, _ in requeued] == [1, 2, 3]
    for (attempts, wait), expected in zip(requeued, (0.12, 0.24, 0.48), strict=True):
        assert wait == pytest.approx(expected, abs=0.02), (attempts, requeued)
    # No attempt started before its retry was due.
    assert len(claimed) == 4
    for retry_at, started in zip(due, claimed[1:], strict=True):
        assert started >= retry_at


@pytest.mark.parametrize("attempts", [1, 3, 6, 7, 20])
async def test_the_backoff_doubles_within_its_jitter_and_is_capped_at_a_minute(
    start: Callable[..., Any], attempts: int
) -> None:
    high: Rig = await start(retry_base=1.0, rng=Highest())
    low: Rig = await start(retry_base=1.0, rng=Lowest())
    expected = min(60.0, 2.0**attempts)
    assert high.worker._backoff(attempts) == pytest.approx(expected * 1.2)
    assert low.worker._backoff(attempts) == pytest.approx(expected * 0.8)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("poll.404", "Requested entity was not found. (emulated)"),
        ("poll.400", "Request contains an invalid argument. (emulated)"),
    ],
)
async def test_a_4xx_on_poll_fails_the_task_at_once(
    start: Callable[..., Any], fault: str, message: str
) -> None:
    rig: Rig = await start()
    set_faults(rig.core, f"{fault}=1")
    task = await rig.settled(await rig.add("poll refused"))
    assert task.state is State.FAILED
    assert task.fail_reason == message
    assert rig.emulator_stats()["faults"] == {fault: 1}  # not asked again
    assert rig.videos() == []
    assert await rig.slot_given_back(), rig.credential.holders


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("download.404", "Requested entity was not found. (emulated)"),
        ("download.403", "The caller does not have permission. (emulated)"),
    ],
)
async def test_a_4xx_on_download_fails_the_task_at_once_and_keeps_no_file(
    start: Callable[..., Any], fault: str, message: str
) -> None:
    rig: Rig = await start()
    set_faults(rig.core, f"{fault}=1")
    task = await rig.settled(await rig.add("download refused"))
    assert task.state is State.FAILED
    assert task.fail_reason == message
    assert task.video_path is None
    assert rig.emulator_stats()["faults"] == {fault: 1}
    assert rig.videos() == []
    assert await rig.slot_given_back(), rig.credential.holders


def seed_faulting_first_only() -> int:
    """A fault seed whose first draw at rate 0.5 injects and whose second does not."""
    for seed in range(1000):
        draws = random.Random(seed)
        if draws.random() < 0.5 <= draws.random():
            return seed
    raise AssertionError("no such seed")


@pytest.mark.parametrize("fault", ["broken", "truncated", "short"])
async def test_a_download_cut_short_once_is_retried_and_stores_the_whole_video(
    start: Callable[..., Any], fault: str
) -> None:
    rig: Rig = await start()
    set_faults(rig.core, f"download.{fault}=0.5,seed={seed_faulting_first_only()}")
    task = await rig.settled(await rig.add(f"cut once {fault}"))
    assert task.state is State.COMPLETED, task.fail_reason
    assert rig.emulator_stats()["faults"] == {f"download.{fault}": 1}
    assert rig.emulator_stats()["downloads"] == 2
    assert task.video_path is not None
    stored = Path(task.video_path).read_bytes()
    assert stored == served_video(rig, task)
    assert task.video_bytes == len(stored)
    assert rig.videos() == [Path(task.video_path)]  # no temp file of the cut download


@pytest.mark.parametrize("fault", ["broken", "truncated", "short"])
async def test_a_download_that_always_ends_early_fails_with_why_and_keeps_no_file(
    start: Callable[..., Any], fault: str
) -> None:
    rig: Rig = await start(submit_attempts=3)
    set_faults(rig.core, f"download.{fault}=1")
    task = await rig.settled(await rig.add(f"always cut {fault}"))
    assert task.state is State.FAILED
    assert task.attempts == 3
    assert task.fail_reason is not None
    assert task.fail_reason.startswith("the video could not be downloaded"), task.fail_reason
    assert rig.emulator_stats()["faults"] == {f"download.{fault}": 3}
    assert rig.videos() == []
    assert await rig.slot_given_back(), rig.credential.holders


async def test_a_submission_left_without_an_answer_keeps_its_slot_for_a_render_time(
    start: Callable[..., Any],
) -> None:
    """The submission timed out, but the emulator took it all the same (as Google may): the
    requeued task's credential stays taken for the model's render time, so the resubmission
    does not run beside the first job, and goes out once that time is over."""
    latency = LatencyModel(Catalog(), first_poll=0.05)
    for _ in range(3):
        latency.observe(FAST, 1.5)  # renders take 1.5 s: the hold
    rig: Rig = await start(upstream_timeout=0.3, latency=latency, submit_attempts=3)
    set_faults(rig.core, "submit.lost=1,stall_seconds=0.6")
    task_id = await rig.add("no answer")
    async with asyncio.timeout(10):  # requeued, one attempt counted: it timed out
        while (task := await rig.store.get(task_id)) is None or task.attempts < 1:
            await asyncio.sleep(0.01)
    assert task.state is State.QUEUED
    set_faults(rig.core, "")
    # Once the job has given back its own slot, the one for the job that may be running
    # upstream is still taken (without it, the count falls to 0 and the task goes out again).
    credentials = CredentialStore(rig.store)
    async with asyncio.timeout(5):
        while (await credentials.states([rig.credential.id], time.time()))[
            rig.credential.id
        ].in_flight != 1:
            await asyncio.sleep(0.01)
    assert rig.emulator_stats()["submissions"] == 1
    task = await rig.settled(task_id, timeout=30)
    assert task.state is State.COMPLETED
    stats = rig.emulator_stats()
    assert stats["submissions"] == 2  # the one left unanswered, and the resubmission
    assert await rig.slot_given_back()
