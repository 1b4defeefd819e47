"""google-genai 3.x's Interactions client: `omni_suite.py` run where 3.x is importable, as
`test_sdk3.py` runs `sdk3_suite.py` (see there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import genai3

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).with_name("omni_suite.py")


def test_google_genai_3_interactions_drive_the_emulator_and_match_the_adapter() -> None:
    packages = genai3.install()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "COV_CORE_", "PYTHONPATH"))
    }
    env["PYTHONPATH"] = str(packages)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=270,
    )
    assert result.returncode == 0, f"{result.stdout[-12000:]}\n{result.stderr[-4000:]}"
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
