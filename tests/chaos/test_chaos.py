"""Chaos: two API replicas and two workers on one PostgreSQL database and one S3 bucket (moto's
server on loopback), the emulator in its own process injecting faults into about one call in
ten, and a gateway process SIGKILLed (and started again on its port) every few seconds, while
three client keys create tasks of every input mode, some with Idempotency-Keys (some sent twice,
to different replicas) and some with a callback URL. When the dust settles:

- every task is completed, or failed with the reason the emulator injected into it;
- each task reached the emulator once, but for submissions on the wire when a worker died;
- the emulator never saw a credential over its in-flight cap or its requests per minute;
- each completed task is charged once (the ledger and `/v1/usage` agree), failed ones never;
- each finished task's event reached the receiver, every copy with the same `webhook-id`;
- every completed task's video downloads from every API replica, the same bytes from each, out
  of the bucket (no video is left on the processes' local disk).

It runs once, with object storage, the deployment's shape (deploy/compose.yaml): what it checks
of tasks, limits, charges and events does not depend on where the bytes are kept, and the file
store keeps its own tests (tests/media/test_storage_contract.py, the crash tests).

A submission cut off by a kill may be running at the emulator all the same; the gateway keeps
its credential slot for a render's time after requeueing it (store/credentials.py), so the cap
holds around restarts too.

Not covered here: PostgreSQL itself going away (tests/test_database_away.py), client-key limits
racing across replicas (tests/api/test_shared_limits.py), SIGKILLs of the emulator.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.harness import (
    Client,
    Kill,
    Killer,
    Process,
    Submission,
    on_the_wire,
    peak_per_minute,
    read_submissions,
    wait_all,
)
from tests.conftest import share_once_renders
from tests.support.media import b64, make_image
from tests.support.postgres import Database
from tests.support.processes import start, stop, wait_http
from tests.support.s3 import Bucket, s3_environment
from tests.support.servers import serve_app
from tests.support.topology import API_ARGS, API_REPLICAS, WORKER_ARGS, WORKERS
from tests.test_roles import distinct_ports
from tests.webhooks.conftest import SECRET, Receiver, verify
from veo_gateway.emulator.operations import fingerprint
from veo_gateway.media.storage.space import TEMP_PREFIX

pytestmark = pytest.mark.postgresql

FAST = "veo-3.1-fast-generate-preview"
TASKS = 150
CLIENT_KEYS = ("chaos-client-a", "chaos-client-b", "chaos-client-c")
UPSTREAM_KEYS = ("chaos-upstream-1", "chaos-upstream-2")
RPM = 50  # per upstream credential, on the gateway's side
IN_FLIGHT = 3  # per upstream credential: the gateway's cap, and the emulator's quota
# About one call in ten goes wrong, of each kind; a fixed seed for the faults, and for the rest.
FAULTS = (
    "submit.429=0.04,submit.500=0.05,poll.500=0.05,poll.429=0.03,download.broken=0.05,"
    "download.truncated=0.03,operation.fail=0.06,operation.blocked=0.04,seed=13"
)
SEED = 13
# What a failed task's fail_reason says for each injected outcome.
REASONS = {"fail": "internal error", "blocked": "safety"}
DEADLINE = 150.0  # seconds, from the last create, for every task to finish
UNFINISHED = (
    "select id, state, attempts, lease_owner, lease_until, operation_name, fail_reason "
    "from tasks where state not in ('completed', 'failed') order by id"
)


@pytest.fixture
def emulator(tmp_path: Path, once_renders: Path) -> Iterator[tuple[str, Path]]:
    """`veo-gateway emulator` in its own process with faults, a per-credential in-flight quota
    and a submission log; yields its URL and the log's path."""
    port = distinct_ports(1)[0]
    share_once_renders(tmp_path / "emulator-home", once_renders)
    requests_log = tmp_path / "submissions.jsonl"
    log = tmp_path / "emulator.log"
    args = ["emulator", "--port", str(port), "--faults", FAULTS, "--render", "once"]
    env = {
        "VEO_GATEWAY_EMULATOR_LATENCY": "0.5-1.0",
        "VEO_GATEWAY_EMULATOR_API_KEYS": ",".join(UPSTREAM_KEYS),
        "VEO_GATEWAY_EMULATOR_MAX_IN_FLIGHT": str(IN_FLIGHT),
        "VEO_GATEWAY_EMULATOR_REQUEST_LOG": str(requests_log),
    }
    storage = ["--storage-dir", str(tmp_path / "emulator-home" / "emulator")]
    process = start([*args, *storage], env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_emulator/stats", process, log, timeout=120)
        yield url, requests_log
    finally:
        stop(process)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    app = Receiver()
    with serve_app(app) as url:
        yield url, app


def gateway_env(
    tmp_path: Path, emulator_url: str, receiver_url: str, database_url: str, bucket: Bucket
) -> dict[str, str]:
    config = tmp_path / "gateway.toml"
    keys = ", ".join(f'"{key}"' for key in UPSTREAM_KEYS)
    config.write_text(
        "[[upstreams]]\n"
        'name = "gemini"\n'
        'kind = "gemini"\n'
        f"api_keys = [{keys}]\n"
        f'base_url = "{emulator_url}"\n'
        f"rpm = {RPM}\n"
        f"max_in_flight = {IN_FLIGHT}\n"
        "cool_down_seconds = 1\n"
    )
    return {
        "VEO_GATEWAY_DATABASE_URL": database_url,
        "VEO_GATEWAY_CONFIG": str(config),
        "VEO_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "VEO_GATEWAY_STORAGE_URL": bucket.url,
        **s3_environment(bucket.endpoint),
        "VEO_GATEWAY_API_KEYS": ",".join(CLIENT_KEYS),
        "VEO_GATEWAY_POLL_INTERVAL": "0.3",
        "VEO_GATEWAY_FIRST_POLL_AFTER": "0.5",
        "VEO_GATEWAY_LEASE_SECONDS": "6",
        "VEO_GATEWAY_WORKER_IDLE_SECONDS": "1",
        "VEO_GATEWAY_MIN_FREE_BYTES": "0",
        "VEO_GATEWAY_WEBHOOK_URLS": f"{receiver_url}/all",
        "VEO_GATEWAY_WEBHOOK_SECRET": SECRET,
        "VEO_GATEWAY_ALLOW_PRIVATE_WEBHOOK_URLS": "true",
        "VEO_GATEWAY_WEBHOOK_RETRY_BASE": "0.5",
        "VEO_GATEWAY_WEBHOOK_TIMEOUT": "5",
        "VEO_GATEWAY_LOG_LEVEL": "info",
        "VEO_GATEWAY_ACCESS_LOG": "errors",
    }


def body_for(n: int, receiver_url: str) -> dict[str, Any]:
    """Task n's request: text, first frame, or first and last frames (tiny images); every third
    with a callback URL. The prompt names the task, for the emulator's log."""
    body: dict[str, Any] = {"model": FAST, "prompt": f"chaos task {n}"}
    tiny = lambda shade: b64(make_image(size=(16, 9), color=(shade, 90, 40)))  # noqa: E731
    if n % 3 == 1:
        body["images"] = [tiny(n % 256)]
    elif n % 3 == 2:
        body["images"] = [tiny(n % 256), tiny(255 - n % 256)]
    if n % 3 == 0:
        body["callback_url"] = f"{receiver_url}/callback/{n}"
    return body


class Creator:
    """Creates the tasks, remembering which key made each and which replica answered."""

    def __init__(self, client: Client, receiver_url: str) -> None:
        self.client, self.receiver_url = client, receiver_url
        self.tasks: dict[str, str] = {}  # id -> client key
        self.callbacks: dict[str, str] = {}  # id -> its callback path
        self.twice: list[tuple[str, str]] = []  # the ids answered to a key sent twice

    def create(self, n: int) -> None:
        key = CLIENT_KEYS[n % len(CLIENT_KEYS)]
        headers = {"Authorization": f"Bearer {key}"}
        body = body_for(n, self.receiver_url)
        if n % 4 == 0:  # an Idempotency-Key: retried as is, on any replica
            headers["Idempotency-Key"] = f"chaos-{n}"
            first = self.client.request("POST", "/v1/videos", json=body, headers=headers)
            task_id = self.accepted(first)
            if n % 8 == 0:  # sent again, to the other replica
                index = self.client.urls.index(str(first.request.url).split("/v1/")[0])
                again = self.client.request(
                    "POST", "/v1/videos", json=body, headers=headers, first=1 - index
                )
                self.twice.append((task_id, self.accepted(again)))
        else:
            # Without one, a create whose answer was lost may or may not have made its task:
            # each try names itself in the prompt, so the emulator's log tells them apart.
            for attempt in range(20):
                tried = {**body, "prompt": f"{body['prompt']} try {attempt}"}
                url = self.client.urls[self.client.rng.randrange(len(self.client.urls))]
                try:
                    answer = self.client.http.post(f"{url}/v1/videos", json=tried, headers=headers)
                except httpx.TransportError:
                    time.sleep(0.2)
                    continue
                if answer.status_code < 500:
                    task_id = self.accepted(answer)
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"no replica took task {n}")
        self.tasks[task_id] = key
        if "callback_url" in body:
            self.callbacks[task_id] = f"/callback/{n}"

    @staticmethod
    def accepted(answer: httpx.Response) -> str:
        assert answer.status_code == 200, answer.text
        task_id: str = answer.json()["id"]
        return task_id


