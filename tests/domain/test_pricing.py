"""Prices per second, with sound and without, and the config tables that override them."""

from __future__ import annotations

from pathlib import Path

import pytest

from veo_gateway.config import ConfigError, load_config
from veo_gateway.domain.pricing import PriceTable

CONFIG = """
[[upstreams]]
name = "vx"
kind = "vertex"
project = "p"

[prices."veo-3.1-fast-generate-001"]
"720p" = 0.11

[prices_without_audio."veo-3.1-fast-generate-001"]
"720p" = 0.07
"""


def test_a_silent_video_costs_the_audio_off_rate_where_one_is_known() -> None:
    prices = PriceTable()
    assert prices.cost("veo-3.1-generate-001", "720p", 8) == pytest.approx(3.2)
    assert prices.cost("veo-3.1-generate-001", "720p", 8, audio=False) == pytest.approx(1.6)
    assert prices.per_second("veo-3.1-fast-generate-001", "4k", audio=False) == 0.25
    # No audio-off rate known (Veo 3.0), or no sound to switch off (Veo 2): the one rate.
    assert prices.per_second("veo-3.0-generate-001", "720p", audio=False) == 0.40
    assert prices.per_second("veo-2.0-generate-001", "720p", audio=False) == 0.35


def test_the_config_overrides_both_tables(tmp_path: Path) -> None:
    path = tmp_path / "veo.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    prices = PriceTable().with_overrides(config.prices, config.prices_without_audio)
    assert prices.per_second("veo-3.1-fast-generate-001", "720p") == 0.11
    assert prices.per_second("veo-3.1-fast-generate-001", "720p", audio=False) == 0.07
    assert prices.per_second("veo-3.1-fast-generate-001", "1080p", audio=False) == 0.10
    path.write_text(CONFIG.replace('"720p" = 0.07', '"8k" = 0.07'))
    with pytest.raises(ConfigError, match=r"prices_without_audio.*unknown resolution '8k'"):
        load_config(path)
