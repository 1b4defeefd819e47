"""PostgreSQL for tests: a fresh database per test on the server of VEO_GATEWAY_TEST_POSTGRES_URL,
and a private server of a test's own for the tests that stop and start it.

Tests that need PostgreSQL are marked `postgresql` and run only in the PostgreSQL run
(VEO_GATEWAY_TEST_DB=postgresql, see tests/conftest.py); there they fail, never skip, when the
server's URL is not set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from tests.support.servers import free_port

URL_VARIABLE = "VEO_GATEWAY_TEST_POSTGRES_URL"
_BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


def admin_url() -> str:
    """The admin URL tests may CREATE and DROP databases on; fails the test when unset."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.fail(
            f"this test needs a PostgreSQL server: set {URL_VARIABLE} to an admin URL on which "
            "tests may CREATE and DROP DATABASE (e.g. postgresql://postgres@127.0.0.1:5432/postgres)"
        )
    return url


def _asyncpg_dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def engine_url(url: str, database: str) -> str:
    """`url` on `database`, as the gateway's async engine takes it."""
    return (
        sa.make_url(url)
        .set(drivername="postgresql+asyncpg", database=database)
        .render_as_string(hide_password=False)
    )


@contextlib.asynccontextmanager
async def fresh_database(url: str | None = None, prefix: str = "pgreads") -> AsyncIterator[str]:
    """A new, empty database on the server of `url` (the test server by default), dropped
    afterwards; yields its engine URL."""
    admin = _asyncpg_dsn(url or admin_url())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield engine_url(admin, name)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def _bin(name: str) -> str:
    for directory in _BIN_DIRS:
        if (Path(directory) / name).exists():
            return str(Path(directory) / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package")
    return found


class PrivateServer:
    """A PostgreSQL server of its own (initdb into a temporary directory, its own port), which
    a test may stop and start; run as the `postgres` user when the tests run as root."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync
        self.directory = Path(tempfile.mkdtemp(prefix="veo-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            _bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        if not self.fsync:  # a test's data need not survive a power cut
            options += " -c fsync=off"
        self._run(
            _bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are cut, as in a restart)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs, and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def private_server() -> Iterator[PrivateServer]:
    """A started private server, removed when the block ends."""
    server = PrivateServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