@pytest.mark.timeout(420)
def test_chaos(
    tmp_path: Path,
    emulator: tuple[str, Path],
    receiver: tuple[str, Receiver],
    database_url: str,
    db: Database,
    s3_bucket: Bucket,
) -> None:
    emulator_url, requests_log = emulator
    receiver_url, hooks = receiver
    rng = random.Random(SEED)
    env = gateway_env(tmp_path, emulator_url, receiver_url, database_url, s3_bucket)
    ports = distinct_ports(API_REPLICAS + WORKERS)
    processes = [
        Process(f"api-{i}", "api", [*API_ARGS], env, ports[i], tmp_path / f"api-{i}.log")
        for i in range(API_REPLICAS)
    ] + [
        Process(
            f"worker-{i}",
            "worker",
            [*WORKER_ARGS],
            env,
            ports[API_REPLICAS + i],
            tmp_path / f"worker-{i}.log",
        )
        for i in range(WORKERS)
    ]
    client = Client([p.url for p in processes if p.role == "api"], rng)
    creator = Creator(client, receiver_url)
    phases = [("start", time.monotonic())]
    try:
        processes[0].start()  # the first migrates the empty database
        for process in processes[1:]:
            process.start()
        phases.append(("processes up", time.monotonic()))
        with Killer(processes, random.Random(SEED + 1)) as killer:
            for n in range(TASKS):
                creator.create(n)
                time.sleep(0.05)
            phases.append(("created", time.monotonic()))
            deadline = time.monotonic() + DEADLINE
            finals = dict(wait_all(client, creator.tasks, deadline))
            # And any task a create made whose answer was lost with its replica.
            while db.rows(UNFINISHED) and time.monotonic() < deadline:
                time.sleep(1.0)
            phases.append(("finished", time.monotonic()))
        assert not killer.errors, f"the killer failed: {killer.errors!r}"
        stragglers = db.rows(UNFINISHED)
        assert not stragglers, f"unfinished tasks {DEADLINE} s after the last create: {stragglers}"
        unseen = {
            i: b for i, b in finals.items() if b.get("status") not in ("completed", "failure")
        }
        assert not unseen, f"finished in the database, not through the API: {unseen}"
        assert set(finals) == set(creator.tasks)
        for first, again in creator.twice:
            assert first == again, "a key sent twice made two tasks"
        expect_webhooks(hooks, creator, db)
        phases.append(("events received", time.monotonic()))
        completed = [i for i, body in finals.items() if body["status"] == "completed"]
        expect_downloads(client, creator, completed, s3_bucket, tmp_path / "data")
        phases.append(("downloaded", time.monotonic()))
        stats = httpx.get(f"{emulator_url}/_emulator/stats").json()
        usage = {
            key: client.request(
                "GET", "/v1/usage", headers={"Authorization": f"Bearer {key}"}
            ).json()
            for key in CLIENT_KEYS
        }
    finally:
        client.close()
        for process in processes:
            process.stop()
        phases.append(("stopped", time.monotonic()))
        print(
            "chaos: " + ", ".join(f"{what} at {at - phases[0][1]:.1f} s" for what, at in phases[1:])
        )

    tasks = db.rows(
        "select id, owner, state, fail_reason, operation_name, request from tasks order by id"
    )
    check_outcomes(tasks, read_submissions(requests_log), killer.kills)
    check_limits(read_submissions(requests_log), stats, killer.kills)
    check_charges(tasks, db, usage, creator)
    print(f"chaos: {len(tasks)} tasks, {len(killer.kills)} kills, faults {stats['faults']}")


