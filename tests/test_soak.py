"""A fault soak: tasks of every mode through the gateway while the emulator injects faults into
every kind of call. Every task must end completed with the very bytes the emulator served (a
download cut short is never kept), or failed with the very failure the emulator produced for its
operation; none may hang; none may be submitted twice.

100 tasks by default, enough to keep 30 in flight and to draw every kind of fault several
times over; `VEO_SOAK_TASKS=N` changes it (200 for a longer soak).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY_A, KEY_B, Gateway
from tests.support.media import b64, make_image
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.emulator.faults import Faults
from veo_gateway.emulator.protocol import BLOCKED_REASON, FAILED_MESSAGE

FAST = "veo-3.1-fast-generate-preview"
STANDARD = "veo-3.1-generate-preview"
TASKS = int(os.environ.get("VEO_SOAK_TASKS", "100"))
# About a fifth of every kind of call goes wrong, and a fifth of the operations end badly.
FAULTS = (
    "*.429=0.07,*.500=0.07,*.stall=0.06,"
    "download.broken=0.1,download.truncated=0.05,download.short=0.05,"
    "download.slow=0.05,download.redirect=0.1,"
    "operation.fail=0.1,operation.blocked=0.1,"
    "stall_seconds=0.3,slow_seconds=0.3,seed=20261125"
)


def bodies() -> list[dict[str, Any]]:
    first, last = b64(make_image(color=(250, 0, 0))), b64(make_image(color=(0, 0, 250)))
    reference = {"image": {"bytesBase64Encoded": first}, "referenceType": "asset"}
    shapes: list[dict[str, Any]] = [
        {"model": FAST, "prompt": "text", "metadata": {"durationSeconds": 4}},
        {"model": FAST, "prompt": "image", "images": [first], "metadata": {"durationSeconds": 4}},
        {"model": FAST, "prompt": "frames", "images": [first, last]},
        {"model": STANDARD, "prompt": "refs", "metadata": {"referenceImages": [reference]}},
    ]
    return [shapes[i % len(shapes)] for i in range(TASKS)]


@pytest.mark.slow
@pytest.mark.timeout(900)  # its own deadline for the tasks is 600 s
def test_fault_soak(make_gateway: Callable[..., Gateway], tmp_path: Path) -> None:
    config = EmulatorConfig(
        latency=(0.2, 0.6),
        api_keys=frozenset({"k1", "k2"}),
        storage_dir=tmp_path / "emulator",
        # Small renders (each still its own file, so a mixed-up download shows): the soak is
        # about the protocol, not the pictures.
        fps=2,
        faults=Faults.parse(FAULTS),
    )
    emulator_app = create_emulator_app(config)
    book = emulator_app.state.core.book
    with serve_app(emulator_app) as emulator:
        path = tmp_path / "veo.toml"
        path.write_text(
            '[[upstreams]]\nname = "emu"\nkind = "gemini"\napi_keys = ["k1", "k2"]\n'
            f'base_url = "{emulator}"\nrpm = 1000\nmax_in_flight = 30\ncool_down_seconds = 0.3\n'
            + "".join(
                f'[models."{m}"]\nmin_latency = 0.2\ntypical_latency = 0.5\n'
                for m in (FAST, STANDARD)
            )
        )
        gateway = make_gateway(
            config=path, poll_interval=0.2, submit_attempts=8, upstream_timeout=10
        )
        owners: dict[str, str] = {}
        for index, body in enumerate(bodies()):
            key = KEY_A if index % 2 else KEY_B
            response = gateway.create(body, key=key)
            assert response.status_code == 200, response.text
            owners[response.json()["id"]] = key

        deadline = time.monotonic() + 600
        finals: dict[str, dict[str, Any]] = {}
        while len(finals) < len(owners):
            left = len(owners) - len(finals)
            assert time.monotonic() < deadline, f"{left} tasks never finished"
            for task_id, key in owners.items():
                if task_id not in finals:
                    body = gateway.get(task_id, key).json()
                    if body["status"] in ("completed", "failure"):
                        finals[task_id] = body
            time.sleep(0.3)

        stats = httpx.get(f"{emulator}/_emulator/stats").json()
        # What the emulator served for each operation: the digest of its file, read from disk.
        served = {}
        for op_id in stats["operations"]:
            operation = book.get(op_id)
            if operation is not None and operation.file_ids:
                served[op_id] = hashlib.sha256(book.file(operation.file_ids[0]).read_bytes())

    # Nothing was submitted twice: one accepted operation per task.
    assert stats["submissions"] == TASKS
    # The soak really was under fire, on every kind of call.
    faults = stats["faults"]
    for call in ("submit", "poll", "download"):
        assert sum(n for name, n in faults.items() if name.startswith(call)) > 0, faults
    # Every failure is the one the emulator injected into that task's operation, and every
    # injected outcome became a failure: no task failed for any other reason.
    rows = gateway.db.rows("select id, operation_name from tasks")
    operations = {row["id"]: row["operation_name"] for row in rows}
    injected = stats["injected_outcomes"]
    expected_text = {"fail": FAILED_MESSAGE, "blocked": BLOCKED_REASON}
    for task_id, body in finals.items():
        outcome = injected.get(operations[task_id].rsplit("/", 1)[-1])
        if outcome is None:
            assert body["status"] == "completed", body
            # The very bytes the emulator served: a video cut short on the way fails this.
            video = gateway.client.get(
                f"/v1/videos/{task_id}/content", headers=gateway.headers(owners[task_id])
            )
            assert video.status_code == 200
            digest = served[operations[task_id].rsplit("/", 1)[-1]]
            assert hashlib.sha256(video.content).hexdigest() == digest.hexdigest(), task_id
        else:
            assert body["status"] == "failure", body
            assert expected_text[outcome] in body["fail_reason"], body
    failed = sum(body["status"] == "failure" for body in finals.values())
    assert failed == len(injected)
