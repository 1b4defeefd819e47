"""google-genai 3.x, beside the project's 2.x: `sdk3_suite.py` run where 3.x is importable.

The 3.x package is installed into a directory of its own (`tests/support/genai3.py`, once per
venv; `.ci/run` does it up front) and the suite runs in a pytest subprocess with that directory
first on `sys.path`, so this process keeps the 2.x that `tests/emulator/test_sdk.py` drives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import genai3

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).with_name("sdk3_suite.py")


def test_google_genai_3_drives_the_emulator_and_matches_the_adapter() -> None:
    packages = genai3.install()
    # Not this run's xdist or coverage plumbing: the subprocess is a plain pytest run.
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
