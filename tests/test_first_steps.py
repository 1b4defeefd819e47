"""A new user's first five minutes, run for real: `veo-gateway serve` in an empty directory, then
the README's Quick start commands and the curl the start-up banner prints, pasted as they stand
into bash (with curl, as a user would), against that process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port, stop, wait_http
from tests.test_docs import README
from veo_gateway.media.probe import probe_video


@dataclass
class Served:
    """`veo-gateway serve` running in `cwd` on `port`, its output in `log`."""

    cwd: Path
    port: int
    log: Path
    env: dict[str, str]

    def bash(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run `script` as pasted into a shell in the gateway's directory."""
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def localize(self, script: str) -> str:
        """The script with the documented address replaced by this gateway's."""
        return script.replace("localhost:8000", f"127.0.0.1:{self.port}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    if shutil.which("curl") is None:
        pytest.fail("these tests run the README's curl commands: install curl")
    venv_command = Path(sys.prefix) / "bin" / "veo-gateway"
    if not venv_command.exists():
        pytest.fail(f"run the tests from the project's virtualenv (no {venv_command})")
    cwd = tmp_path / "project"
    cwd.mkdir()
    (cwd / ".venv").symlink_to(sys.prefix)  # the README's commands say `.venv/bin/...`
    # A fresh machine: none of the gateway's settings, but fast videos.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("VEO_GATEWAY_")
        and name not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")
        and not name.startswith("GOOGLE_GENAI_USE_")
    }
    port = free_port()
    env.update(
        VEO_GATEWAY_PORT=str(port),
        VEO_GATEWAY_EMULATOR_LATENCY="0.5",
        VEO_GATEWAY_POLL_INTERVAL="0.2",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "veo_gateway", "serve"],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process, log)
        yield Served(cwd=cwd, port=port, log=log, env=env)
    finally:
        stop(process)


def quick_start_blocks() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_the_quick_start_works_as_pasted(served: Served) -> None:
    script = quick_start_blocks()[2]
    assert "curl" in script and "Content-Type: application/json" in script
    result = served.bash(served.localize(script))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert '"status":"in_progress"' in result.stdout or '"status":""' in result.stdout
    info = probe_video(served.cwd / "out.mp4")
    assert info.video_codec == "h264" and info.duration > 0


def test_the_banners_curl_works_as_printed(served: Served) -> None:
    log = served.log.read_text()
    tries = [line.removeprefix("try: ") for line in log.splitlines() if line.startswith("try: ")]
    assert len(tries) == 1, log
    # The route table it serves, printed at start-up.
    fast = "veo-3.1-fast-generate-preview"
    assert f"  {fast} -> emulator (built-in emulator), {fast}" in log, log
    assert "-H 'Content-Type: application/json'" in tries[0]
    key = re.search(r"vgw_[\w-]+", log)  # the key the first start created and printed
    assert key, log
    result = served.bash(tries[0].replace("Bearer KEY", f"Bearer {key.group(0)}"))
    assert result.returncode == 0, result.stderr
    video = json.loads(result.stdout)
    assert "id" in video, f"{video}\n{log}"
    assert video["id"].startswith("video_"), video
    assert video["model"] == "veo-3.1-fast-generate-preview"
