"""The renderer's pieces: sizes, text layout, fonts, the soundtrack, and the probe."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import ImageFont

from tests.emulator.conftest import png
from veo_gateway.emulator.audio import SAMPLE_RATE, tone_track
from veo_gateway.emulator.render import (
    RenderCancelled,
    RenderSpec,
    canvas_size,
    frame_size,
    render_video,
)
from veo_gateway.emulator.text import Fonts, find_cjk_font, load_font, missing_glyphs, wrap_text
from veo_gateway.media.probe import probe_video


@pytest.mark.parametrize(
    ("aspect", "resolution", "size"),
    [
        ("16:9", "720p", (1280, 720)),
        ("9:16", "720p", (720, 1280)),
        ("16:9", "1080p", (1920, 1080)),
        ("9:16", "1080p", (1080, 1920)),
        ("16:9", "4k", (3840, 2160)),
        ("9:16", "4k", (2160, 3840)),
    ],
)
def test_frame_size(aspect: str, resolution: str, size: tuple[int, int]) -> None:
    assert frame_size(aspect, resolution) == size


def test_canvas_keeps_shape_and_stays_small() -> None:
    assert canvas_size(1280, 720) == (960, 540)
    assert canvas_size(2160, 3840) == (540, 960)
    assert canvas_size(640, 360) == (640, 360)


def test_wrap_text_fits_width_and_breaks_cjk() -> None:
    font = ImageFont.load_default(size=20)
    lines = wrap_text("the quick brown fox jumps over the lazy dog " * 3, font, 200, 10)
    assert len(lines) > 2 and all(font.getlength(line) <= 200 for line in lines)
    assert " ".join(lines) == ("the quick brown fox jumps over the lazy dog " * 3).strip()
    cjk = wrap_text("一只可爱的橘猫在花园里追逐蝴蝶" * 4, font, 150, 3)
    assert len(cjk) == 3 and cjk[-1].endswith("…")
    assert all(font.getlength(line) <= 150 for line in cjk)
    assert wrap_text("x" * 200, font, 100, 50)[0].startswith("xxx")  # one long word is broken


def test_find_cjk_font_prefers_the_listed_order(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "DejaVuSans.ttf").write_bytes(b"")
    assert find_cjk_font([tmp_path]) is None
    (tmp_path / "a" / "wqy-zenhei.ttc").write_bytes(b"")
    (tmp_path / "a" / "b" / "NotoSansCJK-Regular.ttc").write_bytes(b"")
    assert find_cjk_font([tmp_path / "missing", tmp_path]) == (
        tmp_path / "a" / "b" / "NotoSansCJK-Regular.ttc"
    )
    # An unreadable font falls back to Pillow's default instead of failing the render.
    assert load_font(20, tmp_path / "a" / "wqy-zenhei.ttc").getlength("abc") > 0


def test_tone_track_length_and_not_silent() -> None:
    pcm = tone_track(1.5)
    assert len(pcm) == round(1.5 * SAMPLE_RATE) * 4
    middle = pcm[len(pcm) // 2 : len(pcm) // 2 + 4000]
    assert max(middle) > 0 and len(set(middle)) > 50
    # The chord changes after a second: the pitch varies.
    assert pcm[4 * 24_000 : 4 * 24_100] != pcm[4 * 72_000 : 4 * 72_100]


def test_render_writes_atomically_and_can_be_cancelled(tmp_path: Path) -> None:
    import threading

    stop = threading.Event()
    stop.set()
    dest = tmp_path / "out" / "v.mp4"
    with pytest.raises(RenderCancelled):
        render_video(RenderSpec(prompt="x", width=640, height=360, seconds=1), dest, stop)
    assert list(dest.parent.iterdir()) == []
    render_video(RenderSpec(prompt="x", width=640, height=360, seconds=1, fps=12), dest)
    info = probe_video(dest)
    assert (info.width, info.height, info.audio_codec) == (640, 360, "aac")
    assert abs(info.duration - 1) <= 0.15
    assert list(dest.parent.iterdir()) == [dest]


def test_probe_refuses_what_is_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(av.FFmpegError):
        probe_video(junk)


REFERENCE_PROMPT = "一只可爱的橘猫在花园里追逐蝴蝶，阳光明媚，电影感镜头"


def test_the_bundled_font_draws_chinese_japanese_and_korean() -> None:
    fonts = Fonts()
    # The font that installs with the project, not whatever this machine has.
    assert fonts.path is not None and fonts.path.name == "NotoSansCJK-Regular.ttc"
    assert "site-packages" in fonts.path.parts or "dist-packages" in fonts.path.parts
    text = REFERENCE_PROMPT + " かわいい猫 귀여운 고양이 Latin, too"
    assert missing_glyphs(fonts.load(30), text) == []
    # The check can fail: Pillow's default font lacks every one of these characters.
    assert missing_glyphs(ImageFont.load_default(size=30), REFERENCE_PROMPT) == list(
        dict.fromkeys(REFERENCE_PROMPT)
    )


def test_a_missing_glyph_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    fonts = Fonts()
    with caplog.at_level(logging.WARNING, logger="veo_gateway.emulator.text"):
        assert fonts.check("नमस्ते and ሰላም") != []
        assert fonts.check("ሰላም again") != []
        assert fonts.check(REFERENCE_PROMPT) == []
    warnings = [r for r in caplog.records if "no glyph" in r.getMessage()]
    assert len(warnings) == 1 and "U+0928" in warnings[0].getMessage()


def _render(tmp_path: Path, name: str, **spec: Any) -> bytes:
    dest = tmp_path / f"{name}.mp4"
    render_video(RenderSpec(width=640, height=360, seconds=1, fps=12, **spec), dest)
    return dest.read_bytes()


@pytest.mark.parametrize(
    "images",
    [
        {"first_image": png()},
        {"first_image": png((255, 0, 0)), "last_image": png((0, 0, 255))},
        {"reference_images": (png((255, 0, 0)), png((0, 255, 0)))},
    ],
    ids=["image", "first-and-last", "references"],
)
def test_image_modes_show_the_prompt(tmp_path: Path, images: dict[str, Any]) -> None:
    a = _render(tmp_path, "a", prompt="a red fox", **images)
    again = _render(tmp_path, "again", prompt="a red fox", **images)
    b = _render(tmp_path, "b", prompt=REFERENCE_PROMPT, **images)
    assert a == again  # the render is deterministic, so the prompt alone makes b differ
    assert a != b
