"""`veo-gateway keys ...` as real processes: which database they open, and how they list."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest


@pytest.fixture
def env(db_backend: str) -> dict[str, str]:
    """The environment without the gateway's data directory (nor, on SQLite, its database)."""
    names = ("VEO_GATEWAY_DATA_DIR", "VEO_GATEWAY_DATABASE_URL")
    if db_backend == "postgresql":
        names = names[:1]  # the test's own database
    return {name: value for name, value in os.environ.items() if name not in names}


def keys(
    cwd: Path, env: dict[str, str], *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veo_gateway", "keys", *args],
        cwd=cwd,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.sqlite  # where the SQLite file is, and that none is made by a mistake
def test_keys_say_which_database_they_use(tmp_path: Path, env: dict[str, str]) -> None:
    here = tmp_path / "project"
    here.mkdir()
    created = keys(here, env, "create", "--name", "ci")
    assert created.returncode == 0, created.stderr
    db = here / "data" / "veo-gateway.db"
    assert created.stderr.splitlines() == [f"database: {db} (new: there was none)"]
    key_id = re.search(r"key_\w+", created.stdout)
    assert key_id

    # From elsewhere, nothing is there: said, and no empty database is left behind.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = keys(elsewhere, env, "list")
    assert missing.returncode == 1
    assert f"no database at {elsewhere / 'data' / 'veo-gateway.db'}" in missing.stderr
    assert "--data-dir or --database-url" in missing.stderr
    assert list(elsewhere.iterdir()) == []

    # --data-dir, --database-url and the environment all reach the same database.
    for args, extra in [
        (("--data-dir", str(here / "data")), {}),
        (("--database-url", f"sqlite+aiosqlite:///{db}"), {}),
        ((), {"VEO_GATEWAY_DATA_DIR": str(here / "data")}),
    ]:
        listed = keys(elsewhere, env, "list", *args, **extra)
        assert listed.returncode == 0, listed.stderr
        assert listed.stderr.splitlines() == [f"database: {db}"]
        assert key_id.group(0) in listed.stdout
    # The option wins over the environment, as a setting given on the command line should.
    other = keys(
        elsewhere, env, "list", "--data-dir", str(here / "data"), VEO_GATEWAY_DATA_DIR="nowhere"
    )
    assert other.returncode == 0, other.stderr
    assert list(elsewhere.iterdir()) == []


def test_keys_list_columns_and_json(tmp_path: Path, env: dict[str, str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    for name in ("alice", "a-much-longer-name-for-the-ci-pipeline"):
        assert keys(tmp_path, env, "create", "--name", name, *data).returncode == 0
    revoked = keys(tmp_path, env, "list", "--json", *data)
    stored = json.loads(revoked.stdout)
    assert [key["name"] for key in stored] == ["alice", "a-much-longer-name-for-the-ci-pipeline"]
    assert keys(tmp_path, env, "revoke", stored[0]["id"], *data).returncode == 0

    as_json = json.loads(keys(tmp_path, env, "list", "--json", *data).stdout)
    assert as_json[0]["revoked_at"] is not None and as_json[1]["revoked_at"] is None
    assert {"id", "name", "prefix", "created_at", "max_in_flight"} <= set(as_json[0])

    table = keys(tmp_path, env, "list", *data, COLUMNS="40").stdout.splitlines()
    assert table[0].split() == ["id", "name", "prefix", "state", "created", "limits"]
    for line, key in zip(table[1:], as_json, strict=True):
        cells = line.split(maxsplit=5)
        created = datetime.fromtimestamp(key["created_at"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert cells[:5] == [
            key["id"],
            key["name"],
            f"{key['prefix']}…",
            "revoked" if key["revoked_at"] else "active",
            created,
        ]
        assert cells[5] == "no limits"
