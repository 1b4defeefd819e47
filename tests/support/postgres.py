"""The test backend: SQLite files, or fresh databases on a real PostgreSQL server.

`--db=postgresql` (or VEO_GATEWAY_TEST_DB=postgresql) runs the database tests against the server
at VEO_GATEWAY_TEST_POSTGRES_URL, an admin URL on which tests may CREATE and DROP DATABASE: each
test gets a database of its own, dropped when it ends. Without that variable such a run fails,
saying what to set (it never falls back to SQLite, which would pass without testing anything).

Tests that stop and start PostgreSQL run a `PrivateServer` of their own (initdb in a temporary
directory, as the `postgres` user when the tests run as root), never the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from veo_gateway.store.database import database_url as parse_url

ADMIN_URL = "VEO_GATEWAY_TEST_POSTGRES_URL"
BACKEND = "VEO_GATEWAY_TEST_DB"
BACKENDS = ("sqlite", "postgresql")

T = TypeVar("T")


def admin_url() -> str:
    """The admin URL of the tests' PostgreSQL server; fails the test when it is not set."""
    url = os.environ.get(ADMIN_URL, "").strip()
    if not url:
        pytest.fail(
            f"this test needs PostgreSQL: set {ADMIN_URL} to an admin URL of a server on which "
            "tests may CREATE DATABASE (e.g. postgresql://postgres@127.0.0.1:5432/postgres)",
            pytrace=False,
        )
    return url


def _in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end on a loop of its own (callers may be inside a running loop)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


async def _admin(url: str, *statements: str) -> None:
    import asyncpg

    dsn = parse_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(admin: str, prefix: str = "veo_test") -> Iterator[str]:
    """A new, empty database on the server of `admin`, dropped afterwards; yields its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    _in_thread(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield parse_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a gateway a test left running (or a killed process) may still be connected.
        _in_thread(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Database:
    """Plain SQL on a test's database from synchronous test code, whichever the backend.

    Statements are SQLAlchemy text with `:name` parameters; each runs in its own transaction.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return sa.make_url(self.url).get_backend_name()

    async def _run(self, sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        engine = create_async_engine(parse_url(self.url), poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(sa.text(sql), params)
                rows = [dict(row) for row in result.mappings()] if result.returns_rows else []
                return rows, result.rowcount
        finally:
            await engine.dispose()

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """The rows of a query, as dicts."""
        return _in_thread(self._run(sql, params))[0]

    def scalar(self, sql: str, **params: Any) -> Any:
        """The first column of the first row (None when there is none)."""
        rows = self.rows(sql, **params)
        return next(iter(rows[0].values())) if rows else None

    def execute(self, sql: str, **params: Any) -> int:
        """Run a statement; the number of rows it changed."""
        return _in_thread(self._run(sql, params))[1]


def _binary(name: str) -> str:
    """A PostgreSQL server program: on PATH, or where Debian installs the newest version."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        if not candidates:
            pytest.fail(f"{name} (the PostgreSQL server) is not installed", pytrace=False)
        found = candidates[-1]
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateServer:
    """A PostgreSQL server of one test's own, which the test may stop and start again.

    It lives in a temporary directory outside the test's tmp_path (which the `postgres` user
    could not enter when the tests run as root), and is removed by `close`.
    """

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync  # a test's data need not survive a power cut; a benchmark's writes do
        self.directory = Path(tempfile.mkdtemp(prefix="veo-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.directory, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        initdb = _binary("initdb")
        self._command(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Start the server and wait until it takes connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        if not self.fsync:
            options += " -c fsync=off"
        log = str(self.directory / "server.log")
        pg_ctl = _binary("pg_ctl")
        self._command(pg_ctl, "start", "-w", "-D", str(self.data), "-o", options, "-l", log)

    def stop(self) -> None:
        """Stop the server at once (open connections are cut), as a crash or restart would."""
        self._command(_binary("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))

    def close(self) -> None:
        """Stop the server if it runs, and remove its directory."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    """A running PostgreSQL server of this test's own (see PrivateServer)."""
    server = PrivateServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=BACKENDS,
        default=None,
        help=f"the database the tests run on (default: ${BACKEND}, else sqlite); postgresql "
        f"makes a fresh database per test on the server at ${ADMIN_URL}",
    )


def backend(config: pytest.Config) -> str:
    """The backend of this run: --db, else VEO_GATEWAY_TEST_DB, else sqlite."""
    chosen = config.getoption("--db") or os.environ.get(BACKEND, "").strip() or "sqlite"
    if chosen not in BACKENDS:
        raise pytest.UsageError(f"{BACKEND} must be one of {', '.join(BACKENDS)}, not {chosen!r}")
    return str(chosen)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: runs only with --db=postgresql")
    config.addinivalue_line("markers", "sqlite: runs only on SQLite (the default backend)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test of the other backend is deselected, not skipped: it is not part of this run.
    other = "sqlite" if backend(config) == "postgresql" else "postgresql"
    kept = [item for item in items if item.get_closest_marker(other) is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def db_backend(pytestconfig: pytest.Config) -> str:
    """ "sqlite" or "postgresql": the backend this run tests."""
    return backend(pytestconfig)


@pytest.fixture(autouse=True)
def _test_database(
    db_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The URL of this test's database: on SQLite the gateway's default file in
    tmp_path / "data"; on PostgreSQL a fresh database, which every Settings() of the test (and
    every process it starts) uses through VEO_GATEWAY_DATABASE_URL."""
    if db_backend == "sqlite":
        monkeypatch.delenv("VEO_GATEWAY_DATABASE_URL", raising=False)
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'veo-gateway.db'}"
        return
    with fresh_database(admin_url()) as url:
        monkeypatch.setenv("VEO_GATEWAY_DATABASE_URL", url)
        yield url


async def terminate(application_name: str, database_url: str) -> int:
    """pg_terminate_backend every session of `application_name` on the database; how many."""
    database = sa.engine.make_url(database_url).database
    connection = await asyncpg.connect(
        parse_url(admin_url()).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = $2",
            application_name,
            database,
        )
    finally:
        await connection.close()
    return len(rows)


@pytest.fixture
def database_url(_test_database: str) -> str:
    """The URL of this test's database (for engines a test makes itself)."""
    return _test_database


@pytest.fixture
def db(_test_database: str) -> Database:
    """Plain SQL on this test's database (the gateways `make_gateway` starts use it)."""
    return Database(_test_database)
