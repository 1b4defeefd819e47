"""The wire shapes, for the OpenAPI document only: the routes parse and render by hand.

Parsing is strict and by hand (spec_dialect.py, openai_dialect.py, admin.py) so that every
refusal names its field in the gateway's own words; these models say the same thing to the
readers of `/openapi.json`. tests/api/test_openapi.py and the schemathesis run check that the
answers fit them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

# ---- errors


class ErrorBody(BaseModel):
    """Google's error object, with OpenAI's `type` and the offending field in `param`."""

    code: int = Field(description="The HTTP status code.")
    message: str
    status: str = Field(description="Google's canonical status name, e.g. INVALID_ARGUMENT.")
    type: str = Field(description="The OpenAI SDK's error kind, e.g. invalid_request_error.")
    param: str | None = Field(None, description="The offending field, when there is one.")


class ErrorEnvelope(BaseModel):
    """Every error the gateway answers."""

    error: ErrorBody


# ---- creating a video


class InlineImage(BaseModel):
    """An image in `referenceImages`."""

    bytesBase64Encoded: str = Field(description="Base64, a data URI, or an http(s) URL.")
    mimeType: str | None = None


class ReferenceImage(BaseModel):
    """One of `metadata.referenceImages`."""

    image: InlineImage
    referenceType: str = "asset"


class SpecMetadata(BaseModel):
    """Google's parameters; any other key goes to Google's `parameters` untouched."""

    model_config = ConfigDict(extra="allow")

    aspectRatio: str | None = Field(None, examples=["16:9"])
    durationSeconds: int | None = Field(None, examples=[8])
    negativePrompt: str | None = None
    personGeneration: str | None = Field(None, examples=["allow_adult"])
    resolution: str | None = Field(None, examples=["720p"])
    referenceImages: list[ReferenceImage] | None = None


class SpecVideoCreate(BaseModel):
    """`POST /v1/videos` in the reference document's shape (unknown top-level fields refused)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(examples=["veo-3.1-fast-generate-preview"])
    prompt: str = Field(examples=["a paper boat on a pond"])
    images: list[str] | None = Field(
        None, max_length=2, description="First and last frame: base64, data URIs or URLs."
    )
    metadata: SpecMetadata | None = None
    callback_url: str | None = Field(None, description="Receives the task's final event.")
    video: str | None = Field(
        None, description="The id of a completed video to extend by 7 s (excludes images)."
    )


class ImageUrl(BaseModel):
    """OpenAI's `input_reference` as a URL or a data URI."""

    image_url: str


class OpenAIVideoCreate(BaseModel):
    """`POST /v1/videos` as JSON with OpenAI's fields (read so when it has `seconds`, `size`
    or `input_reference`)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    model: str | None = Field(None, examples=["veo-3.1-fast-generate-preview"])
    seconds: str | int | None = Field(None, examples=["8"])
    size: str | None = Field(None, examples=["1280x720"])
    input_reference: ImageUrl | None = None


class OpenAIVideoForm(BaseModel):
    """`POST /v1/videos` as a form: what OpenAI's SDK sends."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    model: str | None = None
    seconds: str | None = Field(None, examples=["8"])
    size: str | None = Field(None, examples=["1280x720"])
    input_reference: bytes | None = Field(
        None,
        description="The first frame (PNG, JPEG or WebP).",
        json_schema_extra={"format": "binary"},
    )


# ---- videos


class SpecVideo(BaseModel):
    """A task created in the spec's shape."""

    id: str
    task_id: str
    object: Literal["video"]
    model: str
    status: Literal["", "in_progress", "completed", "failure"]
    progress: int = Field(ge=0, le=100)
    created_at: int
    completed_at: int | None = None
    expires_at: int | None = None
    fail_reason: str | None = None
    sample_count: int = Field(
        1, ge=1, le=4, description="Videos asked for; once completed, those delivered."
    )
    samples_filtered: int | None = Field(
        None, description="Samples Google's safety filters withheld (absent: none)."
    )
    extended_from_video_id: str | None = Field(
        None, description="An extension's source video (null: an uploaded MP4)."
    )


class VideoError(BaseModel):
    """Why an OpenAI-shaped task failed."""

    code: str
    message: str


class OpenAIVideo(BaseModel):
    """A task created in OpenAI's shape: OpenAI's Video object."""

    id: str
    object: Literal["video"]
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int = Field(ge=0, le=100)
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str | None
    seconds: str
    size: str
    remixed_from_video_id: None
    error: VideoError | None
    sample_count: int = Field(1, ge=1, le=4, description="As in the spec's video object.")
    samples_filtered: int | None = None
    extended_from_video_id: str | None = None


class Video(RootModel[SpecVideo | OpenAIVideo]):
    """A task, in the dialect it was created in."""


