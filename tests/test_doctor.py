"""`veo-gateway doctor` as a process, against emulator processes over Google's protocols: a
working setup, a bad key or token, and a model id Google no longer serves."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port, start, stop, wait_http

FAST = "veo-3.1-fast-generate-preview"
TOKEN = "doctor-token"
GOOGLE_VARIABLES = (
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def run_emulator(tmp_path: Path, name: str, retired: str = "") -> Iterator[str]:
    port = free_port()
    log = tmp_path / f"{name}.log"
    process = start(
        ["emulator", "--port", str(port)],
        {
            "VEO_GATEWAY_DATA_DIR": str(tmp_path / name),
            "VEO_GATEWAY_EMULATOR_API_KEYS": "good-key",
            "VEO_GATEWAY_EMULATOR_VERTEX_TOKENS": TOKEN,
            "VEO_GATEWAY_EMULATOR_RETIRED_MODELS": retired,
            "VEO_GATEWAY_LOG_LEVEL": "warning",
        },
        log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_emulator/stats", process, log)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from run_emulator(tmp_path_factory.mktemp("doctor"), "healthy")


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Google has shut the fast tier's ids down, on both protocols."""
    retired = f"{FAST},veo-3.1-fast-generate-001"
    yield from run_emulator(tmp_path_factory.mktemp("doctor"), "drifted", retired)


def doctor(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in GOOGLE_VARIABLES}
    base = {k: v for k, v in base.items() if not k.startswith("VEO_GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "veo_gateway", "doctor"],
        cwd=tmp_path,
        env={**base, "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def gemini(url: str, key: str = "good-key") -> dict[str, str]:
    return {"GEMINI_API_KEY": key, "VEO_GATEWAY_GEMINI_BASE_URL": url}


def vertex(url: str, token: str = TOKEN) -> dict[str, str]:
    return {
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        "GOOGLE_CLOUD_PROJECT": "proj-1",
        "GOOGLE_VERTEX_BASE_URL": url,
        "VEO_GATEWAY_VERTEX_ACCESS_TOKEN": token,
    }


def lines_marked(output: str, mark: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(mark)]


def test_a_working_gemini_setup(tmp_path: Path, healthy: str) -> None:
    # The default routes name Veo 2.0 and 3.0 too, which the emulator still serves as Google
    # served them before their retirement.
    result = doctor(tmp_path, gemini(healthy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"upstream: Gemini API at {healthy} (1 key(s) from GEMINI_API_KEY)" in result.stdout
    assert lines_marked(result.stdout, "FAIL") == []
    assert any(line.startswith("ok    credential gemini#") for line in result.stdout.splitlines())
    assert f"ok    route {FAST} -> gemini, {FAST}: gemini serves {FAST}" in result.stdout
    assert result.stdout.rstrip().endswith("every upstream and route works.")


def test_a_working_vertex_setup_prints_its_route_table(tmp_path: Path, healthy: str) -> None:
    result = doctor(tmp_path, vertex(healthy))
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("routes (", 1)[1].split("\n\n", 1)[0]
    assert (
        f"{FAST}".ljust(len("veo-3.1-fast-generate-preview"))
        + " -> vertex (Vertex AI, project proj-1, location global), veo-3.1-fast-generate-001"
        in table
    )
    assert len(lines_marked(result.stdout, "ok    route")) == 6


@pytest.mark.parametrize("protocol", ["gemini", "vertex"])
def test_a_bad_key_or_token_is_broken_with_its_fix(
    tmp_path: Path, healthy: str, protocol: str
) -> None:
    env = gemini(healthy, key="bad-key") if protocol == "gemini" else vertex(healthy, "stale")
    result = doctor(tmp_path, env)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = lines_marked(result.stdout, "FAIL")
    assert failed[0].startswith("FAIL  credential ")
    if protocol == "gemini":
        assert "refused (HTTP 400 INVALID_ARGUMENT: API key not valid" in failed[0]
        assert "fix: replace the key in GOOGLE_API_KEY / GEMINI_API_KEY" in result.stdout
    else:
        assert "refused (HTTP 401 UNAUTHENTICATED" in failed[0]
        assert "GOOGLE_APPLICATION_CREDENTIALS" in result.stdout
    # The broken credential is the one problem; the routes could not be checked, and say so.
    assert len(failed) == 1
    unchecked = lines_marked(result.stdout, "warn  route")
    assert len(unchecked) >= 4
    assert all("not checked: no credential of the upstream works" in line for line in unchecked)
    assert "1 problem(s) found." in result.stdout
    assert result.stdout.rstrip().endswith("problem(s) found.")


def test_a_gone_model_is_named_with_what_serves_it_now(tmp_path: Path, drifted: str) -> None:
    result = doctor(tmp_path, gemini(drifted))
    assert result.returncode == 1, result.stdout + result.stderr
    (failed,) = lines_marked(result.stdout, "FAIL")
    assert failed.startswith(
        f"FAIL  route {FAST} -> gemini, {FAST}: upstream model id {FAST} is gone at upstream "
        f"'gemini' (Google answered 404: models/{FAST} is not found"
    )
    fix = result.stdout.split(failed, 1)[1].splitlines()[1]
    assert "Vertex AI serves it as veo-3.1-fast-generate-001" in fix
    assert "veo-gateway doctor" not in fix
    assert "ok    route veo-3.1-generate-preview -> gemini" in result.stdout
    assert "1 problem(s) found." in result.stdout


def test_a_gone_model_on_vertex(tmp_path: Path, drifted: str) -> None:
    result = doctor(tmp_path, vertex(drifted))
    assert result.returncode == 1, result.stdout + result.stderr
    failed = lines_marked(result.stdout, "FAIL")
    assert [line.split(":", 1)[0] for line in failed] == [
        f"FAIL  route {FAST} -> vertex, veo-3.1-fast-generate-001",
        "FAIL  route veo-3.1-fast-generate-001 -> vertex, veo-3.1-fast-generate-001",
    ]
    assert (
        "Publisher Model `publishers/google/models/veo-3.1-fast-generate-001` not found"
        in (failed[0])
    )
    assert "ok    credential vertex" in result.stdout


def test_the_built_in_emulator_has_nothing_to_check(tmp_path: Path) -> None:
    result = doctor(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "upstream: built-in emulator" in result.stdout
    assert "nothing at Google to check" in result.stdout
    assert list((tmp_path / "data").glob("*")) == []  # nothing started, nothing written


def test_an_unreachable_upstream_is_broken_with_its_fix(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = doctor(tmp_path, vertex(closed))
    assert result.returncode == 1, result.stdout + result.stderr
    (failed,) = lines_marked(result.stdout, "FAIL")
    assert failed.startswith("FAIL  credential vertex (Vertex AI, project proj-1, location global)")
    assert "unreachable" in failed
    assert "fix: check GOOGLE_VERTEX_BASE_URL / GOOGLE_CLOUD_LOCATION" in result.stdout
