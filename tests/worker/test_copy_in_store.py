"""A result an upstream wrote to the gateway's own bucket is copied inside the store, not
downloaded through the gateway; one in any other bucket is downloaded as before.

The upstream here stands in for Vertex AI with `storageUri` on the route's bucket, which
cannot run on loopback (Vertex writes the object, then names it as a `gs://` URI; the emulator
keeps its results in a stand-in of its own): it writes the MP4 into a bucket of moto's S3
server and names it as an `s3://` URI. The worker, the store, the database and the storage are
the real ones; the decision to copy is the storage's (`Storage.copy_video`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.s3 import Bucket
from tests.worker.rig import FAST, stored_request
from veo_gateway.config import Target
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.progress import LatencyModel
from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.emulator.render import RenderSpec, render_video
from veo_gateway.media.storage import open_storage
from veo_gateway.providers.base import OperationStatus, Sample
from veo_gateway.providers.pool import Credential, CredentialPool
from veo_gateway.store.credentials import CredentialStore
from veo_gateway.store.database import create_engine, migrate
from veo_gateway.store.tasks import State, TaskStore
from veo_gateway.worker.scheduler import Worker, WorkerConfig


class BucketWritingUpstream:
    """Submit writes the video into `bucket` under `vertex-out/`, poll names it; a download
    streams it from there, and is counted."""

    name = "vertex"

    def __init__(self, client: Any, bucket: str, video: bytes) -> None:
        self._client, self._bucket, self._video = client, bucket, video
        self._ids = itertools.count()
        self.downloads: list[str] = []

    def _uri(self, operation: str) -> str:
        return f"s3://{self._bucket}/vertex-out/{operation.rpartition('/')[2]}/sample_0.mp4"

    async def submit(self, model: str, request: VideoRequest[Image]) -> str:
        operation = f"projects/p/locations/global/publishers/google/models/{model}/operations/"
        operation += str(next(self._ids))
        key = self._uri(operation).removeprefix(f"s3://{self._bucket}/")
        await asyncio.to_thread(
            self._client.put_object, Bucket=self._bucket, Key=key, Body=self._video
        )
        return operation

    async def poll(self, operation_name: str) -> OperationStatus:
        return OperationStatus(done=True, samples=(Sample(ref=self._uri(operation_name)),))

    @asynccontextmanager
    async def _stream(self, key: str) -> AsyncIterator[AsyncIterator[bytes]]:
        data = await asyncio.to_thread(
            lambda: self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        )

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        yield chunks()

    def download(self, video_ref: str) -> Any:
        self.downloads.append(video_ref)
        return self._stream(video_ref.removeprefix(f"s3://{self._bucket}/"))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("render") / "clip.mp4"
    render_video(RenderSpec(prompt="copied", width=320, height=180, seconds=1, fps=12), path)
    return path.read_bytes()


@pytest.mark.parametrize("where", ["the store's bucket", "another bucket"])
async def test_a_result_in_the_stores_bucket_is_copied_not_downloaded(
    tmp_path: Path, database_url: str, s3_bucket: Bucket, video: bytes, where: str
) -> None:
    upstream_bucket = s3_bucket.name
    if where == "another bucket":
        upstream_bucket = f"{s3_bucket.name}-vertex"
        s3_bucket.client.create_bucket(Bucket=upstream_bucket)
    upstream = BucketWritingUpstream(s3_bucket.client, upstream_bucket, video)
    engine = create_engine(database_url)
    await migrate(engine)
    store = TaskStore(engine)
    storage = open_storage(s3_bucket.url, data_dir=tmp_path / "data")
    await storage.prepare()
    credential = Credential(
        id="vertex#1", upstream="vertex", provider=upstream, rpm=1000, max_in_flight=1
    )
    pool = CredentialPool(
        [credential], {FAST: (Target("vertex", FAST),)}, store=CredentialStore(store)
    )
    worker = Worker(
        store=store,
        pool=pool,
        storage=storage,
        latency=LatencyModel(Catalog(), first_poll=0.01),
        config=WorkerConfig(poll_interval=0.02, idle_wait=0.02),
    )
    run = asyncio.create_task(worker.run())
    try:
        await store.create(
            task_id="video_copied",
            owner="alice",
            dialect="spec",
            model=FAST,
            request=stored_request("copied"),
        )
        worker.wake()
        async with asyncio.timeout(30):
            while (task := await store.get("video_copied")) is None or task.state not in (
                State.COMPLETED,
                State.FAILED,
            ):
                await asyncio.sleep(0.02)
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await store.aclose()
        await engine.dispose()

    assert task.state is State.COMPLETED, task.fail_reason
    assert task.video_bytes == len(video)
    assert s3_bucket.read("videos/video_copied/video.mp4") == video
    if where == "the store's bucket":
        assert upstream.downloads == []  # not a byte through the gateway
    else:
        assert upstream.downloads == [f"s3://{upstream_bucket}/vertex-out/0/sample_0.mp4"]
