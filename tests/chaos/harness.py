"""The chaos test's pieces: gateway processes that can be killed and started again, a killer
that does so at random, a client that creates tasks through whichever API replica answers, and
readings of the emulator's submission log."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import start, stop, wait_http

# Seconds after an emulator answered a submission during which a kill of a worker still counts
# as "on the wire": the worker has the answer but may not have stored the operation's name yet.
WIRE_MARGIN = 2.0
# Seconds by which a request may reach the emulator later than the gateway counted it against
# the credential's per-minute window (the gateway counts before sending).
TRANSIT = 2.0


@dataclass
class Process:
    """One gateway process (`serve --no-worker` or `worker`) on a fixed port."""

    name: str
    role: str  # "api" or "worker"
    args: list[str]
    env: dict[str, str]
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        self.popen = start([*self.args, "--port", str(self.port)], self.env, self.log)
        wait_http(f"{self.url}/healthz", self.popen, self.log, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no shutdown, no cleanup."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None:
            stop(self.popen)


@dataclass
class Kill:
    at: float  # Unix seconds, taken just before the signal
    name: str
    role: str
    back_at: float | None = None  # Unix seconds: its successor answers /healthz


@dataclass
class Killer:
    """Every `every` seconds (jittered), SIGKILLs a random process and starts it again on the
    same port. One at a time, so one API replica always answers."""

    processes: list[Process]
    rng: random.Random
    every: tuple[float, float] = (2.5, 4.5)
    kills: list[Kill] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)

    def __enter__(self) -> Killer:
        self._thread = threading.Thread(target=self._run, name="chaos killer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.rng.uniform(*self.every)):
                victim = self.rng.choice(self.processes)
                kill = Kill(time.time(), victim.name, victim.role)
                self.kills.append(kill)
                victim.kill()
                victim.start()
                kill.back_at = time.time()
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.errors.append(exc)


class Client:
    """Creates and reads tasks through the API replicas, moving to the other replica when one
    is down (a killed replica refuses connections until it is started again)."""

    def __init__(self, urls: list[str], rng: random.Random) -> None:
        self.urls = urls
        self.rng = rng
        self.http = httpx.Client(timeout=30)

    def close(self) -> None:
        self.http.close()

    def request(
        self, method: str, path: str, *, first: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        """The answer of the first replica that gives one (starting at `first`, else at random),
        going round the replicas until one does (at most a minute)."""
        start = self.rng.randrange(len(self.urls)) if first is None else first
        deadline = time.monotonic() + 60
        attempt = 0
        while True:
            url = self.urls[(start + attempt) % len(self.urls)]
            try:
                answer = self.http.request(method, f"{url}{path}", **kwargs)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code < 500:
                return answer
            if time.monotonic() > deadline:
                raise AssertionError(f"no replica answered {method} {path}: {answer}")
            attempt += 1
            time.sleep(0.2)


@dataclass(frozen=True)
class Submission:
    """One line of the emulator's submission log."""

    received_at: float
    answered_at: float
    credential: str
    status: int | None
    prompt: str | None
    operation: str | None
    injected: str | None


def read_submissions(path: Path) -> list[Submission]:
    if not path.exists():
        return []
    return [Submission(**json.loads(line)) for line in path.read_text().splitlines() if line]


def on_the_wire(submission: Submission, kills: list[Kill]) -> bool:
    """Whether a worker was killed while `submission` was on the wire: after it was sent (it
    reached the emulator a little later), and before its answer could have been stored."""
    return any(
        kill.role == "worker"
        and submission.received_at - TRANSIT <= kill.at <= submission.answered_at + WIRE_MARGIN
        for kill in kills
    )


def peak_per_minute(times: list[float]) -> int:
    """The most of `times` inside any window of a minute (less the transit allowance)."""
    ordered = sorted(times)
    best, low = 0, 0
    for high, now in enumerate(ordered):
        while ordered[low] <= now - (60.0 - TRANSIT):
            low += 1
        best = max(best, high - low + 1)
    return best


def wait_all(
    client: Client, tasks: dict[str, str], deadline: float
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Polls each task (id -> client key) until every one is finished or `deadline` (monotonic)
    passes; yields (id, last status) for each, finished or not."""
    pending = dict(tasks)
    last: dict[str, dict[str, Any]] = {}
    while pending and time.monotonic() < deadline:
        for task_id, key in list(pending.items()):
            answer = client.request(
                "GET", f"/v1/videos/{task_id}", headers={"Authorization": f"Bearer {key}"}
            )
            body: dict[str, Any] = answer.json()
            last[task_id] = body
            if body.get("status") in ("completed", "failure"):
                del pending[task_id]
        if pending:
            time.sleep(1.0)
    yield from last.items()
