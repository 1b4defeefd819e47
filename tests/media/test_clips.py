"""Uploaded MP4s are hostile input: bounded, sniffed and probed before any rule is judged; and
where a stored video is when Vertex AI may read it in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from obstore.store import MemoryStore

from veo_gateway.emulator.render import RenderSpec, render_video
from veo_gateway.errors import InvalidArgument, PayloadTooLarge
from veo_gateway.media import clips
from veo_gateway.media.storage.objects import ObjectStorage


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    render_video(RenderSpec(prompt="c", width=320, height=180, seconds=2, fps=12), path)
    return path.read_bytes()


async def test_an_mp4_is_measured(mp4: bytes) -> None:
    clip = await clips.probe_upload(mp4)
    assert (clip.width, clip.height, clip.aspect_ratio) == (320, 180, "16:9")
    assert abs(clip.seconds - 2) < 0.1 and abs(clip.fps - 12) < 0.5
    assert clip.task_id is None and clip.upstream_uri is None


async def test_what_is_not_a_whole_mp4_is_refused(mp4: bytes) -> None:
    for data in (b"", b"GIF89a" + bytes(64), b"\0\0\0\x18ftypqt  " + bytes(64)):
        with pytest.raises(InvalidArgument, match="does not start with an MP4 header"):
            await clips.probe_upload(data)
    with pytest.raises(InvalidArgument, match=r"cut short|no video stream"):
        await clips.probe_upload(mp4[: len(mp4) // 2])
    with pytest.raises(InvalidArgument, match=r"cut short|no video stream") as refused:
        await clips.probe_upload(mp4[:32] + bytes(4096))
    assert "/" not in refused.value.message  # no path of the machine's in the answer


async def test_an_upload_is_bounded(monkeypatch: pytest.MonkeyPatch, mp4: bytes) -> None:
    monkeypatch.setattr(clips, "MAX_UPLOAD_BYTES", len(mp4) - 1)
    with pytest.raises(PayloadTooLarge, match="the limit is"):
        await clips.probe_upload(mp4)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("gs://bucket/veo", "gs://bucket/veo/videos/v/video.mp4"),
        ("gs://bucket", "gs://bucket/videos/v/video.mp4"),
        ("s3://bucket/veo", None),
    ],
)
def test_a_stored_video_s_cloud_storage_uri(tmp_path: Path, url: str, expected: Any) -> None:
    store = ObjectStorage(MemoryStore(), MemoryStore(), url, tmp_path)  # type: ignore[arg-type]
    assert store.gcs_uri("videos/v/video.mp4") == expected
