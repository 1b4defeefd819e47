"""The `veo-gateway` command itself: its version, what `serve --help` and the banner say."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from tests.test_docs import json_curls_without_a_json_type
from veo_gateway.cli import banner
from veo_gateway.settings import Settings, env_name
from veo_gateway.upstreams import plan_upstreams


def veo_gateway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veo_gateway", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_is_the_distributions(tmp_path: Path) -> None:
    result = veo_gateway("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"veo-gateway {importlib.metadata.version('veo-gateway')}\n"
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written


def test_serve_help_points_to_the_settings_and_the_config_file(tmp_path: Path) -> None:
    result = veo_gateway("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # the help is wrapped to the terminal
    assert "README's Settings section" in text
    assert "operator config file (TOML), named by VEO_GATEWAY_CONFIG" in text
    for name in Settings.model_fields:
        assert env_name(name) in text, name
    assert list(tmp_path.iterdir()) == []


def test_the_banners_curl_sends_json_as_json(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, port=8123, gemini_api_key=None, google_api_key=None)
    lines = banner(settings, plan_upstreams(settings))
    curls = [line for line in lines if "curl " in line]
    assert len(curls) == 1
    assert "http://127.0.0.1:8123/v1/videos" in curls[0]
    assert json_curls_without_a_json_type(f"```sh\n{curls[0].removeprefix('try: ')}\n```") == []
