"""`veo-gateway generate` and `veo-gateway videos ...` as real processes against a real gateway."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.api.test_google_env import start_emulator, vertex_env
from tests.conftest import KEY_A, KEY_B, Gateway
from tests.support.media import assert_length, make_image
from tests.support.servers import free_port
from veo_gateway.domain.catalog import DEFAULT_MODEL
from veo_gateway.media.probe import probe_video

PROMPT = "a paper boat on a stream"


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """An empty working directory for the command (the gateway's data is beside it)."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def run(
    gateway_url: str, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command with the gateway's URL and key in the environment, as a user would;
    `env` overrides those variables (an empty value is unset, to the command)."""
    env = {
        **os.environ,
        "VEO_GATEWAY_BASE_URL": gateway_url,
        "VEO_GATEWAY_API_KEY": KEY_A,
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "veo_gateway", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def video_id(output: str) -> str:
    match = re.search(r"video_[0-9a-f]+", output)
    assert match, output
    return match.group(0)


def test_generate_writes_the_mp4(gateway: Gateway, cwd: Path) -> None:
    result = run(
        gateway.url,
        cwd,
        *("generate", PROMPT, "--duration", "4", "--aspect-ratio", "9:16"),
        *("--poll-interval", "0.1", "-o", "boat.mp4"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "boat.mp4"
    info = probe_video(cwd / "boat.mp4")
    assert (info.width, info.height) == (720, 1280)
    assert_length(info, 4)
    task = gateway.get(video_id(result.stderr)).json()
    assert task["status"] == "completed"
    assert task["model"] == DEFAULT_MODEL  # the gateway's default, as everywhere


def test_generate_makes_and_saves_every_sample(
    make_gateway: Callable[..., Gateway], tmp_path: Path, cwd: Path
) -> None:
    """On a Vertex route (the emulator's): --samples, --seed and --no-audio go out as the
    options, and each sample is saved beside the first."""
    with contextmanager(start_emulator)(tmp_path) as emulator:
        gateway = make_gateway(**vertex_env(emulator))
        result = run(
            gateway.url,
            cwd,
            *("generate", PROMPT, "--model", "veo-3.1-generate-preview", "--duration", "4"),
            *("--samples", "2", "--seed", "7", "--no-audio", "--poll-interval", "0.1"),
            *("-o", "boat.mp4"),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["boat.mp4", "boat.1.mp4"]
        task_id = video_id(result.stderr)
        for index, name in enumerate(["boat.mp4", "boat.1.mp4"]):
            served = gateway.client.get(
                f"/v1/videos/{task_id}/content", params={"index": index}, headers=gateway.headers()
            )
            assert (cwd / name).read_bytes() == served.content
        (sent,) = [
            entry["body"]["parameters"]
            for entry in httpx.get(f"{emulator}/_emulator/requests").json()
            if entry["path"].endswith(":predictLongRunning")
        ]
        assert (sent["sampleCount"], sent["seed"], sent["generateAudio"]) == (2, 7, False)


def test_generate_refuses_an_option_the_route_does_not_take(gateway: Gateway, cwd: Path) -> None:
    """The built-in emulator speaks the Gemini API, where Google's SDK sends no seed."""
    result = run(gateway.url, cwd, "generate", PROMPT, "--seed", "7")
    assert result.returncode == 1
    assert "seed" in result.stderr and not list(cwd.iterdir())


def test_generate_from_a_local_image_saves_to_the_id_by_default(
    gateway: Gateway, cwd: Path
) -> None:
    (cwd / "first.png").write_bytes(make_image("PNG", (1280, 720)))
    result = run(
        gateway.url, cwd, "generate", PROMPT, "--image", "first.png", "--poll-interval", "0.1"
    )
    assert result.returncode == 0, result.stderr
    task = video_id(result.stderr)
    assert result.stdout.strip() == f"{task}.mp4"
    assert probe_video(cwd / f"{task}.mp4").width == 1280


def test_a_validation_error_prints_the_servers_message(gateway: Gateway, cwd: Path) -> None:
    expected = gateway.create(
        {
            "model": "veo-3.1-fast-generate-preview",
            "prompt": PROMPT,
            "metadata": {"durationSeconds": 5},
        }
    ).json()["error"]["message"]
    result = run(gateway.url, cwd, "generate", PROMPT, "--duration", "5")
    assert result.returncode == 1
    assert expected in result.stderr
    assert list(cwd.iterdir()) == []


def test_a_failed_task_prints_its_fail_reason(gateway: Gateway, cwd: Path) -> None:
    result = run(
        gateway.url, cwd, "generate", f"{PROMPT} [emulator:fail]", "--poll-interval", "0.1"
    )
    assert result.returncode == 1
    task = gateway.get(video_id(result.stderr)).json()
    assert task["status"] == "failure"
    assert task["fail_reason"] in result.stderr
    assert list(cwd.iterdir()) == []

    download = run(gateway.url, cwd, "videos", "download", task["id"], "-o", "x.mp4")
    assert download.returncode == 1
    assert task["fail_reason"] in download.stderr


def test_an_unreachable_gateway_is_said_plainly(cwd: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(url, cwd, "generate", PROMPT)
    assert result.returncode == 1
    assert f"cannot reach the gateway at {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_videos_show_and_download(gateway: Gateway, cwd: Path) -> None:
    task = gateway.create({"model": "veo-3.1-fast-generate-preview", "prompt": PROMPT}).json()
    # download waits for the task to finish, then saves it.
    result = run(
        gateway.url,
        cwd,
        *("videos", "download", task["id"], "-o", "later.mp4", "--poll-interval", "0.1"),
    )
    assert result.returncode == 0, result.stderr
    assert probe_video(cwd / "later.mp4").video_codec == "h264"
    # --index picks a sample; this task made one.
    second = run(gateway.url, cwd, "videos", "download", task["id"], "--index", "1")
    assert second.returncode == 1 and "has 1 sample(s), index 0 to 0" in second.stderr
    assert not (cwd / f"{task['id']}.1.mp4").exists()

    shown = run(gateway.url, cwd, "videos", "show", task["id"])
    assert shown.returncode == 0, shown.stderr
    assert f"id: {task['id']}" in shown.stdout
    assert "status: completed" in shown.stdout
    as_json = run(gateway.url, cwd, "videos", "show", task["id"], "--json")
    assert json.loads(as_json.stdout) == gateway.get(task["id"]).json()

    missing = run(gateway.url, cwd, "videos", "show", "video_0000")
    assert missing.returncode == 1
    assert gateway.get("video_0000").json()["error"]["message"] in missing.stderr


def test_videos_download_without_waiting_prints_why_not(
    make_gateway: Callable[..., Gateway], cwd: Path
) -> None:
    gateway = make_gateway(emulator_latency="60")
    task = gateway.create({"model": "veo-3.1-fast-generate-preview", "prompt": PROMPT}).json()
    result = run(gateway.url, cwd, "videos", "download", task["id"], "--no-wait")
    assert result.returncode == 1
    assert f"video {task['id']} is not ready yet" in result.stderr
    assert list(cwd.iterdir()) == []


ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_videos_list(gateway: Gateway, cwd: Path) -> None:
    body = {"model": "veo-3.1-fast-generate-preview", "prompt": PROMPT}
    first, second = (gateway.create(body).json()["id"] for _ in range(2))
    gateway.wait(first)
    # A narrow terminal and a pipe (stdout is one here): ids are never cut, whatever the width.
    result = run(gateway.url, cwd, "videos", "list", env={"COLUMNS": "40"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "model", "status", "progress", "created", "completed"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == [second, first]  # newest first, whole
    finished = gateway.get(first).json()
    assert rows[first][1:] == [
        "veo-3.1-fast-generate-preview",
        "completed",
        "100%",
        utc(finished["created_at"]),
        utc(finished["completed_at"]),
    ]
    assert re.fullmatch(ISO_UTC, rows[second][4])
    newest = run(gateway.url, cwd, "videos", "list", "--limit", "1")
    assert second in newest.stdout and first not in newest.stdout


def test_videos_list_json_is_the_gateways_objects(gateway: Gateway, cwd: Path) -> None:
    body = {"model": "veo-3.1-fast-generate-preview", "prompt": PROMPT}
    for task in [gateway.create(body).json()["id"] for _ in range(3)]:
        gateway.wait(task)  # finished, so the objects no longer change
    result = run(gateway.url, cwd, "videos", "list", "--json", "--limit", "2")
    assert result.returncode == 0, result.stderr
    listed = gateway.client.get("/v1/videos?limit=2", headers=gateway.headers()).json()["data"]
    assert json.loads(result.stdout) == listed
    empty = run(gateway.url, cwd, "videos", "list", "--json", env={"VEO_GATEWAY_API_KEY": KEY_B})
    assert json.loads(empty.stdout) == []


def test_videos_show_prints_times_as_dates(gateway: Gateway, cwd: Path) -> None:
    task = gateway.create({"model": "veo-3.1-fast-generate-preview", "prompt": PROMPT}).json()
    shown = run(gateway.url, cwd, "videos", "show", task["id"])
    assert shown.returncode == 0, shown.stderr
    assert f"created_at: {utc(task['created_at'])}" in shown.stdout.splitlines()


def test_videos_delete(make_gateway: Callable[..., Gateway], cwd: Path) -> None:
    gateway = make_gateway(emulator_latency="60")
    task = gateway.create({"model": "veo-3.1-fast-generate-preview", "prompt": PROMPT}).json()
    result = run(gateway.url, cwd, "videos", "delete", task["id"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"deleted {task['id']}"
    gone = gateway.get(task["id"])
    assert gone.status_code == 404
    again = run(gateway.url, cwd, "videos", "delete", task["id"])
    assert again.returncode == 1
    assert gone.json()["error"]["message"] in again.stderr


def test_no_key_says_where_a_key_comes_from(gateway: Gateway, cwd: Path) -> None:
    for args in (("generate", PROMPT), ("videos", "list"), ("videos", "show", "video_0")):
        result = run(gateway.url, cwd, *args, env={"VEO_GATEWAY_API_KEY": ""})
        assert result.returncode == 1, result.stderr
        assert "no API key: pass --api-key KEY or set VEO_GATEWAY_API_KEY" in result.stderr
        assert "veo-gateway keys create" in result.stderr
    # A key the gateway refuses: its message, and where the key came from.
    wrong = run(gateway.url, cwd, "videos", "list", env={"VEO_GATEWAY_API_KEY": "nope"})
    assert wrong.returncode == 1
    refused = gateway.client.get("/v1/videos", headers={"Authorization": "Bearer nope"})
    assert refused.json()["error"]["message"] in wrong.stderr
    assert "(the key comes from --api-key or VEO_GATEWAY_API_KEY)" in wrong.stderr
    assert gateway.client.get("/v1/videos", headers=gateway.headers()).json()["data"] == []


def test_ctrl_c_leaves_the_task_running(make_gateway: Callable[..., Gateway], cwd: Path) -> None:
    gateway = make_gateway(emulator_latency="60")
    env = {**os.environ, "VEO_GATEWAY_BASE_URL": gateway.url, "VEO_GATEWAY_API_KEY": KEY_A}
    process = subprocess.Popen(
        [sys.executable, "-m", "veo_gateway", "generate", PROMPT, "--poll-interval", "0.1"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # "created video_... (model)"
        task = video_id(first)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, rest
    assert f"veo-gateway videos download {task} -o {task}.mp4" in rest
    assert gateway.get(task).json()["status"] in ("", "in_progress")
