"""google-genai 3.x beside the project's 2.x: installed into a directory of its own in the venv.

The project's tests pin google-genai 2.x (the last line that still sends `generate_videos` to
the Gemini API). The newest 3.x is installed with pip's `--target` into `google-genai-3/` under
the running venv, every dependency it shares with the venv held at the venv's own version (a
constraints file from `pip freeze`), and `tests/emulator/sdk3_suite.py` runs in a subprocess with
that directory first on `sys.path`. `.ci/run` installs it up front (`python -m
tests.support.genai3`); a test run that finds it missing installs it the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REQUIREMENT = "google-genai>=3.6.1,<4"


def target() -> Path:
    """Where 3.x lives: beside the running interpreter's venv packages."""
    return Path(sys.prefix) / "google-genai-3"


def install() -> Path:
    """Install 3.x into `target()` unless it is there; returns the directory."""
    final = target()
    if (final / "google" / "genai").is_dir():
        return final
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    shared = [line for line in frozen.splitlines() if not line.lower().startswith("google-genai")]
    with tempfile.TemporaryDirectory(dir=final.parent) as scratch:
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text("\n".join(shared) + "\n")
        staged = Path(scratch) / "packages"
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "--target", str(staged), "--constraint", str(constraints), REQUIREMENT],
            check=True,
        )
        # Renamed into place whole, so a run stopped mid-install leaves no half directory.
        try:
            os.rename(staged, final)
        except OSError:
            if not (final / "google" / "genai").is_dir():  # not another run's finished install
                raise
            shutil.rmtree(staged)
    return final


if __name__ == "__main__":
    print(install())
