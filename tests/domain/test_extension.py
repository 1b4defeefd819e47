"""Google's rules for the video an extension continues, judged per upstream kind of a route."""

from __future__ import annotations

import time

import pytest

from veo_gateway.domain.catalog import BUILTIN_MODELS, Catalog
from veo_gateway.domain.extension import (
    Clip,
    check_extension,
    output_seconds,
    video_seconds,
)
from veo_gateway.domain.request import SourceVideo, VideoRequest
from veo_gateway.errors import FailedPrecondition, InvalidArgument

CATALOG = Catalog()
FAST = CATALOG["veo-3.1-fast-generate-preview"]
URI = "https://host.test/v1beta/files/abc:download?alt=media"
NOW = time.time()
BOTH = ("gemini", "vertex")


def clip(**fields: object) -> Clip:
    values: dict[str, object] = {
        "seconds": 8.0,
        "width": 1280,
        "height": 720,
        "fps": 24.0,
        "task_id": "video_1",
        "upstream_uri": URI,
        "made_at": NOW - 60,
    }
    values.update(fields)
    return Clip(**values)  # type: ignore[arg-type]


def judge(source: Clip, kinds: tuple[str, ...] = BOTH, **request: object) -> None:
    wanted = VideoRequest[object](
        model=FAST.name, prompt="on", video=SourceVideo(task_id="video_1"), **request
    )  # type: ignore[arg-type]
    check_extension(wanted, FAST, kinds, source, NOW, extenders=("x",))


def test_which_models_extend() -> None:
    assert {row.name for row in BUILTIN_MODELS if row.extension} == {
        "veo-3.1-generate-preview",
        "veo-3.1-generate-001",
        "veo-3.1-fast-generate-preview",
        "veo-3.1-fast-generate-001",
    }


def test_a_video_both_upstreams_take() -> None:
    judge(clip())
    judge(clip(width=720, height=1280))  # 9:16
    judge(clip(seconds=30.0), ("gemini", "vertex"))
    judge(clip(seconds=141.0, fps=30.0), ("gemini",))


@pytest.mark.parametrize(
    ("source", "kinds", "words"),
    [
        (clip(seconds=142.0), ("gemini",), "at most 141 s"),
        (clip(width=1920, height=1080), ("gemini",), "is 1080p"),
        (clip(upstream_uri=None), ("gemini",), "was not made on the Gemini API"),
        (clip(task_id=None, upstream_uri=None), ("gemini",), "not a video this gateway made"),
        (clip(width=640, height=480), ("vertex",), "16:9 or 9:16"),
        (clip(seconds=31.0), ("vertex",), "1 to 30 s"),
        (clip(seconds=0.5), ("vertex",), "1 to 30 s"),
        (clip(fps=25.0), ("vertex",), "24 fps"),
        # Both kinds: the stricter rule of either.
        (clip(seconds=40.0), BOTH, "1 to 30 s"),
        (clip(upstream_uri=None), BOTH, "was not made on the Gemini API"),
    ],
)
def test_what_each_upstream_refuses(source: Clip, kinds: tuple[str, ...], words: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        judge(source, kinds)
    assert words in refused.value.message and refused.value.param == "video"


def test_a_gemini_api_video_is_gone_upstream_after_two_days() -> None:
    old = clip(made_at=NOW - 2 * 86400 - 60)
    with pytest.raises(FailedPrecondition, match="gone upstream"):
        judge(old, ("gemini",))
    judge(old, ("vertex",))  # Vertex is sent the bytes: the age does not matter there


def test_the_request_around_the_video() -> None:
    with pytest.raises(InvalidArgument, match="durationSeconds 8"):
        judge(clip(), duration_seconds=4)
    with pytest.raises(InvalidArgument, match="made at 720p"):
        judge(clip(), resolution="1080p")
    lite = CATALOG["veo-3.1-lite-generate-preview"]
    wanted = VideoRequest[object](model=lite.name, prompt="on", video=SourceVideo(task_id="v"))
    with pytest.raises(InvalidArgument, match="cannot extend videos"):
        check_extension(wanted, lite, BOTH, clip(), NOW)


def test_an_extension_is_its_source_and_seven_seconds_more() -> None:
    assert output_seconds(4.04) == 11
    assert video_seconds({"duration_seconds": 6}) == 6
    assert video_seconds({"video": {"seconds": 11.0}}) == 18
