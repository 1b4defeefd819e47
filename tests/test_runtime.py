"""The interpreter set-up of a serving process: start-up's objects frozen, collections rarer."""

from __future__ import annotations

import gc
import json
import subprocess
import sys


def test_a_settled_interpreter_freezes_what_start_up_loaded_and_collects_less_often() -> None:
    # In a process of its own: freezing is for good, and the test runner's own must not change.
    code = (
        "import gc, json; from veo_gateway.runtime import THRESHOLDS, settle_interpreter; "
        "before = gc.get_freeze_count(); settle_interpreter(); "
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold() == THRESHOLDS]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, thresholds = json.loads(out.stdout)
    assert before == 0 and after > 1_000 and thresholds is True
    assert gc.get_freeze_count() == 0  # this process is untouched
