"""Rules a request must pass before anything goes upstream, read from the model's capability row.

The messages that the spec (and Google) quote are kept word for word; `param` names the field.
"""

from __future__ import annotations

import math
from typing import Any

from veo_gateway.domain.catalog import ModelCapabilities
from veo_gateway.domain.interactions import check_interactions
from veo_gateway.domain.request import VideoRequest
from veo_gateway.errors import InvalidArgument

# Google's own messages, as the spec quotes them.
USE_CASE_NOT_SUPPORTED = "Your use case is currently not supported."
REFERENCE_IMAGES_NOT_SUPPORTED = "`referenceImages` isn't supported by this model."
ALLOW_ALL_NOT_SUPPORTED = "allow_all for personGeneration is currently not supported"
TOO_MANY_REFERENCE_IMAGES = "too many reference images"

PERSON_GENERATION_VALUES = ("allow_adult",)
REFERENCE_TYPES = ("asset",)

_REFS = "metadata.referenceImages"


def estimate_tokens(text: str) -> int:
    """A conservative token estimate: one per non-ASCII character, one per 4 ASCII characters.

    Google's tokenizer is not available offline; CJK text runs about one token per character and
    English about four characters per token, so this errs towards refusing early rather than
    paying a round trip to learn the prompt was too long.
    """
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return non_ascii + math.ceil((len(text) - non_ascii) / 4)


def _one_of(values: tuple[Any, ...]) -> str:
    return ", ".join(str(v) for v in values)


def validate_request(request: VideoRequest[Any], row: ModelCapabilities) -> None:
    """Raise InvalidArgument for the first rule `request` breaks on the model `row`."""
    if row.protocol == "interactions":
        check_interactions(request, row)
    _check_prompt(request, row)
    _check_frames(request, row)
    _check_references(request, row)
    _check_options(request, row)
    _check_combinations(request, row)


def _check_prompt(request: VideoRequest[Any], row: ModelCapabilities) -> None:
    if not request.prompt.strip():
        raise InvalidArgument("prompt must not be empty", param="prompt")
    tokens = estimate_tokens(request.prompt)
    if tokens > row.max_prompt_tokens:
        raise InvalidArgument(
            f"prompt is too long: about {tokens} tokens, the limit is {row.max_prompt_tokens}",
            param="prompt",
        )
    if request.negative_prompt is not None and (
        estimate_tokens(request.negative_prompt) > row.max_prompt_tokens
    ):
        raise InvalidArgument(
            f"negativePrompt is too long: the limit is {row.max_prompt_tokens} tokens",
            param="metadata.negativePrompt",
        )


def _check_frames(request: VideoRequest[Any], row: ModelCapabilities) -> None:
    if request.last_frame is not None and request.image is None:
        raise InvalidArgument("a last frame needs a first image", param="lastFrame")
    if request.image is not None and not row.image_to_video:
        raise InvalidArgument(
            f"image-to-video isn't supported by {row.name}", param=request.image.field
        )
    if request.last_frame is not None and not row.last_frame:
        raise InvalidArgument(
            f"a last frame (interpolation) isn't supported by {row.name}",
            param=request.last_frame.field,
        )


def _check_references(request: VideoRequest[Any], row: ModelCapabilities) -> None:
    refs = request.reference_images
    if not refs:
        return
    if not row.max_reference_images or request.image is not None:
        raise InvalidArgument(REFERENCE_IMAGES_NOT_SUPPORTED, param=_REFS)
    if len(refs) > row.max_reference_images:
        raise InvalidArgument(TOO_MANY_REFERENCE_IMAGES, param=_REFS)
    for index, ref in enumerate(refs):
        if ref.reference_type.lower() not in REFERENCE_TYPES:
            raise InvalidArgument(
                f"referenceType must be one of: {_one_of(REFERENCE_TYPES)}; "
                f"got {ref.reference_type!r}",
                param=f"{_REFS}[{index}].referenceType",
            )


def _check_options(request: VideoRequest[Any], row: ModelCapabilities) -> None:
    if request.duration_seconds is not None and request.duration_seconds not in row.durations:
        raise InvalidArgument(
            f"durationSeconds must be one of {_one_of(row.durations)} for {row.name}; "
            f"got {request.duration_seconds}",
            param="metadata.durationSeconds",
        )
    if request.aspect_ratio is not None and request.aspect_ratio not in row.aspect_ratios:
        raise InvalidArgument(
            f"aspectRatio must be one of {_one_of(row.aspect_ratios)} for {row.name}; "
            f"got {request.aspect_ratio!r}",
            param="metadata.aspectRatio",
        )
    if request.resolution is not None and request.resolution not in row.resolutions:
        raise InvalidArgument(
            f"resolution must be one of {_one_of(row.resolutions)} for {row.name}; "
            f"got {request.resolution!r}",
            param="metadata.resolution",
        )
    person = request.person_generation
    if person == "allow_all":
        raise InvalidArgument(ALLOW_ALL_NOT_SUPPORTED, param="metadata.personGeneration")
    if person is not None and person not in PERSON_GENERATION_VALUES:
        raise InvalidArgument(
            f"personGeneration must be {_one_of(PERSON_GENERATION_VALUES)} or unset; "
            f"got {person!r}",
            param="metadata.personGeneration",
        )


def _check_combinations(request: VideoRequest[Any], row: ModelCapabilities) -> None:
    duration = request.duration_seconds
    needs_long = request.last_frame is not None or (
        bool(request.reference_images) and row.references_need_long
    )
    if needs_long and duration is not None and duration != row.long_duration:
        raise InvalidArgument(USE_CASE_NOT_SUPPORTED, param="metadata.durationSeconds")
    if (
        request.reference_images
        and request.aspect_ratio is not None
        and request.aspect_ratio not in row.reference_aspect_ratios
    ):
        raise InvalidArgument(
            f"referenceImages need aspectRatio {_one_of(row.reference_aspect_ratios)}; "
            f"got {request.aspect_ratio!r}",
            param="metadata.aspectRatio",
        )
    if (
        request.resolution in row.resolutions_need_8s
        and duration is not None
        and duration != row.long_duration
    ):
        raise InvalidArgument(
            f"resolution {request.resolution} needs durationSeconds {row.long_duration}; "
            f"got {duration}",
            param="metadata.resolution",
        )
