"""The probe measures the video stream itself, not only the container around it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.support.media import assert_length
from veo_gateway.emulator.render import RenderSpec, render_video
from veo_gateway.media.probe import IncompleteVideo, _boxes_whole, check_whole, probe_video

FPS = 12


def _short_picture_long_sound(path: Path, video_seconds: int, audio_seconds: int) -> None:
    """An MP4 whose video track stops long before its audio track does."""
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=48000, layout="stereo")
        for index in range(video_seconds * FPS):
            frame = av.VideoFrame(64, 64, "yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for start in range(0, audio_seconds * 48000, 1024):
            samples = av.AudioFrame(format="s16", layout="stereo", samples=1024)
            samples.planes[0].update(bytes(1024 * 4))
            samples.sample_rate = 48000
            samples.pts, samples.time_base = start, Fraction(1, 48000)
            container.mux(audio.encode(samples))
        container.mux(audio.encode(None))


def test_a_short_video_track_under_full_length_audio_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    _short_picture_long_sound(path, video_seconds=1, audio_seconds=4)
    info = probe_video(path)
    # The container reports its longest stream: the duration alone says 4 s.
    assert abs(info.duration - 4) < 0.1
    assert info.audio is not None and abs(info.audio.duration - 4) < 0.1
    assert abs(info.video.duration - 1) < 0.01 and info.frames == FPS
    assert abs(info.shortest - 1) < 0.01
    with pytest.raises(AssertionError, match="video stream"):
        assert_length(info, 4)


def test_a_rendered_video_is_as_long_as_every_one_of_its_streams(tmp_path: Path) -> None:
    path = tmp_path / "full.mp4"
    render_video(RenderSpec(prompt="x", width=320, height=180, seconds=2, fps=FPS), path)
    info = probe_video(path)
    assert info.frames == 2 * FPS and info.video.time_base.denominator % FPS == 0
    assert info.video.duration == pytest.approx(2.0, abs=1e-6)
    assert_length(info, 2, tolerance=0.05)


def _top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each top-level box, read the plain way (no 64-bit sizes here)."""
    boxes, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append((data[offset + 4 : offset + 8], offset, offset + length))
        offset += length
    return boxes


def _cuts(data: bytes) -> list[int]:
    """Where a download can end early: at each top-level box's start and end, inside each box,
    a byte short of the end, and half way."""
    points = {len(data) // 2, len(data) - 1}
    for _, start, end in _top_level_boxes(data):
        points |= {start, start + 4, start + 8, (start + end) // 2, end - 1, end}
    return sorted(point for point in points if 0 < point < len(data))


@pytest.fixture(scope="module")
def faststart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP4 as the emulator (and Google) serve it: the index first."""
    path = tmp_path_factory.mktemp("whole") / "faststart.mp4"
    render_video(RenderSpec(prompt="whole", width=320, height=180, seconds=2, fps=FPS), path)
    return path


@pytest.fixture(scope="module")
def index_last(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP4 written without faststart: the media first, the index after it."""
    path = tmp_path_factory.mktemp("whole") / "index-last.mp4"
    _short_picture_long_sound(path, video_seconds=2, audio_seconds=2)
    return path


@pytest.mark.parametrize("layout", ["faststart", "index_last"])
def test_a_whole_mp4_is_shown_whole_by_its_boxes_alone(
    layout: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(layout)
    kinds = [kind for kind, _, _ in _top_level_boxes(path.read_bytes())]
    assert kinds.index(b"moov") < kinds.index(b"mdat") if layout == "faststart" else True
    assert _boxes_whole(path)  # the walk vouches for it: no demux of every packet
    check_whole(path)


@pytest.mark.parametrize("layout", ["faststart", "index_last"])
def test_an_mp4_cut_anywhere_is_refused(
    layout: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = Path(request.getfixturevalue(layout)).read_bytes()
    cut = tmp_path / "cut.mp4"
    for point in _cuts(data):
        cut.write_bytes(data[:point])
        # A byte short of the end, or inside an index at the end, still demuxes in full.
        with pytest.raises(IncompleteVideo):
            check_whole(cut)


def test_an_mp4_whose_boxes_tile_it_but_whose_media_is_short_is_refused(
    faststart: Path, tmp_path: Path
) -> None:
    # The media box cut to half, its size mended: the boxes end exactly at the end of the file,
    # but the index lists chunks beyond it.
    data = faststart.read_bytes()
    _, start, end = next(box for box in _top_level_boxes(data) if box[0] == b"mdat")
    half = (end - start) // 2
    path = tmp_path / "short-media.mp4"
    path.write_bytes(data[:start] + half.to_bytes(4, "big") + data[start + 4 : start + half])
    assert _top_level_boxes(path.read_bytes())[-1] == (b"mdat", start, start + half)
    assert not _boxes_whole(path)
    with pytest.raises(IncompleteVideo):
        check_whole(path)


def test_a_whole_video_in_another_container_is_demuxed_and_kept(tmp_path: Path) -> None:
    whole = tmp_path / "video.mkv"
    with av.open(str(whole), mode="w", format="matroska") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        for index in range(2 * FPS):
            frame = av.VideoFrame(64, 64, "yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    assert not _boxes_whole(whole)  # not an MP4: the walk cannot tell
    check_whole(whole)
