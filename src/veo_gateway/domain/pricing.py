"""What a video costs: USD per output second, by model and resolution, with sound or without.

The defaults are Google's list prices (verify before relying on them); operators override them
in the config file's `[prices]` and `[prices_without_audio]` tables. A video is only ever
charged once it is delivered, and each delivered sample is a video.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_STANDARD = {"720p": 0.40, "1080p": 0.40, "4k": 0.60}
_FAST = {"720p": 0.10, "1080p": 0.12, "4k": 0.30}
_LITE = {"720p": 0.05, "1080p": 0.08}
# Gemini Omni: Google publishes no per-second price we could verify. Until it does, Veo 3.1
# Fast's list rates stand in (360p at the 720p rate), so spend limits still hold; operators
# set the real ones in `[prices."gemini-omni-..."]`.
_OMNI = {"360p": 0.10, "720p": 0.10, "1080p": 0.12, "4k": 0.30}

DEFAULT_PRICES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "veo-3.1-generate-preview": _STANDARD,
        "veo-3.1-generate-001": _STANDARD,
        "veo-3.0-generate-001": _STANDARD,
        "veo-3.1-fast-generate-preview": _FAST,
        "veo-3.1-fast-generate-001": _FAST,
        "veo-3.0-fast-generate-001": _FAST,
        "veo-3.1-lite-generate-preview": _LITE,
        "veo-2.0-generate-001": {"720p": 0.35},
        "gemini-omni-1.1-flash": _OMNI,
        "gemini-omni-1.2-flash": _OMNI,
    }
)

# Vertex AI's rates for videos made with `generateAudio: false` (a secondary source quoting
# Google's pricing page, 2026-09). Models without a row here (Veo 3.0, whose audio-off rate is
# not known) cost their audio-on rate: never less than the truth.
_STANDARD_SILENT = {"720p": 0.20, "1080p": 0.20, "4k": 0.40}
_FAST_SILENT = {"720p": 0.08, "1080p": 0.10, "4k": 0.25}
DEFAULT_PRICES_WITHOUT_AUDIO: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "veo-3.1-generate-preview": _STANDARD_SILENT,
        "veo-3.1-generate-001": _STANDARD_SILENT,
        "veo-3.1-fast-generate-preview": _FAST_SILENT,
        "veo-3.1-fast-generate-001": _FAST_SILENT,
        "veo-3.1-lite-generate-preview": {"720p": 0.03, "1080p": 0.05},
    }
)


@dataclass(frozen=True)
class PriceTable:
    """USD per second of output video, per model, per resolution."""

    prices: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: DEFAULT_PRICES)
    # Videos without sound, where the rate differs; a model not listed costs its `prices`.
    without_audio: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: DEFAULT_PRICES_WITHOUT_AUDIO
    )

    def per_second(self, model: str, resolution: str, audio: bool = True) -> float:
        """The price of one second; a resolution not listed costs what the model's most
        expensive listed one does (never less than the truth), an unknown model nothing."""
        row = (None if audio else self.without_audio.get(model)) or self.prices.get(model)
        if not row:
            return 0.0
        return row.get(resolution, max(row.values()))

    def cost(self, model: str, resolution: str, seconds: int, audio: bool = True) -> float:
        """The price of a video, rounded to a hundredth of a cent."""
        return round(self.per_second(model, resolution, audio) * seconds, 4)

    def with_overrides(
        self,
        overrides: Mapping[str, Mapping[str, float]],
        without_audio: Mapping[str, Mapping[str, float]] | None = None,
    ) -> PriceTable:
        """This table with some models' prices replaced, resolution by resolution."""
        return PriceTable(
            _merged(self.prices, overrides), _merged(self.without_audio, without_audio or {})
        )


def _merged(
    base: Mapping[str, Mapping[str, float]], overrides: Mapping[str, Mapping[str, float]]
) -> Mapping[str, Mapping[str, float]]:
    merged = {model: dict(row) for model, row in base.items()}
    for model, row in overrides.items():
        merged.setdefault(model, {}).update(row)
    return MappingProxyType(merged)