class VideoList(BaseModel):
    """A page of the caller's videos."""

    object: Literal["list"]
    data: list[SpecVideo | OpenAIVideo]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(BaseModel):
    """The answer to a delete."""

    id: str
    object: Literal["video.deleted"]
    deleted: Literal[True]


# ---- models and usage


class ModelCapabilities(BaseModel):
    """What a model can do (see `GET /v1/models`)."""

    modes: list[str]
    durations: list[int]
    default_duration: int
    aspect_ratios: list[str]
    default_aspect_ratio: str
    resolutions: list[str]
    default_resolution: str
    resolutions_need_long_duration: list[str]
    references_need_long_duration: bool = Field(
        default=True, description="Whether reference images need `long_duration` (Veo's rule)."
    )
    long_duration: int
    negative_prompt: bool = Field(
        default=True, description="Whether `metadata.negativePrompt` is taken."
    )
    audio: bool
    max_images: int
    max_reference_images: int
    reference_aspect_ratios: list[str]
    person_generation: list[str]
    max_prompt_tokens: int
    image_types: list[str]
    max_image_bytes: int
    upstreams: list[str] = Field(description='Upstream protocols of its route: "gemini", "vertex".')
    max_samples: int = Field(description="The most `metadata.sampleCount` may ask for.")
    options: dict[str, Any] = Field(
        description="The `metadata` options its route takes (sampleCount, seed, generateAudio, "
        "enhancePrompt, resizeMode, compressionQuality), each with its values or range."
    )
    extension: bool = Field(
        default=False,
        description="Whether it extends a finished video by 7 s (`video`, or "
        "POST /v1/videos/extensions).",
    )
    protocol: str = Field(
        default="predict",
        description='How Google is asked: "predict" (Veo) or "interactions" (Gemini Omni).',
    )
    upstream_extension: bool = Field(
        default=False,
        description="Whether Google's model extends videos (Gemini Omni's does; the gateway "
        "serves extension where `extension` says so).",
    )


class ModelPricing(BaseModel):
    """USD per second of each delivered video (each sample), by resolution."""

    currency: Literal["USD"]
    per_sample: bool
    by_resolution: dict[str, dict[str, float]]


class ModelEntry(BaseModel):
    """One served model."""

    id: str
    object: Literal["model"]
    owned_by: str
    capabilities: ModelCapabilities
    pricing: ModelPricing


class ModelList(BaseModel):
    """Every served model."""

    object: Literal["list"]
    data: list[ModelEntry]


class UsageRow(BaseModel):
    """Charged videos, seconds and cost of a group (a day, a model, a key) or a total."""

    model_config = ConfigDict(extra="allow")

    videos: int
    seconds: int
    cost_usd: float


class KeyLimits(BaseModel):
    """A key's limits; null is no limit."""

    allowed_models: list[str] | None
    max_in_flight: int | None
    max_video_seconds_per_day: int | None
    monthly_budget_usd: float | None


class Standing(BaseModel):
    """Where a key stands against its limits now."""

    in_flight: int
    video_seconds_today: int
    month_cost_usd: float


class Usage(BaseModel):
    """A key's charged usage in a period."""

    object: Literal["usage"]
    start: str
    end: str
    currency: str
    total: UsageRow
    by_day: list[UsageRow]
    by_model: list[UsageRow]
    reserved: UsageRow
    limits: KeyLimits
    current: Standing


# ---- admin


class ApiKey(KeyLimits):
    """A stored client key (never its secret)."""

    id: str
    object: Literal["api_key"]
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None


class ApiKeyCreated(ApiKey):
    """A key just created: its secret is shown this once."""

    secret: str


class ApiKeyList(BaseModel):
    """Every stored key."""

    object: Literal["list"]
    data: list[ApiKey]


class KeyUsage(Usage):
    """A key's usage, with the key."""

    key: ApiKey


class UsageSummary(BaseModel):
    """Every key's charged usage in a period."""

    object: Literal["usage.summary"]
    start: str
    end: str
    currency: str
    total: UsageRow
    by_key: list[UsageRow]
    by_model: list[UsageRow]


# ---- health


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"]


class Credential(BaseModel):
    """One upstream credential's state, as every process shares it."""

    id: str
    upstream: str
    in_flight: int = Field(description="Slots taken by every worker on the database.")
    max_in_flight: int | None
    cooling_down_for: float = Field(description="Seconds left of its rest after a 429.")
    out_of_service: str | None = Field(
        description="Why the credential was taken out of service; null while it is in service."
    )
    out_of_service_since: float | None = Field(
        None, description="Unix time it was taken out of service; null while in service."
    )


class Readiness(BaseModel):
    """Whether the gateway can take work, check by check."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    credentials: list[Credential]
