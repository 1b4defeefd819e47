"""Every rule of the spec's scenario table, notes and error table, on the capability rows."""

from __future__ import annotations

from typing import Any

import pytest

from veo_gateway.api.spec_dialect import parse_spec_request
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.validation import estimate_tokens, validate_request
from veo_gateway.errors import InvalidArgument

CATALOG = Catalog()
STANDARD = "veo-3.1-generate-preview"
FAST = "veo-3.1-fast-generate-preview"
IMG = "https://example.com/a.png"


def ref(value: str = IMG, kind: str = "asset") -> dict[str, Any]:
    return {"image": {"bytesBase64Encoded": value}, "referenceType": kind}


def check(body: dict[str, Any]) -> None:
    request = parse_spec_request(body)
    validate_request(request, CATALOG.require(request.model))


def refused(body: dict[str, Any]) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        check(body)
    return info.value


@pytest.mark.parametrize("model", [STANDARD, FAST])
@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "a cat"},
        {"prompt": "a cat", "images": [IMG]},
        {"prompt": "a cat", "images": [IMG], "metadata": {"durationSeconds": 4}},
        {"prompt": "a cat", "images": [IMG], "metadata": {"durationSeconds": 6}},
        {"prompt": "a cat", "images": [IMG, IMG], "metadata": {"durationSeconds": 8}},
        {"prompt": "a cat", "images": [IMG, IMG]},
        {"prompt": "a cat", "metadata": {"aspectRatio": "9:16", "durationSeconds": 4}},
        {"prompt": "a cat", "metadata": {"resolution": "1080p", "durationSeconds": 8}},
        {"prompt": "a cat", "metadata": {"resolution": "4k"}},
        {
            "prompt": "a cat",
            "metadata": {"personGeneration": "allow_adult", "negativePrompt": "blur"},
        },
        {"prompt": "a cat", "metadata": {"seed": 7, "enhancePrompt": True}},
    ],
)
def test_the_spec_scenarios_pass(model: str, body: dict[str, Any]) -> None:
    check({"model": model, **body})


def test_reference_images_pass_on_the_standard_model() -> None:
    check(
        {
            "model": STANDARD,
            "prompt": "a cat",
            "metadata": {
                "aspectRatio": "16:9",
                "durationSeconds": 8,
                "referenceImages": [ref(), ref(), ref()],
            },
        }
    )
    check(
        {"model": STANDARD, "prompt": "a cat", "metadata": {"referenceImages": [ref(kind="ASSET")]}}
    )


@pytest.mark.parametrize("seconds", [4, 6])
@pytest.mark.parametrize("model", [STANDARD, FAST])
def test_interpolation_needs_8_seconds(model: str, seconds: int) -> None:
    error = refused(
        {
            "model": model,
            "prompt": "p",
            "images": [IMG, IMG],
            "metadata": {"durationSeconds": seconds},
        }
    )
    assert error.message == "Your use case is currently not supported."
    assert error.param == "metadata.durationSeconds"


@pytest.mark.parametrize("seconds", [4, 6])
def test_reference_images_need_8_seconds(seconds: int) -> None:
    error = refused(
        {
            "model": STANDARD,
            "prompt": "p",
            "metadata": {"durationSeconds": seconds, "referenceImages": [ref()]},
        }
    )
    assert error.message == "Your use case is currently not supported."


def test_reference_images_refused_on_the_fast_model() -> None:
    error = refused({"model": FAST, "prompt": "p", "metadata": {"referenceImages": [ref()]}})
    assert error.message == "`referenceImages` isn't supported by this model."
    assert error.param == "metadata.referenceImages"


@pytest.mark.parametrize("images", [[IMG], [IMG, IMG]])
def test_reference_images_never_with_images(images: list[str]) -> None:
    error = refused(
        {
            "model": STANDARD,
            "prompt": "p",
            "images": images,
            "metadata": {"durationSeconds": 8, "referenceImages": [ref()]},
        }
    )
    assert error.message == "`referenceImages` isn't supported by this model."


def test_at_most_three_reference_images() -> None:
    error = refused(
        {"model": STANDARD, "prompt": "p", "metadata": {"referenceImages": [ref()] * 4}}
    )
    assert error.message == "too many reference images"


def test_reference_images_only_16_9() -> None:
    error = refused(
        {
            "model": STANDARD,
            "prompt": "p",
            "metadata": {"aspectRatio": "9:16", "referenceImages": [ref()]},
        }
    )
    assert error.param == "metadata.aspectRatio"
    assert "16:9" in error.message


def test_reference_type_must_be_asset() -> None:
    error = refused(
        {
            "model": STANDARD,
            "prompt": "p",
            "metadata": {"referenceImages": [ref(), ref(kind="style")]},
        }
    )
    assert error.param == "metadata.referenceImages[1].referenceType"
    assert "asset" in error.message


def test_allow_all_is_refused_with_the_spec_message() -> None:
    error = refused({"model": FAST, "prompt": "p", "metadata": {"personGeneration": "allow_all"}})
    assert error.message == "allow_all for personGeneration is currently not supported"
    assert error.param == "metadata.personGeneration"


