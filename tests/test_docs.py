"""The README documents every setting (name and default), and starts with the Quick start."""

from __future__ import annotations

import re
from pathlib import Path

from veo_gateway.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = []
    for name, field in Settings.model_fields.items():
        env = "GEMINI_API_KEY" if name == "gemini_api_key" else f"VEO_GATEWAY_{name.upper()}"
        if f"`{env}`" not in README:
            missing.append(env)
        assert field.description, f"setting {name} has no description"
    assert not missing, f"settings missing from README.md: {missing}"


def test_quick_start_has_exactly_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks[:2]) == 2
    assert "veo-gateway serve" in blocks[0] and "pytest" in blocks[1]
