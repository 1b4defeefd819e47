"""The probe measures the video stream itself, not only the container around it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.support.media import assert_length
from veo_gateway.emulator.render import RenderSpec, render_video
from veo_gateway.media.probe import probe_video

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
