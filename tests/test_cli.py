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


def routes_printed(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith("routes ("))
    return [" ".join(line.split()) for line in lines[start + 1 :] if line.startswith("  ")]


def test_the_banner_prints_the_route_table_of_every_upstream_kind(tmp_path: Path) -> None:
    def settings(**values: object) -> Settings:
        defaults: dict[str, object] = {
            "data_dir": tmp_path,
            "gemini_api_key": None,
            "google_api_key": None,
            "google_genai_use_vertexai": None,
            "google_genai_use_enterprise": None,
        }
        return Settings(**{**defaults, **values})  # type: ignore[arg-type]

    def printed(given: Settings) -> list[str]:
        return routes_printed(banner(given, plan_upstreams(given)))

    fast = "veo-3.1-fast-generate-preview"
    emulator = printed(settings())
    assert f"{fast} -> emulator (built-in emulator), {fast}" in emulator
    gemini = printed(settings(gemini_api_key="k"))
    assert f"{fast} -> gemini (Gemini API), {fast}" in gemini
    assert len(gemini) == len(emulator) == 8  # six Veo models, two Gemini Omni
    vertex = printed(
        settings(
            google_genai_use_vertexai="true",
            google_cloud_project="p",
            google_cloud_location="us-central1",
            vertex_access_token="t",
        )
    )
    assert vertex == [
        "veo-3.1-generate-preview -> vertex (Vertex AI, project p, location us-central1), "
        "veo-3.1-generate-001",
        "veo-3.1-generate-001 -> vertex (Vertex AI, project p, location us-central1), "
        "veo-3.1-generate-001",
        f"{fast} -> vertex (Vertex AI, project p, location us-central1), veo-3.1-fast-generate-001",
        "veo-3.1-fast-generate-001 -> vertex (Vertex AI, project p, location us-central1), "
        "veo-3.1-fast-generate-001",
        "gemini-omni-1.1-flash -> vertex (Vertex AI, project p, location us-central1), "
        "gemini-omni-1.1-flash",
        "gemini-omni-1.2-flash -> vertex (Vertex AI, project p, location us-central1), "
        "gemini-omni-1.2-flash",
    ]
    config = tmp_path / "veo.toml"
    config.write_text(
        '[[upstreams]]\nname = "v"\nkind = "vertex"\nproject = "p"\naccess_token = "t"\n'
        '[[upstreams]]\nname = "rehearsal"\nkind = "emulator"\n'
        f'[[routes]]\nmodel = "{fast}"\ntargets = [\n'
        '  { upstream = "v", model = "veo-3.1-fast-generate-001" },\n'
        '  { upstream = "rehearsal" },\n]\n'
    )
    assert printed(settings(config=config)) == [
        f"{fast} -> v (Vertex AI, project p, location us-central1), veo-3.1-fast-generate-001",
        f"-> rehearsal (built-in emulator), {fast}",
    ]


def test_serve_refuses_a_vertex_setup_it_cannot_use_in_one_message(
    tmp_path: Path,
) -> None:
    env = {
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        "GOOGLE_API_KEY": "k",
        "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "veo_gateway", "serve"],
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if k != "GOOGLE_CLOUD_PROJECT"}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "express mode" in result.stderr and "Traceback" not in result.stderr