def test_other_person_generation_values_are_refused() -> None:
    error = refused({"model": FAST, "prompt": "p", "metadata": {"personGeneration": "everyone"}})
    assert "allow_adult" in error.message


@pytest.mark.parametrize("seconds", [1, 5, 7, 10, 12])
def test_durations_are_4_6_8(seconds: int) -> None:
    error = refused({"model": FAST, "prompt": "p", "metadata": {"durationSeconds": seconds}})
    assert error.param == "metadata.durationSeconds"
    assert "4, 6, 8" in error.message


def test_veo2_takes_5_to_8_seconds() -> None:
    check({"model": "veo-2.0-generate-001", "prompt": "p", "metadata": {"durationSeconds": 5}})
    assert (
        "5, 6, 7, 8"
        in refused(
            {"model": "veo-2.0-generate-001", "prompt": "p", "metadata": {"durationSeconds": 4}}
        ).message
    )


@pytest.mark.parametrize("ratio", ["1:1", "4:3", "21:9", "16/9"])
def test_aspect_ratios(ratio: str) -> None:
    error = refused({"model": FAST, "prompt": "p", "metadata": {"aspectRatio": ratio}})
    assert error.param == "metadata.aspectRatio"
    assert "16:9, 9:16" in error.message


def test_unknown_resolution() -> None:
    error = refused({"model": FAST, "prompt": "p", "metadata": {"resolution": "480p"}})
    assert "720p, 1080p, 4k" in error.message


@pytest.mark.parametrize("resolution", ["1080p", "4k"])
@pytest.mark.parametrize("seconds", [4, 6])
def test_high_resolutions_need_8_seconds(resolution: str, seconds: int) -> None:
    error = refused(
        {
            "model": STANDARD,
            "prompt": "p",
            "metadata": {"resolution": resolution, "durationSeconds": seconds},
        }
    )
    assert error.param == "metadata.resolution"
    assert "needs durationSeconds 8" in error.message


def test_lite_has_no_4k() -> None:
    error = refused(
        {"model": "veo-3.1-lite-generate-preview", "prompt": "p", "metadata": {"resolution": "4k"}}
    )
    assert "720p, 1080p" in error.message


def test_at_most_two_images() -> None:
    error = refused({"model": FAST, "prompt": "p", "images": [IMG, IMG, IMG]})
    assert error.param == "images"


@pytest.mark.parametrize("prompt", ["", "   ", "\n"])
def test_empty_prompt(prompt: str) -> None:
    assert refused({"model": FAST, "prompt": prompt}).param == "prompt"


def test_prompt_over_the_token_limit() -> None:
    check({"model": FAST, "prompt": "word " * 800})  # about 1000 tokens
    assert refused({"model": FAST, "prompt": "word " * 900}).param == "prompt"
    assert refused({"model": FAST, "prompt": "猫" * 1025}).param == "prompt"


def test_token_estimate() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("一只猫") == 3


def test_unknown_model_lists_the_known_ones() -> None:
    error = refused({"model": "veo-9", "prompt": "p"})
    assert error.param == "model"
    assert STANDARD in error.message and FAST in error.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], "body"),
        ({"prompt": "p"}, "model"),
        ({"model": FAST}, "prompt"),
        ({"model": 3, "prompt": "p"}, "model"),
        ({"model": FAST, "prompt": ["p"]}, "prompt"),
        ({"model": FAST, "prompt": "p", "images": "x"}, "images"),
        ({"model": FAST, "prompt": "p", "images": [3]}, "images[0]"),
        ({"model": FAST, "prompt": "p", "images": [""]}, "images[0]"),
        ({"model": FAST, "prompt": "p", "metadata": []}, "metadata"),
        (
            {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": "8"}},
            "metadata.durationSeconds",
        ),
        (
            {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": True}},
            "metadata.durationSeconds",
        ),
        (
            {"model": FAST, "prompt": "p", "metadata": {"durationSeconds": 6.5}},
            "metadata.durationSeconds",
        ),
        ({"model": FAST, "prompt": "p", "metadata": {"aspectRatio": 16}}, "metadata.aspectRatio"),
        (
            {"model": FAST, "prompt": "p", "metadata": {"referenceImages": {}}},
            "metadata.referenceImages",
        ),
        (
            {"model": STANDARD, "prompt": "p", "metadata": {"referenceImages": ["x"]}},
            "metadata.referenceImages[0]",
        ),
        (
            {"model": STANDARD, "prompt": "p", "metadata": {"referenceImages": [{"image": {}}]}},
            "metadata.referenceImages[0].image.bytesBase64Encoded",
        ),
        ({"model": FAST, "prompt": "p", "size": "1280x720"}, "size"),
    ],
)
def test_wrong_shapes_name_their_field(body: Any, param: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check(body)
    assert info.value.param == param


def test_unknown_metadata_keys_pass_through() -> None:
    request = parse_spec_request(
        {"model": FAST, "prompt": "p", "metadata": {"seed": 3, "durationSeconds": 8}}
    )
    assert request.extra_parameters == {"seed": 3}
    assert request.duration_seconds == 8
