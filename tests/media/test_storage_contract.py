"""The storage protocol's contract, run against each backend: files in tmp_path, and an S3
bucket on a real S3-protocol server on loopback (moto's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.media import make_image
from tests.support.s3 import Bucket
from veo_gateway.emulator.render import RenderSpec, render_video
from veo_gateway.media.frames import make_spritesheet, make_thumbnail
from veo_gateway.media.probe import IncompleteVideo, check_whole
from veo_gateway.media.storage import Blob, Storage, open_storage
from veo_gateway.media.storage.objects import PART_BYTES


@dataclass
class Backend:
    """A storage under test, and a look at what it holds by means of its own kind."""

    storage: Storage
    stored: Callable[[], list[str]]  # every name or key held, temp files included
    pending: Callable[[], list[str]]  # uploads begun and not finished (object stores)


def _walk(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(params=["file", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        root = tmp_path / "store"
        storage = open_storage(f"file://{root}", data_dir=tmp_path / "data")
        await storage.prepare()
        return Backend(storage, lambda: _walk(root), lambda: [])
    bucket: Bucket = request.getfixturevalue("s3_bucket")
    storage = open_storage(bucket.url, data_dir=tmp_path / "data")
    await storage.prepare()
    scratch = tmp_path / "data" / "scratch"
    return Backend(storage, lambda: bucket.keys() + _walk(scratch), bucket.pending_uploads)


async def _chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(blob: Blob, start: int = 0, end: int | None = None) -> bytes:
    try:
        return b"".join([c async for c in blob.chunks(start, blob.size if end is None else end)])
    finally:
        blob.close()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("render") / "clip.mp4"
    render_video(RenderSpec(prompt="storage", width=320, height=180, seconds=1, fps=12), path)
    return path.read_bytes()


async def test_inputs_round_trip_measure_and_delete(backend: Backend) -> None:
    storage = backend.storage
    png = make_image("PNG")
    name = await storage.save_input("task_a", "image.png", png)
    await storage.save_input("task_b", "last-frame.png", b"x" * 10)
    assert await storage.read_input("task_a", name) == png
    assert await storage.inputs_bytes() == len(png) + 10
    await storage.delete_inputs("task_a")
    await storage.delete_inputs("task_a")  # idempotent
    assert await storage.inputs_bytes() == 10
    with pytest.raises(FileNotFoundError):
        await storage.read_input("task_a", name)
    await storage.delete_inputs("never-stored")


async def test_a_big_video_streams_in_and_reads_back_by_range(backend: Backend) -> None:
    storage = backend.storage
    data = bytes(range(256)) * ((2 * PART_BYTES + 12345) // 256)  # three parts of an upload
    ref, size = await storage.save_video("task_v", _chunks(data))
    assert size == len(data)
    blob = await storage.open_video(ref)
    assert blob.size == len(data)
    assert blob.etag.startswith('"') and blob.etag.endswith('"')
    assert blob.last_modified.endswith(" GMT")
    assert await _read(blob) == data
    for start, end in [
        (0, 1),
        (5, 70000),
        (len(data) - 3, len(data)),
        (PART_BYTES - 2, PART_BYTES + 2),
    ]:
        assert await _read(await storage.open_video(ref), start, end) == data[start:end]
    assert backend.pending() == []


async def test_a_stream_that_breaks_leaves_nothing(backend: Backend) -> None:
    storage = backend.storage

    async def broken() -> AsyncIterator[bytes]:
        yield b"v" * (PART_BYTES + 1)  # a part is on its way to the store
        raise ConnectionError("the upstream went away")

    with pytest.raises(ConnectionError):
        await storage.save_video("task_x", broken())
    assert backend.stored() == []
    assert backend.pending() == []


async def test_a_video_the_check_refuses_is_not_stored(backend: Backend, video: bytes) -> None:
    storage = backend.storage
    with pytest.raises(IncompleteVideo):
        await storage.save_video("task_cut", _chunks(video[: len(video) // 2]), check=check_whole)
    assert backend.stored() == []
    ref, size = await storage.save_video("task_ok", _chunks(video), check=check_whole)
    assert size == len(video)
    assert await _read(await storage.open_video(ref)) == video
    assert len(backend.stored()) == 1  # the video, and no copy the check read


async def test_stills_are_made_once_and_go_with_their_video(backend: Backend, video: bytes) -> None:
    storage = backend.storage
    ref, _ = await storage.save_video("task_s", _chunks(video))
    made: list[str] = []

    def counting(make: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
        def run(src: Path, out: Path) -> None:
            made.append(out.name)
            make(src, out)

        return run

    thumb = await _read(
        await storage.open_still("task_s", ref, "thumbnail", counting(make_thumbnail))
    )
    again = await _read(
        await storage.open_still("task_s", ref, "thumbnail", counting(make_thumbnail))
    )
    sheet = await _read(
        await storage.open_still("task_s", ref, "spritesheet", counting(make_spritesheet))
    )
    assert thumb == again and thumb[:2] == b"\xff\xd8" and sheet[:2] == b"\xff\xd8"
    assert len(made) == 2  # the second thumbnail was the one kept
    assert len(backend.stored()) == 3
    await storage.delete_video("task_s")
    await storage.delete_video("task_s")  # idempotent
    assert backend.stored() == []
    with pytest.raises(FileNotFoundError):
        await storage.open_video(ref)
    with pytest.raises(FileNotFoundError):
        await storage.open_still("task_s", ref, "thumbnail", make_thumbnail)
    assert backend.stored() == []


async def test_health_and_room(backend: Backend) -> None:
    storage = backend.storage
    health = await storage.health()
    assert health.problem is None
    free = storage.free_bytes()  # a filesystem's free space; nothing of an object store
    assert (free is None) == (health.free_bytes is None) == (health.min_free_bytes is None)
    assert free is None or free > 0
    assert storage.has_room() and storage.space_problem() is None
    storage.check_space()
    assert await storage.sweep_leftovers(worker_stopped=True) == 0


async def test_signed_urls_where_the_store_has_them(backend: Backend, video: bytes) -> None:
    storage = backend.storage
    ref, _ = await storage.save_video("task_u", _chunks(video))
    url = await storage.signed_url(ref, 60)
    if not storage.signs_urls:
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        whole = await client.get(url)  # no credentials of any kind: the URL is enough
        part = await client.get(url, headers={"range": "bytes=10-19"})
    assert whole.status_code == 200 and whole.content == video
    assert part.status_code == 206 and part.content == video[10:20]
    assert "secret" not in url.lower()


async def test_s3_storage_unreachable_is_a_health_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_bucket: Bucket
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing
    storage = open_storage(s3_bucket.url, data_dir=tmp_path)
    health = await storage.health()
    assert health.problem is not None and s3_bucket.url in health.problem
    assert health.free_bytes is None


async def test_nothing_outside_the_store_is_copied_into_it(backend: Backend) -> None:
    storage = backend.storage
    for uri in (
        "gs://another-bucket/veo/sample_0.mp4",
        "s3://another-bucket/veo/sample_0.mp4",
        "https://example.com/veo/sample_0.mp4",
        "gs://",
    ):
        assert await storage.copy_video("task_c", uri) is None, uri
    assert backend.stored() == []


async def test_an_upstream_object_in_the_same_bucket_is_copied_inside_it(
    tmp_path: Path, s3_bucket: Bucket, video: bytes
) -> None:
    # Where an upstream wrote a result, as Vertex AI does under its storageUri: the bucket's
    # root, outside the gateway's prefix.
    source = "vertex-out/8541123zwooi/sample_0.mp4"
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=source, Body=video)
    storage = open_storage(s3_bucket.url, data_dir=tmp_path / "data")
    await storage.prepare()

    copied = await storage.copy_video("task_c", f"s3://{s3_bucket.name}/{source}")
    assert copied is not None
    ref, size = copied
    assert size == len(video)
    assert await _read(await storage.open_video(ref)) == video
    assert s3_bucket.keys() == ["videos/task_c/video.mp4"]  # under the prefix, as if saved
    # The upstream's own object is left where it wrote it.
    assert s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=source)["ContentLength"] == size

    # Another scheme or bucket, or an object that is not there: no copy, the caller downloads.
    assert await storage.copy_video("task_d", f"gs://{s3_bucket.name}/{source}") is None
    missing = f"s3://{s3_bucket.name}/vertex-out/none/sample_0.mp4"
    assert await storage.copy_video("task_d", missing) is None
    assert s3_bucket.keys() == ["videos/task_c/video.mp4"]

    await storage.delete_video("task_c")
    assert s3_bucket.keys() == []


async def test_a_gcs_store_copies_only_from_its_own_bucket(tmp_path: Path) -> None:
    # No GCS server runs here: these are decided before any request (the copy itself is the
    # S3 test's, through the same code and obstore's GCS client).
    storage = open_storage("gs://veo-bucket/gateway", data_dir=tmp_path / "data")
    for uri in (
        "gs://veo-bucket-2/out/sample_0.mp4",
        "s3://veo-bucket/out/sample_0.mp4",
        "gs://veo-bucket/",
    ):
        assert await storage.copy_video("task_g", uri) is None, uri