def check_outcomes(
    tasks: list[dict[str, Any]], submissions: list[Submission], kills: list[Any]
) -> None:
    unfinished = [(t["id"], t["state"]) for t in tasks if t["state"] not in ("completed", "failed")]
    assert not unfinished, f"tasks not finished in the database: {unfinished}"
    by_prompt: dict[str, list[Submission]] = defaultdict(list)
    for submission in submissions:
        if submission.operation is not None:
            by_prompt[submission.prompt or ""].append(submission)
    by_operation = {s.operation: s for s in submissions if s.operation is not None}
    twice: list[str] = []
    for task in tasks:
        prompt = task["request"]["prompt"]
        made = by_prompt.get(prompt, [])
        if task["state"] == "failed" and task["operation_name"] is None:
            # Its submissions all refused (injected 429s and 500s, which come before the body
            # is read, so the log cannot name their task): it failed with what they said.
            assert "(emulated" in task["fail_reason"], task
            assert all(on_the_wire(s, kills) for s in made), (task, made)
            continue
        operation = by_operation.get(task["operation_name"])
        assert operation is not None and operation.prompt == prompt, (
            f"task {task['id']} ({task['state']}, {task['fail_reason']!r}) names an operation "
            f"the emulator did not make for it: {task['operation_name']}"
        )
        others = [s for s in made if s.operation != task["operation_name"]]
        unexplained = [s for s in others if not on_the_wire(s, kills)]
        assert not unexplained, (
            f"task {task['id']} reached the emulator {len(made)} times, and no worker died "
            f"while these were on the wire: {unexplained} (kills: {kills})"
        )
        if others:
            twice.append(task["id"])
        if task["state"] == "completed":
            assert operation.injected is None, (task, operation)
        else:
            assert operation.injected in REASONS, (
                f"task {task['id']} failed ({task['fail_reason']!r}), but the emulator injected "
                f"no failure into its operation: {operation}"
            )
            assert REASONS[operation.injected] in task["fail_reason"], (task, operation)
    print(f"chaos: {len(twice)} task(s) resubmitted after a worker died mid-submission")


