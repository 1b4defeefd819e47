"""The spec's own example client, run from where it lives, against `veo-gateway serve`.

Only API_BASE, API_KEY and the two image URLs are changed, as a user would change them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.media import assert_length, make_image
from tests.support.processes import free_port, start, stop, wait_http
from tests.support.servers import send_bytes, serve_files
from veo_gateway.media.probe import probe_video

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "example_client.py"
KEY = "example-key"

# scenario -> (width, height, seconds)
EXPECTED = {
    "1": (1280, 720, 8),
    "2": (1280, 720, 8),
    "3": (1280, 720, 8),
    "4": (1280, 720, 6),
    "5": (720, 1280, 4),
    "6": (1280, 720, 8),
}


def test_all_six_scenarios_of_the_example_client(tmp_path: Path) -> None:
    if not EXAMPLE.exists():
        # Outside CI a checkout may lack the spec beside it; in CI its absence is a failure.
        message = f"the spec's example client is not at {EXAMPLE}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI must check the spec out beside the project)")
        pytest.skip(message)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "VEO_GATEWAY_API_KEYS": KEY,
        "VEO_GATEWAY_PORT": str(port),
        "VEO_GATEWAY_EMULATOR_LATENCY": "1",
        "VEO_GATEWAY_POLL_INTERVAL": "0.5",
        "VEO_GATEWAY_FIRST_POLL_AFTER": "0.5",
        # The test's image server is on loopback, which the gateway refuses by default.
        "VEO_GATEWAY_ALLOW_PRIVATE_IMAGE_URLS": "true",
    }
    log = tmp_path / "serve.log"
    server = start(["serve"], env, log)
    routes = {
        "/image1.jpg": send_bytes(make_image("JPEG", (1280, 720), (220, 60, 60)), "image/jpeg"),
        "/image2.jpg": send_bytes(make_image("JPEG", (1280, 720), (60, 60, 220)), "image/jpeg"),
    }
    try:
        with serve_files(routes) as images:
            wait_http(f"{base}/healthz", server, log)
            source = EXAMPLE.read_text(encoding="utf-8")
            source = re.sub(r'API_BASE = ".*"', f'API_BASE = "{base}"', source)
            source = re.sub(r'API_KEY = ".*"', f'API_KEY = "{KEY}"', source)
            source = re.sub(r'IMG1 = ".*"', f'IMG1 = "{images}/image1.jpg"', source)
            source = re.sub(r'IMG2 = ".*"', f'IMG2 = "{images}/image2.jpg"', source)
            runs = {}
            for scenario in EXPECTED:
                workdir = tmp_path / f"scenario-{scenario}"
                workdir.mkdir()
                runs[scenario] = subprocess.Popen(
                    [sys.executable, "-c", source, scenario],
                    cwd=workdir,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            for scenario, process in runs.items():
                output, _ = process.communicate(timeout=240)
                assert process.returncode == 0, output
                assert "视频已下载到 output_video.mp4" in output, output
                info = probe_video(tmp_path / f"scenario-{scenario}" / "output_video.mp4")
                width, height, seconds = EXPECTED[scenario]
                assert (info.width, info.height) == (width, height), (scenario, info)
                assert_length(info, seconds)
                assert info.audio_codec == "aac"
    finally:
        stop(server)


# Gemini Omni, with only the model name changed: its text and image scenarios (the others ask
# for a last frame or Veo's negativePrompt and personGeneration, which Omni refuses by name).
OMNI_EXPECTED = {"1": (1280, 720, 8), "3": (1280, 720, 8), "5": (720, 1280, 4)}


def test_the_text_and_image_scenarios_on_gemini_omni(tmp_path: Path) -> None:
    if not EXAMPLE.exists():
        message = f"the spec's example client is not at {EXAMPLE}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI must check the spec out beside the project)")
        pytest.skip(message)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "VEO_GATEWAY_API_KEYS": KEY,
        "VEO_GATEWAY_PORT": str(port),
        "VEO_GATEWAY_EMULATOR_LATENCY": "1",
        "VEO_GATEWAY_POLL_INTERVAL": "0.5",
        "VEO_GATEWAY_FIRST_POLL_AFTER": "0.5",
        "VEO_GATEWAY_ALLOW_PRIVATE_IMAGE_URLS": "true",
    }
    log = tmp_path / "serve.log"
    server = start(["serve"], env, log)
    routes = {"/image1.jpg": send_bytes(make_image("JPEG", (1280, 720)), "image/jpeg")}
    try:
        with serve_files(routes) as images:
            wait_http(f"{base}/healthz", server, log)
            source = EXAMPLE.read_text(encoding="utf-8")
            source = re.sub(r'API_BASE = ".*"', f'API_BASE = "{base}"', source)
            source = re.sub(r'API_KEY = ".*"', f'API_KEY = "{KEY}"', source)
            source = re.sub(r'IMG1 = ".*"', f'IMG1 = "{images}/image1.jpg"', source)
            source = re.sub(r'"model": "veo-[^"]+"', '"model": "gemini-omni-1.2-flash"', source)
            for scenario, (width, height, seconds) in OMNI_EXPECTED.items():
                workdir = tmp_path / f"scenario-{scenario}"
                workdir.mkdir()
                run = subprocess.run(
                    [sys.executable, "-c", source, scenario],
                    cwd=workdir,
                    capture_output=True,
                    text=True,
                    timeout=240,
                )
                assert run.returncode == 0, run.stdout + run.stderr
                assert "视频已下载到 output_video.mp4" in run.stdout, run.stdout
                info = probe_video(workdir / "output_video.mp4")
                assert (info.width, info.height) == (width, height), (scenario, info)
                assert_length(info, seconds)
    finally:
        stop(server)
