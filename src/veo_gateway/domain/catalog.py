"""The model capability table: one row per model, read by validation, the emulator and progress."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from veo_gateway.errors import InvalidArgument


@dataclass(frozen=True)
class ModelCapabilities:
    """What one Veo model can do, and how long it usually takes."""

    name: str
    durations: tuple[int, ...] = (4, 6, 8)
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")
    resolutions: tuple[str, ...] = ("720p",)
    # Resolutions that Google only renders at the longest duration (8 s).
    resolutions_need_8s: frozenset[str] = field(default_factory=frozenset)
    audio: bool = True
    image_to_video: bool = True
    last_frame: bool = True
    max_reference_images: int = 0
    reference_aspect_ratios: tuple[str, ...] = ("16:9",)
    # Interpolation (first and last frame) and reference images need this duration.
    long_duration: int = 8
    default_duration: int = 8
    default_aspect_ratio: str = "16:9"
    default_resolution: str = "720p"
    max_prompt_tokens: int = 1024
    max_images: int = 2
    # Seconds: the fastest Google usually answers, and a typical wait (progress, first poll).
    min_latency: float = 11.0
    typical_latency: float = 60.0
    # The upstream protocols that know this model id ("gemini": the Gemini API, "vertex":
    # Vertex AI); the built-in routes send a model only to an upstream that serves it.
    served_by: frozenset[str] = frozenset({"gemini", "vertex"})
    # Videos one request may ask for (`sampleCount`): on Vertex AI, and on the Gemini API.
    max_samples: int = 4
    gemini_max_samples: int = 1
    # Whether Google extends this model's videos (`instances[0].video`): Veo 3.1 and 3.1 Fast.
    extension: bool = False
    # How Google is asked: "predict" (Veo's predictLongRunning) or "interactions" (Gemini
    # Omni's Interactions API, providers/omni.py).
    protocol: str = "predict"
    # Whether reference images, like interpolation, need `long_duration` (Veo's rule).
    references_need_long: bool = True
    # Whether Google's model can extend a video it made, served here or not (Gemini Omni's
    # can; the gateway serves extension only where `extension` says so).
    can_extend: bool = False

    @property
    def modes(self) -> tuple[str, ...]:
        """The generation modes this model accepts."""
        modes = ["text"]
        if self.image_to_video:
            modes.append("image")
        if self.last_frame:
            modes.append("interpolation")
        if self.max_reference_images:
            modes.append("reference")
        return tuple(modes)


_HIGH_RES = frozenset({"1080p", "4k"})


_VERTEX_ONLY = frozenset({"vertex"})


def _standard(
    name: str, served_by: frozenset[str] = frozenset({"gemini", "vertex"})
) -> ModelCapabilities:
    return ModelCapabilities(
        name=name,
        served_by=served_by,
        resolutions=("720p", "1080p", "4k"),
        resolutions_need_8s=_HIGH_RES,
        max_reference_images=3,
        min_latency=30.0,
        typical_latency=90.0,
        extension=True,
    )


def _fast(
    name: str, served_by: frozenset[str] = frozenset({"gemini", "vertex"})
) -> ModelCapabilities:
    return ModelCapabilities(
        name=name,
        served_by=served_by,
        resolutions=("720p", "1080p", "4k"),
        resolutions_need_8s=_HIGH_RES,
        min_latency=15.0,
        typical_latency=45.0,
        extension=True,
    )


def _two_res(name: str, min_latency: float, typical: float) -> ModelCapabilities:
    return ModelCapabilities(
        name=name,
        resolutions=("720p", "1080p"),
        resolutions_need_8s=frozenset({"1080p"}),
        min_latency=min_latency,
        typical_latency=typical,
    )


def _omni(name: str) -> ModelCapabilities:
    """Gemini Omni (the Interactions API): from google-genai 3.x's `VideoResponseFormat` (16:9
    or 9:16; 360p to 4k, 720p by default) and `VideoConfig` tasks (text, image and reference
    to video; edit, extend, upscale). The durations and the three reference images are not in
    the SDK's types: Veo's, until Google publishes Omni's (override them in the config)."""
    return ModelCapabilities(
        name=name,
        protocol="interactions",
        resolutions=("360p", "720p", "1080p", "4k"),
        last_frame=False,
        max_images=1,
        max_reference_images=3,
        reference_aspect_ratios=("16:9", "9:16"),
        references_need_long=False,
        max_samples=1,
        min_latency=15.0,
        typical_latency=60.0,
        can_extend=True,
    )


OMNI_MODELS = ("gemini-omni-1.1-flash", "gemini-omni-1.2-flash")

# The model a request that names none goes to, in every dialect, the CLI, the Python client and
# the playground: the fast tier, a quarter of the standard tier's price per second.
DEFAULT_MODEL = "veo-3.1-fast-generate-preview"

BUILTIN_MODELS: tuple[ModelCapabilities, ...] = (
    _standard("veo-3.1-generate-preview"),
    # Vertex's GA ids: the Gemini API answers 404 for them.
    _standard("veo-3.1-generate-001", _VERTEX_ONLY),
    _fast("veo-3.1-fast-generate-preview"),
    _fast("veo-3.1-fast-generate-001", _VERTEX_ONLY),
    _two_res("veo-3.1-lite-generate-preview", 11.0, 30.0),
    _two_res("veo-3.0-generate-001", 30.0, 90.0),
    _two_res("veo-3.0-fast-generate-001", 15.0, 45.0),
    ModelCapabilities(
        name="veo-2.0-generate-001",
        durations=(5, 6, 7, 8),
        audio=False,
        gemini_max_samples=2,
        min_latency=30.0,
        typical_latency=60.0,
    ),
    *(_omni(name) for name in OMNI_MODELS),
)


class Catalog(Mapping[str, ModelCapabilities]):
    """The models the gateway serves, by public name."""

    def __init__(
        self,
        rows: Iterable[ModelCapabilities] = BUILTIN_MODELS,
        kinds: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._rows = {row.name: row for row in rows}
        # The upstream kinds ("gemini", "vertex") each model's route may send it to.
        self._kinds = dict(kinds or {})

    def __getitem__(self, name: str) -> ModelCapabilities:
        return self._rows[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def kinds(self, name: str) -> frozenset[str]:
        """The upstream kinds the route of `name` may send a request to (without routes: the
        protocols that know the model id)."""
        return self._kinds.get(name) or self._rows[name].served_by

    @property
    def default_model(self) -> str:
        """DEFAULT_MODEL when it is served, else the first model served."""
        return DEFAULT_MODEL if DEFAULT_MODEL in self._rows else next(iter(self._rows))

    def require(self, name: str, *, param: str = "model") -> ModelCapabilities:
        """The row for `name`, or a 400 that lists the known models."""
        try:
            return self._rows[name]
        except KeyError:
            known = ", ".join(self._rows)
            raise InvalidArgument(
                f"unknown model {name!r}; known models: {known}", param=param
            ) from None