def check_limits(submissions: list[Submission], stats: dict[str, Any], kills: list[Kill]) -> None:
    # A quota refusal reads the body first, so it names a prompt; an injected 429 does not.
    over_quota = [s for s in submissions if s.status == 429 and s.prompt is not None]
    assert not over_quota, f"over the in-flight cap: {over_quota} (kills: {kills})"
    credentials = {fingerprint(key)[:8] for key in UPSTREAM_KEYS}
    peaks = stats["peak_in_flight_by_credential"]
    assert set(peaks) <= credentials
    assert all(peak <= IN_FLIGHT for peak in peaks.values()), peaks
    for credential in credentials:
        times = [s.received_at for s in submissions if s.credential == credential]
        assert peak_per_minute(times) <= RPM, (credential, peak_per_minute(times))


def check_charges(
    tasks: list[dict[str, Any]],
    db: Database,
    usage: dict[str, dict[str, Any]],
    creator: Creator,
) -> None:
    ledger = {row["task_id"]: row for row in db.rows("select * from usage")}
    assert set(ledger) == {t["id"] for t in tasks}
    for task in tasks:
        expected = "charged" if task["state"] == "completed" else "released"
        assert ledger[task["id"]]["state"] == expected, (task, ledger[task["id"]])
    owners = {t["id"]: t["owner"] for t in tasks}
    for key in CLIENT_KEYS:
        owner = {owners[i] for i, k in creator.tasks.items() if k == key}
        assert len(owner) == 1
        charged = [r for r in ledger.values() if r["owner"] in owner and r["state"] == "charged"]
        total = usage[key]["total"]
        assert total["videos"] == len(charged), (key, total)
        assert total["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in charged))
        assert usage[key]["reserved"]["videos"] == 0, usage[key]


def expect_webhooks(hooks: Receiver, creator: Creator, db: Database) -> None:
    """Waits (a minute at most) for every finished task's event at the operator's endpoint and
    at its callback URL, then checks that every copy of one carries the same webhook-id."""
    finished = {
        row["id"]: row["state"]
        for row in db.rows("select id, state from tasks where state in ('completed', 'failed')")
    }
    expected = {(task_id, "/all") for task_id in finished} | {
        (task_id, path) for task_id, path in creator.callbacks.items()
    }

    def seen() -> dict[tuple[str, str], set[str]]:
        ids: dict[tuple[str, str], set[str]] = defaultdict(set)
        for request in list(hooks.requests):
            event = verify(SECRET, request.headers, request.body)
            want = (
                "video.completed"
                if finished.get(event["data"]["id"]) == "completed"
                else "video.failed"
            )
            assert event["type"] == want, event
            ids[(event["data"]["id"], request.path)].add(request.headers["webhook-id"])
        return ids

    deadline = time.monotonic() + 60
    while not expected <= set(seen()) and time.monotonic() < deadline:
        time.sleep(0.5)
    ids = seen()
    missing = sorted(expected - set(ids))
    assert not missing, f"{len(missing)} event(s) never reached the receiver: {missing[:10]}"
    differing = {where: found for where, found in ids.items() if len(found) > 1}
    assert not differing, f"copies of one event with different webhook-ids: {differing}"


def expect_downloads(
    client: Client, creator: Creator, completed: list[str], bucket: Bucket, data_dir: Path
) -> None:
    """Every completed task's video from every API replica: the same MP4 from each, and the
    store's object (nothing kept on a process's own disk)."""
    assert completed, "no task completed"

    def download(task_id: str, replica: int) -> tuple[str, str]:
        headers = {"Authorization": f"Bearer {creator.tasks[task_id]}"}
        answer = client.request(
            "GET", f"/v1/videos/{task_id}/content", headers=headers, first=replica
        )
        assert answer.status_code == 200, (task_id, answer.status_code, answer.text[:200])
        assert answer.content[4:8] == b"ftyp", task_id
        assert int(answer.headers["content-length"]) == len(answer.content)
        return task_id, hashlib.sha256(answer.content).hexdigest()

    digests: dict[str, set[str]] = defaultdict(set)
    pairs = [(task_id, replica) for task_id in completed for replica in range(len(client.urls))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for task_id, digest in pool.map(lambda pair: download(*pair), pairs):
            digests[task_id].add(digest)
    differing = {task_id: found for task_id, found in digests.items() if len(found) > 1}
    assert not differing, f"replicas served different bytes: {differing}"
    objects = bucket.keys()
    stored = {hashlib.sha256(bucket.read(key)).hexdigest() for key in objects if ".mp4" in key}
    assert {next(iter(found)) for found in digests.values()} <= stored
    # Scratch copies a killed worker left mid-check are swept by its successor; no other video.
    kept = data_dir.rglob("*.mp4") if data_dir.exists() else iter(())
    on_disk = sorted(str(path) for path in kept if not path.name.startswith(TEMP_PREFIX))
    assert not on_disk, f"videos on a process's local disk: {on_disk[:5]}"
