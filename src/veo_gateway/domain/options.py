"""Veo's other options: several samples, a seed, audio on or off, prompt enhancement, how an
image is fitted, and the compression of the result.

They arrive in the request's `metadata` under Google's own names (`sampleCount`, `seed`,
`generateAudio`, `enhancePrompt`, `resizeMode`, `compressionQuality`) and are checked here
against the model and against every upstream kind its route may send it to: a route's
credentials are chosen at submission, so an option is taken only when each of them would take
it. The Gemini API refuses what the google-genai SDK refuses in its mode (everything but
`sampleCount` and `enhancePrompt`), and makes one video per request for Veo 3.x.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from veo_gateway.domain.catalog import Catalog, ModelCapabilities
from veo_gateway.domain.request import Image, ImageSource, VideoRequest
from veo_gateway.errors import InvalidArgument

ImageT = TypeVar("ImageT", ImageSource, Image)

SAMPLE_COUNT = "sampleCount"
SEED = "seed"
GENERATE_AUDIO = "generateAudio"
ENHANCE_PROMPT = "enhancePrompt"
RESIZE_MODE = "resizeMode"
COMPRESSION_QUALITY = "compressionQuality"
OPTION_KEYS = (SAMPLE_COUNT, SEED, GENERATE_AUDIO, ENHANCE_PROMPT, RESIZE_MODE, COMPRESSION_QUALITY)

MAX_SEED = 2**32 - 1  # Google's seed is an unsigned 32-bit number
# Google's enum values, as its SDK writes them; clients may send either case.
RESIZE_MODES = ("PAD", "CROP")
COMPRESSION_QUALITIES = ("OPTIMIZED", "LOSSLESS")

KIND_NAMES = {"gemini": "the Gemini API", "vertex": "Vertex AI"}
# What each upstream kind takes. On the Gemini API, google-genai refuses the others ("only
# supported in Gemini Enterprise Agent Platform mode"). Other `metadata` keys are not the
# gateway's to judge: they go to Google untouched, and Google answers for them.
ACCEPTED: Mapping[str, frozenset[str]] = {
    "gemini": frozenset({SAMPLE_COUNT, ENHANCE_PROMPT}),
    "vertex": frozenset(OPTION_KEYS),
}
GEMINI_REFUSES = frozenset(OPTION_KEYS) - ACCEPTED["gemini"]


@dataclass(frozen=True)
class Options:
    """The options of one request, checked (None: Google's default)."""

    sample_count: int = 1
    seed: int | None = None
    generate_audio: bool | None = None
    enhance_prompt: bool | None = None
    resize_mode: str | None = None
    compression_quality: str | None = None

    def audio(self, row: ModelCapabilities) -> bool:
        """Whether the videos have a soundtrack (what the price depends on)."""
        return row.audio if self.generate_audio is None else self.generate_audio

    def parameters(self) -> dict[str, Any]:
        """The options as Google's `parameters`, in its spelling (unset ones left out)."""
        values = {
            SAMPLE_COUNT: self.sample_count if self.sample_count != 1 else None,
            SEED: self.seed,
            GENERATE_AUDIO: self.generate_audio,
            ENHANCE_PROMPT: self.enhance_prompt,
            RESIZE_MODE: self.resize_mode,
            COMPRESSION_QUALITY: self.compression_quality,
        }
        return {key: value for key, value in values.items() if value is not None}


def max_samples(row: ModelCapabilities, kinds: Collection[str]) -> int:
    """How many samples one request may ask for when any of `kinds` may serve it."""
    limits = [row.gemini_max_samples if kind == "gemini" else row.max_samples for kind in kinds]
    return min(limits, default=row.max_samples)


def accepted(kinds: Collection[str]) -> list[str]:
    """The options every one of `kinds` takes, in `OPTION_KEYS` order."""
    return [key for key in OPTION_KEYS if all(key in ACCEPTED.get(kind, ()) for kind in kinds)]


def _param(key: str) -> str:
    return f"metadata.{key}"


def _whole(value: Any, key: str, low: int, high: int) -> int:
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not low <= value <= high:
        raise InvalidArgument(
            f"{key} must be a whole number from {low} to {high}; got {value!r}", param=_param(key)
        )
    return int(value)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{key} must be true or false; got {value!r}", param=_param(key))
    return value


def _enum(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.upper() not in allowed:
        names = ", ".join(f"{name.lower()!r}" for name in allowed)
        raise InvalidArgument(f"{key} must be one of {names}; got {value!r}", param=_param(key))
    return value.upper()


def read_options(
    metadata: Mapping[str, Any],
    row: ModelCapabilities,
    kinds: Collection[str],
    *,
    elsewhere: Collection[str] = (),
    has_image: bool = False,
) -> Options:
    """The options in `metadata` for `row` served by `kinds`, or a 400 for the first one that
    cannot be taken: the message says which upstream refuses it, and `elsewhere` (models of
    this gateway whose routes do take it) what to use instead."""
    for key in sorted(set(metadata) & GEMINI_REFUSES):
        if "gemini" in kinds and metadata[key] is not None:
            instead = f"; models served by Vertex AI here take it: {', '.join(elsewhere)}"
            raise InvalidArgument(
                f"{key} isn't supported by the Gemini API, which {row.name} is routed to here "
                "(Google's SDK refuses it there too); Vertex AI takes it"
                + (instead if elsewhere else ""),
                param=_param(key),
            )
    limit = max_samples(row, kinds)
    count = 1
    if (value := metadata.get(SAMPLE_COUNT)) is not None:
        if limit == 1 and value != 1:
            where = " and ".join(
                KIND_NAMES.get(kind, kind)
                for kind in sorted(kinds)
                if max_samples(row, (kind,)) == 1
            )
            instead = f" Vertex AI makes up to {row.max_samples}" + (
                f"; models served by it here: {', '.join(elsewhere)}" if elsewhere else ""
            )
            raise InvalidArgument(
                f"sampleCount must be 1 for {row.name} on {where} (its route here), which makes "
                f"one video per request (got {value!r}).{instead}",
                param=_param(SAMPLE_COUNT),
            )
        count = _whole(value, SAMPLE_COUNT, 1, limit)
    seed = None if metadata.get(SEED) is None else _whole(metadata[SEED], SEED, 0, MAX_SEED)
    audio = None
    if metadata.get(GENERATE_AUDIO) is not None:
        audio = _flag(metadata[GENERATE_AUDIO], GENERATE_AUDIO)
        if audio and not row.audio:
            raise InvalidArgument(
                f"generateAudio: {row.name} makes videos without sound",
                param=_param(GENERATE_AUDIO),
            )
    enhance = metadata.get(ENHANCE_PROMPT)
    resize = metadata.get(RESIZE_MODE)
    if resize is not None:
        resize = _enum(resize, RESIZE_MODE, RESIZE_MODES)
        if not has_image:
            raise InvalidArgument(
                "resizeMode says how a first image is fitted to the video: it needs an image",
                param=_param(RESIZE_MODE),
            )
    quality = metadata.get(COMPRESSION_QUALITY)
    return Options(
        sample_count=count,
        seed=seed,
        generate_audio=audio,
        enhance_prompt=None if enhance is None else _flag(enhance, ENHANCE_PROMPT),
        resize_mode=resize,
        compression_quality=(
            None if quality is None else _enum(quality, COMPRESSION_QUALITY, COMPRESSION_QUALITIES)
        ),
    )


def check_options(
    request: VideoRequest[ImageT], row: ModelCapabilities, catalog: Catalog
) -> tuple[VideoRequest[ImageT], Options]:
    """The request with its options checked and written in Google's spelling, and the options;
    a 400 for the first option its route cannot take."""
    vertex_only = [name for name in catalog if catalog.kinds(name) == {"vertex"}]
    options = read_options(
        request.extra_parameters,
        row,
        catalog.kinds(row.name),
        elsewhere=vertex_only,
        has_image=request.image is not None,
    )
    rest = {k: v for k, v in request.extra_parameters.items() if k not in OPTION_KEYS}
    return dataclasses.replace(request, extra_parameters={**rest, **options.parameters()}), options


def options_of(request: Mapping[str, Any]) -> Options:
    """The options of a stored request (already checked when it was created)."""
    extra = request.get("extra_parameters") or {}
    return Options(
        sample_count=int(extra.get(SAMPLE_COUNT) or 1),
        seed=extra.get(SEED),
        generate_audio=extra.get(GENERATE_AUDIO),
        enhance_prompt=extra.get(ENHANCE_PROMPT),
        resize_mode=extra.get(RESIZE_MODE),
        compression_quality=extra.get(COMPRESSION_QUALITY),
    )
