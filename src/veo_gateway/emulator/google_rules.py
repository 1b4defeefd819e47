"""Google's rules for a Veo request, and the video it makes: per model and per protocol.

Written from Google's documents (the Gemini API's video guide, Vertex AI's Veo reference) and the
google-genai SDK's source (`models.py`: what it refuses in each mode), and kept apart from the
gateway's own `domain/` on purpose: the emulator must not agree with the gateway by
construction, or a gateway rule that drifts from Google's could never be caught by a test
(`tests/emulator/test_agreement.py` sends what the gateway accepts here). Refusals are Google's
``400 INVALID_ARGUMENT`` with messages in Google's style; those Google is known to send are kept
word for word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from veo_gateway.emulator.submission import Submission
from veo_gateway.errors import InvalidArgument

Protocol = Literal["gemini", "vertex"]

# Messages Google is known to answer with, word for word.
USE_CASE_NOT_SUPPORTED = "Your use case is currently not supported."
REFERENCES_NOT_SUPPORTED = "`referenceImages` isn't supported by this model."

ASPECT_RATIOS = ("16:9", "9:16")
DEFAULT_DURATION = 8  # seconds, every model
DEFAULT_ASPECT_RATIO = "16:9"
DEFAULT_RESOLUTION = "720p"
LONG_DURATION = 8  # what interpolation, reference images and 1080p / 4k need
REFERENCE_ASPECT_RATIOS = ("16:9",)
PERSON_GENERATION = ("dont_allow", "allow_adult", "allow_all")
MAX_PROMPT_TOKENS = 1024
MAX_SAMPLES = 4  # Vertex AI: up to 4 videos per request, every model
MAX_SEED = 2**32 - 1
# Parameters only Vertex AI takes: the SDK refuses each of them in Gemini API mode.
VERTEX_ONLY = frozenset(
    {"storageUri", "generateAudio", "fps", "compressionQuality", "resizeMode", "pubsubTopic"}
)


@dataclass(frozen=True)
class ModelRules:
    """What Google lets one Veo model do."""

    name: str
    durations: tuple[int, ...] = (4, 6, 8)
    resolutions: tuple[str, ...] = ("720p",)
    audio: bool = True  # a soundtrack unless asked otherwise (Vertex's generateAudio)
    last_frame: bool = True
    reference_images: int = 0  # how many; 0: none
    person_generation: tuple[str, ...] = ("allow_adult",)
    # Resolutions above 720p are only rendered at 8 seconds.
    long_resolutions: frozenset[str] = field(default_factory=lambda: frozenset({"1080p", "4k"}))
    # Videos per request on the Gemini API (`numberOfVideos`): one for Veo 3.x.
    gemini_samples: int = 1
    # Whether it extends a video (`instances[0].video`): Veo 3.1 and 3.1 Fast, not Lite.
    extension: bool = False


def _veo31(name: str, *, references: int = 0) -> ModelRules:
    return ModelRules(
        name, resolutions=("720p", "1080p", "4k"), reference_images=references, extension=True
    )


def _veo3(name: str) -> ModelRules:
    return ModelRules(name, resolutions=("720p", "1080p"))


_VEO2 = ModelRules(
    "veo-2.0-generate-001",
    durations=(5, 6, 7, 8),
    audio=False,
    person_generation=("dont_allow", "allow_adult"),
    gemini_samples=2,
)

# Veo 2.0 and 3.0 were retired on 2026-06-30; they stay, with the rules they had, for operators
# whose routes still name them.
_GEMINI = (
    _veo31("veo-3.1-generate-preview", references=3),
    _veo31("veo-3.1-fast-generate-preview"),
    _veo3("veo-3.1-lite-generate-preview"),
    _veo3("veo-3.0-generate-001"),
    _veo3("veo-3.0-fast-generate-001"),
    _VEO2,
)
# Vertex AI serves the GA `-001` ids of Veo 3.1 (and Lite's, in preview) beside the previews.
_VERTEX = (
    _veo31("veo-3.1-generate-001", references=3),
    _veo31("veo-3.1-fast-generate-001"),
    _veo31("veo-3.1-generate-preview", references=3),
    _veo31("veo-3.1-fast-generate-preview"),
    _veo3("veo-3.1-lite-generate-001"),
    _veo3("veo-3.0-generate-001"),
    _veo3("veo-3.0-fast-generate-001"),
    _VEO2,
)
MODELS: Mapping[Protocol, Mapping[str, ModelRules]] = {
    "gemini": {rules.name: rules for rules in _GEMINI},
    "vertex": {rules.name: rules for rules in _VERTEX},
}


@dataclass(frozen=True)
class Output:
    """The video a request makes."""

    seconds: int
    aspect_ratio: str
    resolution: str
    audio: bool


def judge(submission: Submission, protocol: Protocol) -> Output:
    """The video `submission` makes on `protocol`, or Google's 400 for the first rule it breaks.

    The model must be one `protocol` serves (see `MODELS`); the caller answers 404 otherwise.
    """
    rules = MODELS[protocol][submission.model]
    parameters = submission.parameters
    if protocol == "gemini":
        for key in parameters:
            if key in VERTEX_ONLY:
                raise InvalidArgument(f"`{key}` isn't supported by the Gemini API.")
    duration = _duration(parameters, rules)
    aspect_ratio = _choice(parameters, "aspectRatio", ASPECT_RATIOS, rules.name)
    resolution = _choice(parameters, "resolution", rules.resolutions, rules.name)
    _check_prompt(submission)
    _check_frames(submission, rules, duration)
    _check_references(submission, rules, duration, aspect_ratio)
    if resolution in rules.long_resolutions and duration not in (None, LONG_DURATION):
        raise InvalidArgument(
            f"Resolution {resolution} is only supported with durationSeconds {LONG_DURATION}."
        )
    _check_person_generation(parameters, rules)
    _check_other_parameters(
        parameters, MAX_SAMPLES if protocol == "vertex" else rules.gemini_samples
    )
    if submission.video is not None:
        return _extension(submission, rules, protocol, duration, resolution, aspect_ratio)
    return Output(
        seconds=duration or DEFAULT_DURATION,
        aspect_ratio=aspect_ratio or DEFAULT_ASPECT_RATIO,
        resolution=resolution or DEFAULT_RESOLUTION,
        audio=_audio(parameters, rules, protocol),
    )


def estimate_tokens(text: str) -> int:
    """Roughly what a subword tokenizer makes of `text`: a token per short run of Latin letters
    (up to 6), per up to 3 digits, and per any other visible character (CJK, punctuation)."""
    return len(re.findall(r"[A-Za-z]{1,6}|[0-9]{1,3}|\S", text))


def _check_prompt(submission: Submission) -> None:
    # Vertex's reference: the prompt is "required for text-to-video, optional if an input image
    # prompt is provided".
    if not submission.prompt.strip() and submission.image is None:
        raise InvalidArgument("A text prompt is required for text-to-video generation.")
    for name, text in (("prompt", submission.prompt), ("negativePrompt", _negative(submission))):
        tokens = estimate_tokens(text)
        if tokens > MAX_PROMPT_TOKENS:
            raise InvalidArgument(
                f"The {name} is too long: {tokens} tokens, more than the maximum of "
                f"{MAX_PROMPT_TOKENS}."
            )


def _negative(submission: Submission) -> str:
    value = submission.parameters.get("negativePrompt")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument("Invalid value at 'parameters.negativePrompt': expected a string.")
    return value


def _check_frames(submission: Submission, rules: ModelRules, duration: int | None) -> None:
    if submission.last_frame is None:
        return
    if not rules.last_frame:
        raise InvalidArgument("`lastFrame` isn't supported by this model.")
    if submission.image is None:
        raise InvalidArgument("`lastFrame` is only supported together with `image`.")
    if duration not in (None, LONG_DURATION):
        raise InvalidArgument(USE_CASE_NOT_SUPPORTED)


def _check_references(
    submission: Submission, rules: ModelRules, duration: int | None, aspect_ratio: str | None
) -> None:
    references = submission.references
    if not references:
        return
    if not rules.reference_images:
        raise InvalidArgument(REFERENCES_NOT_SUPPORTED)
    if submission.image is not None or submission.last_frame is not None:
        raise InvalidArgument(USE_CASE_NOT_SUPPORTED)
    if len(references) > rules.reference_images:
        raise InvalidArgument(
            f"Too many reference images: {len(references)}; at most "
            f"{rules.reference_images} are supported."
        )
    for index, reference in enumerate(references):
        # ASSET only: the SDK refuses STYLE on the Gemini API, and Vertex takes it from
        # veo-2.0-generate-exp alone.
        if reference.kind != "asset":
            raise InvalidArgument(
                f"referenceImages[{index}].referenceType {reference.kind!r} isn't supported by "
                "this model."
            )
    if duration not in (None, LONG_DURATION):
        raise InvalidArgument(USE_CASE_NOT_SUPPORTED)
    if aspect_ratio not in (None, *REFERENCE_ASPECT_RATIOS):
        raise InvalidArgument(
            f"referenceImages are only supported with aspectRatio "
            f"{', '.join(REFERENCE_ASPECT_RATIOS)}."
        )


def _duration(parameters: Mapping[str, Any], rules: ModelRules) -> int | None:
    value = parameters.get("durationSeconds")
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise InvalidArgument(
            f"Invalid value at 'parameters.durationSeconds': expected a whole number of "
            f"seconds, got {value!r}."
        )
    seconds = int(value)
    if seconds not in rules.durations:
        raise InvalidArgument(
            f"Unsupported durationSeconds {seconds} for {rules.name}; supported values: "
            f"{', '.join(map(str, rules.durations))}."
        )
    return seconds


def _choice(
    parameters: Mapping[str, Any], key: str, allowed: tuple[str, ...], model: str
) -> str | None:
    value = parameters.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"Invalid value at 'parameters.{key}': expected a string.")
    if value not in allowed:
        raise InvalidArgument(
            f"Unsupported {key} {value!r} for {model}; supported values: {', '.join(allowed)}."
        )
    return value


def _check_person_generation(parameters: Mapping[str, Any], rules: ModelRules) -> None:
    value = parameters.get("personGeneration")
    if value is None:
        return
    if not isinstance(value, str) or value.lower() not in PERSON_GENERATION:
        raise InvalidArgument(
            f"Invalid value at 'parameters.personGeneration': {value!r}; supported values: "
            f"{', '.join(PERSON_GENERATION)}."
        )
    if value.lower() not in rules.person_generation:
        # Google's own wording (for allow_all on Veo 3.x, as the spec quotes it).
        raise InvalidArgument(f"{value.lower()} for personGeneration is currently not supported")


def _check_other_parameters(parameters: Mapping[str, Any], max_samples: int) -> None:
    count = parameters.get("sampleCount", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= max_samples:
        raise InvalidArgument(
            "sampleCount must be 1 for this model."
            if max_samples == 1
            else f"sampleCount must be a whole number from 1 to {max_samples}."
        )
    seed = parameters.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
    ):
        raise InvalidArgument(f"seed must be a whole number from 0 to {MAX_SEED}.")
    for key in ("enhancePrompt", "generateAudio"):
        if key in parameters and not isinstance(parameters[key], bool):
            raise InvalidArgument(f"Invalid value at 'parameters.{key}': expected a boolean.")
    for key, allowed in (
        ("compressionQuality", ("optimized", "lossless")),
        ("resizeMode", ("pad", "crop")),
    ):
        value = parameters.get(key)
        if value is not None and (not isinstance(value, str) or value.lower() not in allowed):
            raise InvalidArgument(
                f"Invalid value at 'parameters.{key}': {value!r}; supported values: "
                f"{', '.join(allowed)}."
            )


def _audio(parameters: Mapping[str, Any], rules: ModelRules, protocol: Protocol) -> bool:
    asked = parameters.get("generateAudio") if protocol == "vertex" else None
    if asked is True and not rules.audio:
        raise InvalidArgument("`generateAudio` isn't supported by this model.")
    return rules.audio if asked is None else bool(asked)


# Extension (Google's Gemini API video guide; Vertex AI's "extend a Veo video" page).
EXTENSION_ADDS = 7  # seconds one extension adds
GEMINI_MAX_SOURCE = 141  # seconds
GEMINI_MAX_EXTENDED = 148
VERTEX_SOURCE_SECONDS = (1, 30)
VERTEX_SOURCE_FPS = 24


def _extension(
    submission: Submission,
    rules: ModelRules,
    protocol: Protocol,
    duration: int | None,
    resolution: str | None,
    aspect_ratio: str | None,
) -> Output:
    """The video an extension makes: its source, then 7 s more (on both protocols)."""
    video = submission.video
    assert video is not None
    if not rules.extension:
        raise InvalidArgument("`video` isn't supported by this model.")
    if submission.image is not None or submission.last_frame is not None or submission.references:
        raise InvalidArgument(USE_CASE_NOT_SUPPORTED)
    shape = "16:9" if video.width * 9 == video.height * 16 else None
    shape = "9:16" if video.width * 16 == video.height * 9 else shape
    if shape is None:
        raise InvalidArgument(
            f"The input video must have an aspect ratio of 16:9 or 9:16; it is "
            f"{video.width}x{video.height}."
        )
    if aspect_ratio is not None and aspect_ratio != shape:
        raise InvalidArgument(
            f"aspectRatio {aspect_ratio} does not match the input video's ({shape})."
        )
    if duration not in (None, LONG_DURATION) or resolution not in (None, "720p"):
        raise InvalidArgument(
            f"Video extension requires durationSeconds {LONG_DURATION} and resolution 720p."
        )
    if protocol == "gemini":
        if min(video.width, video.height) != 720:
            raise InvalidArgument("The input video must be 720p to be extended.")
        if video.seconds > GEMINI_MAX_SOURCE + 0.5:
            raise InvalidArgument(
                f"The input video is too long to extend: {video.seconds:.0f} s; at most "
                f"{GEMINI_MAX_SOURCE} s ({GEMINI_MAX_EXTENDED} s once extended)."
            )
    else:
        low, high = VERTEX_SOURCE_SECONDS
        if not low - 0.05 <= video.seconds <= high + 0.5:
            raise InvalidArgument(
                f"The input video must be {low} to {high} seconds long; it is "
                f"{video.seconds:.1f} s."
            )
        if abs(video.fps - VERTEX_SOURCE_FPS) > 0.5:
            raise InvalidArgument(
                f"The input video must be {VERTEX_SOURCE_FPS} fps; it is {video.fps:.3g} fps."
            )
    return Output(
        seconds=round(video.seconds) + EXTENSION_ADDS,
        aspect_ratio=shape,
        resolution="720p",
        audio=_audio(submission.parameters, rules, protocol),
    )


def sample_count(submission: Submission) -> int:
    """How many videos the submission asks for (already checked by `judge`)."""
    count = submission.parameters.get("sampleCount", 1)
    return int(count)
