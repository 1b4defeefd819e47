"""A worker over a real SQLite store, real storage and the real Gemini adapter, against a real
emulator (uvicorn on loopback) whose faults a test sets and changes while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from tests.support.servers import serve_app
from veo_gateway.config import Target
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.emulator.core import EmulatorCore
from veo_gateway.emulator.faults import FaultInjector, Faults
from veo_gateway.media.storage import LocalStorage
from veo_gateway.providers.gemini import GeminiProvider
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.pool import Credential, CredentialPool
from veo_gateway.store.claims import Claims
from veo_gateway.store.credentials import CredentialStore
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, Task, TaskStore
from veo_gateway.worker.scheduler import Worker, WorkerConfig

FAST = "veo-3.1-fast-generate-preview"
KEY = "k1"
FINISHED = (State.COMPLETED, State.FAILED, State.CANCELLED)


def stored_request(prompt: str, **fields: Any) -> dict[str, Any]:
    """A task's request in its stored form (as `save_request` writes it), no images."""
    request: dict[str, Any] = {
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
        "extra_parameters": {},
    }
    request.update(fields)
    return request


@contextlib.contextmanager
def emulator(tmp_path: Path, latency: float = 0.1) -> Iterator[tuple[str, EmulatorCore]]:
    """A real emulator app on loopback (one render per shape: cheap), and its core."""
    config = EmulatorConfig(
        latency=(latency, latency),
        api_keys=frozenset({KEY, "k2"}),
        storage_dir=tmp_path / "emu",
        fps=6,
        render="once",
    )
    app: Starlette = create_emulator_app(config)
    with serve_app(app) as url:
        yield url, app.state.core


def set_faults(core: EmulatorCore, spec: str) -> None:
    """Change what the running emulator injects from its next call on."""
    core.faults = FaultInjector(Faults.parse(spec))


@dataclass
class Rig:
    """One worker with one credential of one slot, on a store and storage in tmp_path."""

    store: TaskStore
    storage: LocalStorage
    credential: Credential
    worker: Worker
    core: EmulatorCore
    run: asyncio.Task[None]
    stats_url: str
    created: list[str] = field(default_factory=list)

    async def stop(self) -> None:
        self.run.cancel()
        await asyncio.gather(self.run, return_exceptions=True)

    async def add(self, prompt: str, **fields: Any) -> str:
        task_id = f"video_{prompt.replace(' ', '_')}"
        await self.store.create(
            task_id=task_id,
            owner="alice",
            dialect="spec",
            model=FAST,
            request=stored_request(prompt, **fields),
        )
        self.worker.wake()
        return task_id

    async def until(self, task_id: str, *states: State, timeout: float = 20.0) -> Task:
        """The task once it is in one of `states`."""
        async with asyncio.timeout(timeout):
            while True:
                task = await self.store.get(task_id)
                if task is not None and task.state in states:
                    return task
                await asyncio.sleep(0.01)

    async def settled(self, task_id: str, timeout: float = 20.0) -> Task:
        return await self.until(task_id, *FINISHED, timeout=timeout)

    async def slot_given_back(self, timeout: float = 10.0) -> bool:
        """True once the credential's slot is free (a job releases it just after its task's
        last write, which the test may see first)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.credential.in_flight:
                    await asyncio.sleep(0.01)
        return self.credential.in_flight == 0

    def emulator_stats(self) -> dict[str, Any]:
        return httpx.get(self.stats_url).json()  # type: ignore[no-any-return]

    def videos(self) -> list[Path]:
        """Every file in the videos directory (final ones and temp files alike)."""
        return sorted(self.storage.videos_dir.iterdir())


RigFactory = Callable[..., Any]


@contextlib.asynccontextmanager
async def rigs(
    tmp_path: Path, database_url: str, url: str, core: EmulatorCore
) -> AsyncIterator[Callable[..., Any]]:
    """Start workers (on one store and storage, over the test's database) with a test's
    config, jitter, store or key."""
    engine = create_engine(database_url)
    await migrate(engine)
    stores: list[TaskStore] = []
    storage = LocalStorage(tmp_path / "inputs", tmp_path / "videos")
    await storage.prepare()
    client = UpstreamHttp(timeout=30)
    clients = [client]
    runs: list[asyncio.Task[None]] = []

    async def start(
        *,
        key: str = KEY,
        credential_id: str = "emu#1",
        store_class: type[TaskStore] = TaskStore,
        claims_class: type[Claims] = Claims,
        rng: random.Random | None = None,
        latency: LatencyModel | None = None,
        upstream_timeout: float | None = None,
        **config: Any,
    ) -> Rig:
        store = store_class(engine)
        stores.append(store)
        own = client
        if upstream_timeout is not None:
            own = UpstreamHttp(timeout=upstream_timeout)
            clients.append(own)
        provider = GeminiProvider(api_key=key, base_url=url, client=own)
        credential = Credential(
            id=credential_id, upstream="emu", provider=provider, rpm=1000, max_in_flight=1
        )
        pool = CredentialPool(
            [credential], {FAST: (Target("emu", FAST),)}, store=CredentialStore(store)
        )
        knobs: dict[str, Any] = {
            "poll_interval": 0.05,
            "idle_wait": 0.05,
            "submit_attempts": 3,
            "retry_base": 0.01,
        }
        worker = Worker(
            store=store,
            pool=pool,
            storage=storage,
            latency=latency or LatencyModel(Catalog(), first_poll=0.05),
            config=WorkerConfig(**(knobs | config)),
            rng=rng,
            claims_class=claims_class,
        )
        runs.append(asyncio.create_task(worker.run()))
        return Rig(store, storage, credential, worker, core, runs[-1], f"{url}/_emulator/stats")

    try:
        yield start
    finally:
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        for each in clients:
            await each.aclose()
        for store in stores:
            await store.aclose()
        await engine.dispose()
