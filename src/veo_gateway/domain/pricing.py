"""What a video costs: USD per output second, by model and resolution.

The defaults are Google's list prices (verify before relying on them); operators override them
in the config file's `[prices]` table. A video is only ever charged once it is delivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_STANDARD = {"720p": 0.40, "1080p": 0.40, "4k": 0.60}
_FAST = {"720p": 0.10, "1080p": 0.12, "4k": 0.30}
_LITE = {"720p": 0.05, "1080p": 0.08}

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
    }
)


@dataclass(frozen=True)
class PriceTable:
    """USD per second of output video, per model, per resolution."""

    prices: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: DEFAULT_PRICES)

    def per_second(self, model: str, resolution: str) -> float:
        """The price of one second; a resolution not listed costs what the model's most
        expensive listed one does (never less than the truth), an unknown model nothing."""
        row = self.prices.get(model)
        if not row:
            return 0.0
        return row.get(resolution, max(row.values()))

    def cost(self, model: str, resolution: str, seconds: int) -> float:
        """The price of a video, rounded to a hundredth of a cent."""
        return round(self.per_second(model, resolution) * seconds, 4)

    def with_overrides(self, overrides: Mapping[str, Mapping[str, float]]) -> PriceTable:
        """This table with some models' prices replaced, resolution by resolution."""
        merged = {model: dict(row) for model, row in self.prices.items()}
        for model, row in overrides.items():
            merged.setdefault(model, {}).update(row)
        return PriceTable(MappingProxyType(merged))
