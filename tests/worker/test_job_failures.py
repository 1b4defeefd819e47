"""Whatever a worker job raises, its credential slot is given back and its task moves on:
requeued with a counted attempt (and backoff), or failed with the error as its reason.

The worker runs for real here (its store on a SQLite file, its storage in tmp_path, the real
Gemini adapter against the real emulator); what raises is the real adapter fed a request it
cannot serialize, or an upstream of the test's own, put in the real credential pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import serve_app
from veo_gateway.config import Target
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.media.storage import LocalStorage
from veo_gateway.providers.base import OperationStatus, Provider
from veo_gateway.providers.gemini import GeminiProvider
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.pool import Credential, CredentialPool
from veo_gateway.store.credentials import CredentialStore
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, Task, TaskStore
from veo_gateway.worker.scheduler import Worker, WorkerConfig

FAST = "veo-3.1-fast-generate-preview"
KEY = "k1"


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.1, 0.1), api_keys=frozenset({KEY}), storage_dir=tmp_path / "emu"
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def stored_request(prompt: str, **extra: Any) -> dict[str, Any]:
    """A task's request in its stored form (as `save_request` writes it), no images."""
    return {
        "model": FAST,
        "prompt": prompt,
        "image": None,
        "last_frame": None,
        "reference_images": [],
        "aspect_ratio": None,
        "duration_seconds": 4,
        "negative_prompt": None,
        "person_generation": None,
        "resolution": None,
        "extra_parameters": extra,
    }


