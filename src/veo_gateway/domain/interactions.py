"""The rules Gemini Omni (the Interactions API) does not share with Veo.

Omni's create takes a prompt, images as content blocks and a video response format (aspect
ratio, resolution, duration); it has no negative prompt, no personGeneration and none of Veo's
`parameters`, so each of them is refused by name rather than dropped. Durations, resolutions
and aspect ratios are the row's, checked by the common rules.
"""

from __future__ import annotations

from typing import Any

from veo_gateway.domain.catalog import ModelCapabilities
from veo_gateway.domain.request import VideoRequest
from veo_gateway.errors import InvalidArgument


def check_interactions(request: VideoRequest[Any], row: ModelCapabilities) -> None:
    """Raise InvalidArgument for what an Interactions model cannot take."""
    unsupported = (
        f"isn't supported by {row.name} (Gemini Omni's Interactions API has no such option)"
    )
    if request.negative_prompt is not None:
        raise InvalidArgument(f"negativePrompt {unsupported}", param="metadata.negativePrompt")
    if request.person_generation is not None:
        raise InvalidArgument(f"personGeneration {unsupported}", param="metadata.personGeneration")
    for key in sorted(request.extra_parameters):
        if request.extra_parameters[key] is not None:
            raise InvalidArgument(
                f"{key} {unsupported}; it takes aspectRatio, resolution, durationSeconds and "
                "referenceImages",
                param=f"metadata.{key}",
            )
    if request.image is not None and request.reference_images:
        raise InvalidArgument(
            f"{row.name} makes a video from a first image or from reference images, not both",
            param="metadata.referenceImages",
        )
