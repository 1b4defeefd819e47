"""The emulator's submission log (`EmulatorConfig.request_log`): one JSON line per
predictLongRunning call, answered or refused, with its times, credential, status, prompt,
operation and injected outcome; and each credential's peak of operations in flight."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.emulator.conftest import FAST, KEY, Emulator
from veo_gateway.emulator.faults import Faults
from veo_gateway.emulator.operations import fingerprint


async def test_each_submission_call_is_a_line_of_the_log(
    make_emulator: Callable[..., AbstractAsyncContextManager[Emulator]], tmp_path: Path
) -> None:
    log = tmp_path / "submissions.jsonl"
    # Every operation fails by injection; the in-flight cap of 2 refuses the third submission.
    faults = Faults.parse("operation.fail=1")
    async with make_emulator(
        latency=(30.0, 30.0), request_log=log, faults=faults, max_in_flight_per_credential=2
    ) as emulator:
        path = f"/v1beta/models/{FAST}:predictLongRunning"
        answers = [
            await emulator.client.post(path, json={"instances": [{"prompt": f"call {n}"}]})
            for n in range(3)
        ]
        refused = await emulator.client.post(path, json={"instances": []})
        stats = (await emulator.client.get("/_emulator/stats")).json()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert refused.status_code == 400
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["status"], line["prompt"]) for line in lines] == [
        (200, "call 0"),
        (200, "call 1"),
        (429, "call 2"),
        (400, None),
    ]
    assert [line["operation"] for line in lines] == [
        answers[0].json()["name"],
        answers[1].json()["name"],
        None,
        None,
    ]
    assert [line["injected"] for line in lines] == ["fail", "fail", None, None]
    assert {line["credential"] for line in lines} == {fingerprint(KEY)[:8]}
    for line in lines:
        assert line["received_at"] <= line["answered_at"]
    assert lines[0]["answered_at"] <= lines[1]["received_at"]
    assert stats["peak_in_flight_by_credential"] == {fingerprint(KEY)[:8]: 2}


async def test_without_a_log_nothing_is_written(
    make_emulator: Callable[..., AbstractAsyncContextManager[Emulator]], tmp_path: Path
) -> None:
    async with make_emulator() as emulator:
        path = f"/v1beta/models/{FAST}:predictLongRunning"
        answer = await emulator.client.post(path, json={"instances": [{"prompt": "quiet"}]})
        assert answer.status_code == 200
    assert not list(tmp_path.rglob("*.jsonl"))