@dataclass
class World:
    """A worker over a real store, storage and pool with one credential of one slot."""

    store: TaskStore
    credential: Credential
    worker: Worker
    run: asyncio.Task[None]

    async def stop(self) -> None:
        self.run.cancel()
        await asyncio.gather(self.run, return_exceptions=True)

    async def add(self, prompt: str, **extra: Any) -> str:
        task_id = f"video_{prompt.replace(' ', '_')}"
        await self.store.create(
            task_id=task_id,
            owner="alice",
            dialect="spec",
            model=FAST,
            request=stored_request(prompt, **extra),
        )
        self.worker.wake()
        return task_id

    async def slot_given_back(self, timeout: float = 10.0) -> bool:
        """True once the credential's slot is free (a job releases it just after its task's
        last write, which the test may see first)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.credential.in_flight:
                    await asyncio.sleep(0.01)
        return self.credential.in_flight == 0

    async def settled(self, *task_ids: str, timeout: float = 30.0) -> list[Task]:
        """Wait until every task is completed or failed."""
        async with asyncio.timeout(timeout):
            while True:
                found = [await self.store.get(task_id) for task_id in task_ids]
                if all(t is not None and t.state in (State.COMPLETED, State.FAILED) for t in found):
                    return [t for t in found if t is not None]
                await asyncio.sleep(0.02)


@pytest.fixture
async def world(
    tmp_path: Path, database_url: str, emulator_url: str
) -> AsyncIterator[Callable[[Callable[[Provider], Provider] | None], Awaitable[World]]]:
    """Start a worker whose one credential's adapter is the real Gemini adapter, or a wrapper
    of it made by the test."""
    engine = create_engine(database_url)
    await migrate(engine)
    store = TaskStore(engine)
    storage = LocalStorage(tmp_path / "inputs", tmp_path / "videos")
    await storage.prepare()
    client = UpstreamHttp(timeout=30)
    runs: list[asyncio.Task[None]] = []

    async def start(wrap: Callable[[Provider], Provider] | None = None) -> World:
        provider: Provider = GeminiProvider(api_key=KEY, base_url=emulator_url, client=client)
        if wrap is not None:
            provider = wrap(provider)
        credential = Credential(
            id="emu#1", upstream="emu", provider=provider, rpm=1000, max_in_flight=1
        )
        pool = CredentialPool(
            [credential], {FAST: (Target("emu", FAST),)}, store=CredentialStore(store)
        )
        # Renders here take a fraction of a second (as learned from finished tasks): a
        # submission cut off by a crash keeps its slot that long after its requeue.
        latency = LatencyModel(Catalog(), first_poll=0.05)
        for _ in range(3):
            latency.observe(FAST, 0.3)
        worker = Worker(
            store=store,
            pool=pool,
            storage=storage,
            latency=latency,
            config=WorkerConfig(
                poll_interval=0.05, idle_wait=0.05, submit_attempts=3, retry_base=0.01
            ),
        )
        runs.append(asyncio.create_task(worker.run()))
        return World(store, credential, worker, runs[-1])

    try:
        yield start
    finally:
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        await client.aclose()
        await store.aclose()
        await engine.dispose()


# PostgreSQL's json type refuses NaN at the insert: there, no such task can be stored at all.
@pytest.mark.sqlite
async def test_a_request_the_adapter_cannot_serialize_fails_its_task_and_frees_the_slot(
    world: Callable[..., Awaitable[World]],
) -> None:
    # The NaN seed: the adapter refuses to write it as JSON (a ValueError, not an UpstreamError).
    # Before, the task stayed `submitting` and kept the only slot: nothing was submitted again.
    w = await world()
    bad = [await w.add(f"nan {i}", seed=math.nan) for i in range(2)]
    good = await w.add("a fine one")
    *failed, done = await w.settled(*bad, good)
    for task in failed:
        assert task.state is State.FAILED
        assert task.fail_reason is not None
        assert "ValueError: Out of range float values are not JSON compliant" in task.fail_reason
        assert task.attempts == 1  # a programming error: not retried
    assert done.state is State.COMPLETED
    assert await w.slot_given_back(), w.credential.holders


class Flaky:
    """The real adapter, but its first `failures` submits (or polls) raise `error`."""

    def __init__(
        self, inner: Provider, error: Exception, failures: int, *, on: str = "submit"
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.error = error
        self.failures = failures
        self.on = on
        self.calls = 0

    def _maybe_raise(self, call: str) -> None:
        if call == self.on:
            self.calls += 1
            if self.calls <= self.failures:
                raise self.error

    async def submit(self, model: str, request: VideoRequest[Image]) -> str:
        self._maybe_raise("submit")
        return await self.inner.submit(model, request)

    async def poll(self, operation_name: str) -> OperationStatus:
        self._maybe_raise("poll")
        return await self.inner.poll(operation_name)

    def download(self, video_ref: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        self._maybe_raise("download")
        return self.inner.download(video_ref)


async def test_an_unexpected_error_in_submit_is_retried_with_counted_attempts(
    world: Callable[..., Awaitable[World]],
) -> None:
    flaky: list[Flaky] = []

    def wrap(inner: Provider) -> Provider:
        flaky.append(Flaky(inner, RuntimeError("connection pool confused"), failures=2))
        return flaky[0]

    w = await world(wrap)
    (task,) = await w.settled(await w.add("twice unlucky"))
    assert task.state is State.COMPLETED, task.fail_reason
    assert flaky[0].calls == 3  # two failures, each a counted attempt, then success
    assert await w.slot_given_back(), w.credential.holders


async def test_an_error_that_keeps_raising_fails_the_task_once_attempts_run_out(
    world: Callable[..., Awaitable[World]],
) -> None:
    flaky: list[Flaky] = []

    def wrap(inner: Provider) -> Provider:
        flaky.append(Flaky(inner, RuntimeError("always"), failures=1000))
        return flaky[0]

    w = await world(wrap)
    first, second = await w.settled(await w.add("doomed one"), await w.add("doomed two"))
    for task in (first, second):
        assert task.state is State.FAILED
        assert task.attempts == 3
        assert task.fail_reason is not None and "RuntimeError: always" in task.fail_reason
    assert flaky[0].calls == 6  # three attempts each (WorkerConfig.submit_attempts)
    assert await w.slot_given_back(), w.credential.holders


@pytest.mark.parametrize(
    ("error", "failures", "state"),
    [
        (KeyError("generatedSamples"), 1, State.FAILED),  # a programming error: at once
        (RuntimeError("flaky"), 2, State.COMPLETED),  # transient: counted, retried
    ],
)
async def test_an_unexpected_error_in_poll_fails_or_retries_and_frees_the_slot(
    world: Callable[..., Awaitable[World]], error: Exception, failures: int, state: State
) -> None:
    flaky: list[Flaky] = []

    def wrap(inner: Provider) -> Provider:
        flaky.append(Flaky(inner, error, failures=failures, on="poll"))
        return flaky[0]

    w = await world(wrap)
    first = await w.add("polled")
    second = await w.add("waits for the slot")
    one, two = await w.settled(first, second)
    assert one.state is state
    if state is State.FAILED:
        assert one.fail_reason is not None and "could not poll this task: KeyError" in (
            one.fail_reason
        )
    # The one slot came back: the second task went through it.
    assert two.state is State.COMPLETED
    assert await w.slot_given_back(), w.credential.holders


# SQLite's sole worker requeues at start; on PostgreSQL, at lease expiry
# (tests/worker/test_claims.py).
@pytest.mark.sqlite
async def test_a_restart_requeues_a_stranded_submission_and_restores_only_running_slots(
    world: Callable[..., Awaitable[World]], tmp_path: Path
) -> None:
    # A task left `submitting` by a dead process (its slot lived in that process's memory).
    first = await world()
    (done,) = await first.settled(await first.add("before the crash"))
    assert done.state is State.COMPLETED
    await first.stop()
    stranded = "video_stranded"
    await first.store.create(
        task_id=stranded, owner="bob", dialect="spec", model=FAST, request=stored_request("x")
    )
    assert await first.store.update(
        stranded, State.QUEUED, state=State.SUBMITTING.value, lease_until=1e12, upstream="emu#1"
    )
    second = await world()  # a new worker on the same database: it recovers at start
    (again,) = await second.settled(stranded)
    assert again.state is State.COMPLETED
    assert await second.slot_given_back(), second.credential.holders
