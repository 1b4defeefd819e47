"""The logical requests both google-genai lines (2.x and 3.x) are compared with the adapters on.

Each `Case` is one request as `GenerateVideosConfig` fields and images, and as the gateway's
normalized `VideoRequest`; `tests/emulator/test_sdk.py` (2.x) and `tests/emulator/sdk3_suite.py`
(3.x) send it both ways and compare the bodies captured at the emulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.genai import types

from tests.emulator.conftest import FAST, STANDARD, png
from veo_gateway.domain.request import Image, ReferenceImage, VideoRequest

RED, BLUE, GREEN = png((220, 30, 30)), png((30, 30, 220)), png((30, 200, 60))
# GenerateVideosConfig fields the gateway's request has a field of its own for; any other
# option (`number_of_videos`) reaches the upstream as an extra parameter under Google's name.
_OWN_FIELDS = ("aspect_ratio", "duration_seconds", "negative_prompt", "person_generation")
_EXTRA_PARAMETERS = {"number_of_videos": "sampleCount"}


def sdk_image(data: bytes) -> types.Image:
    """An inline PNG as the SDK takes it."""
    return types.Image(image_bytes=data, mime_type="image/png")


@dataclass(frozen=True)
class Case:
    """One logical request, as SDK arguments and as the gateway's normalized request."""

    name: str
    model: str
    prompt: str
    image: bytes | None = None
    last_frame: bytes | None = None
    references: tuple[bytes, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()  # (GenerateVideosConfig field, value)

    def sdk_image(self) -> types.Image | None:
        """The first frame as the SDK takes it, if there is one."""
        return None if self.image is None else sdk_image(self.image)

    def sdk_config(self, **extra: Any) -> types.GenerateVideosConfig | None:
        """The SDK's config for this case (`extra`: more fields, e.g. output_gcs_uri)."""
        config: dict[str, Any] = dict(self.options) | extra
        if self.last_frame is not None:
            config["last_frame"] = sdk_image(self.last_frame)
        if self.references:
            config["reference_images"] = [
                types.VideoGenerationReferenceImage(
                    image=sdk_image(data),
                    reference_type=types.VideoGenerationReferenceType.ASSET,
                )
                for data in self.references
            ]
        return types.GenerateVideosConfig(**config) if config else None

    def request(self, model: str) -> VideoRequest[Image]:
        """The same request as the gateway hands it to an adapter."""

        def image(data: bytes | None, field: str) -> Image | None:
            return None if data is None else Image(data=data, mime_type="image/png", field=field)

        options = dict(self.options)
        return VideoRequest(
            model=model,
            prompt=self.prompt,
            image=image(self.image, "images[0]"),
            last_frame=image(self.last_frame, "images[1]"),
            reference_images=tuple(
                ReferenceImage(image=Image(data=data, mime_type="image/png", field="ref"))
                for data in self.references
            ),
            resolution=options.get("resolution"),
            extra_parameters={
                google: options[field]
                for field, google in _EXTRA_PARAMETERS.items()
                if field in options
            },
            **{field: options.get(field) for field in _OWN_FIELDS},
        )


CASES = [
    Case("text", FAST, "a red kite over hills"),
    Case("image", FAST, "the picture comes alive", image=RED),
    Case("first and last frame", STANDARD, "from red to blue", image=RED, last_frame=BLUE),
    Case(
        "reference images",
        STANDARD,
        "a walk in the park",
        references=(RED, GREEN),
        options=(("duration_seconds", 8), ("aspect_ratio", "16:9")),
    ),
    Case("aspect ratio", FAST, "tall", options=(("aspect_ratio", "9:16"),)),
    Case("duration", FAST, "short", options=(("duration_seconds", 6),)),
    Case("negative prompt", FAST, "calm", options=(("negative_prompt", "no people, no text"),)),
    Case("person generation", FAST, "crowd", options=(("person_generation", "allow_adult"),)),
    Case(
        "resolution",
        STANDARD,
        "sharp",
        options=(("resolution", "1080p"), ("duration_seconds", 8)),
    ),
    Case(
        "everything",
        STANDARD,
        "all of it",
        image=RED,
        last_frame=GREEN,
        options=(
            ("aspect_ratio", "16:9"),
            ("duration_seconds", 8),
            ("negative_prompt", "blur"),
            ("person_generation", "allow_adult"),
            ("resolution", "1080p"),
        ),
    ),
]
# Vertex takes what the Gemini API does, and several samples (the SDK's number_of_videos).
VERTEX_CASES = [
    *(case for case in CASES if case.model == STANDARD),
    *CASES[0:2],  # text, image
    CASES[4],
    Case("number of videos", FAST, "two takes", options=(("number_of_videos", 2),)),
]
