"""Fault injection, per-credential quotas and ownership: the emulator misbehaves as asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator.conftest import FAST, KEY
from tests.support.servers import serve_app
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.emulator.faults import FaultInjector, Faults

OTHER_KEY = "emulator-other-key"


def test_parse_reads_rates_wildcards_and_options() -> None:
    faults = Faults.parse(
        " *.429=0.1 , poll.500=0.2,download.redirect=0.3,seed=7,stall_seconds=0.5"
    )
    assert faults.rates == {
        "submit.429": 0.1,
        "poll.429": 0.1,
        "download.429": 0.1,
        "poll.500": 0.2,
        "download.redirect": 0.3,
    }
    assert (faults.seed, faults.stall_seconds, faults.slow_seconds) == (7, 0.5, 1.0)
    assert faults.active and not Faults.parse("").active


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("submit.418=0.1", "unknown emulator fault 'submit.418'"),
        ("poll.500=2", "must be a rate from 0 to 1"),
        ("poll.500", "needs a value"),
        ("poll.500=lots", "is not a number"),
        ("seed=1.5", "is not a number"),
        ("submit.429=0.6,submit.500=0.6", "the submit fault rates add up to 1.2"),
        ("stall_seconds=-1", "must not be negative"),
        ("poll.401=0.1", "unknown emulator fault 'poll.401'"),
        ("poll.truncated=0.1", "unknown emulator fault 'poll.truncated'"),
        ("download.404=0.5,download.truncated=0.3,download.short=0.3", "add up to 1.1"),
    ],
)
def test_parse_refuses_mistakes_clearly(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults.parse(spec)


def test_a_seed_repeats_the_same_faults_and_counts_them() -> None:
    spec = "*.429=0.2,*.500=0.1,*.404=0.1,download.short=0.1,operation.fail=0.3,seed=42"
    first, second = FaultInjector(Faults.parse(spec)), FaultInjector(Faults.parse(spec))
    kinds = ["submit", "poll", "download", "operation"] * 250
    draws = [first.draw(kind) for kind in kinds]
    assert draws == [second.draw(kind) for kind in kinds]
    assert sum(first.counts.values()) == sum(d is not None for d in draws)
    # 1000 calls at 40 % (30 % for operations): the rates hold roughly, and nothing else is drawn.
    assert 300 < sum(first.counts.values()) < 470
    assert set(first.counts) <= {
        f"{k}.{f}" for k in ("submit", "poll", "download") for f in ("429", "500", "404")
    } | {"download.short", "operation.fail"}
    assert first.counts["download.short"] > 0 and first.counts["poll.404"] > 0


async def test_injected_errors_answer_like_google(make_emulator: Any) -> None:
    async with make_emulator(faults=Faults.parse("submit.429=1")) as emulator:
        response = await emulator.submit(FAST, {"prompt": "x"})
        assert response.status_code == 429
        error = response.json()["error"]
        assert error["status"] == "RESOURCE_EXHAUSTED" and "quota" in error["message"]
    async with make_emulator(faults=Faults.parse("poll.500=1")) as emulator:
        name = (await emulator.submit(FAST, {"prompt": "x"})).json()["name"]
        response = await emulator.client.get(f"/v1beta/{name}")
        assert response.status_code == 500
        assert response.json() == {
            "error": {
                "code": 500,
                "message": "Internal error encountered. (emulated)",
                "status": "INTERNAL",
            }
        }
        stats = (await emulator.client.get("/_emulator/stats")).json()
        assert stats["faults"] == {"poll.500": 1} and stats["polls"] == 0


@pytest.mark.parametrize(
    ("fault", "status"),
    [("400", "INVALID_ARGUMENT"), ("403", "PERMISSION_DENIED"), ("404", "NOT_FOUND")],
)
async def test_injected_refusals_on_poll_and_download(
    make_emulator: Any, fault: str, status: str
) -> None:
    spec = f"poll.{fault}=0.5,download.{fault}=1,seed=3"
    codes: list[list[int]] = []
    for _ in range(2):  # the same seed gives the same answers, call for call
        async with make_emulator(faults=Faults.parse(spec)) as emulator:
            name = (await emulator.submit(FAST, {"prompt": "x [emulator:fail]"})).json()["name"]
            seen = []
            for _ in range(30):
                response = await emulator.client.get(f"/v1beta/{name}")
                seen.append(response.status_code)
                if response.status_code != 200:
                    error = response.json()["error"]
                    assert set(error) == {"code", "message", "status"}
                    assert (error["code"], error["status"]) == (int(fault), status)
                    assert error["message"].endswith("(emulated)")
            assert set(seen) == {200, int(fault)}
            stats = (await emulator.client.get("/_emulator/stats")).json()
            # Refused polls are not counted as answered ones.
            assert stats["faults"] == {f"poll.{fault}": seen.count(int(fault))}
            assert stats["polls"] == seen.count(200)
            codes.append(seen)
    assert codes[0] == codes[1]

    async with make_emulator(faults=Faults.parse(f"download.{fault}=1"), fps=6) as emulator:
        name = (await emulator.submit(FAST, {"prompt": "x"}, {"durationSeconds": 4})).json()["name"]
        operation = await emulator.wait(name)
        uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
        download = await emulator.client.get("/" + uri.split("/", 3)[3])
        assert download.status_code == int(fault)
        assert download.json()["error"]["status"] == status
        stats = (await emulator.client.get("/_emulator/stats")).json()
        assert stats["faults"] == {f"download.{fault}": 1} and stats["downloads"] == 0


async def test_a_refused_submission_creates_no_operation(make_emulator: Any) -> None:
    async with make_emulator(faults=Faults.parse("submit.500=1")) as emulator:
        for _ in range(3):
            assert (await emulator.submit(FAST, {"prompt": "x"})).status_code == 500
        stats = (await emulator.client.get("/_emulator/stats")).json()
        assert stats["submissions"] == 0 and stats["faults"] == {"submit.500": 3}


async def test_a_stall_holds_the_call_then_serves_it(make_emulator: Any) -> None:
    async with make_emulator(faults=Faults.parse("submit.stall=1,stall_seconds=0.3")) as emulator:
        started = time.monotonic()
        response = await emulator.submit(FAST, {"prompt": "x"})
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.3
        stats = (await emulator.client.get("/_emulator/stats")).json()
        assert stats["submissions"] == 1 and stats["faults"] == {"submit.stall": 1}


async def test_injected_outcomes_are_recorded(make_emulator: Any) -> None:
    async with make_emulator(faults=Faults.parse("operation.blocked=1")) as emulator:
        name = (await emulator.submit(FAST, {"prompt": "x"})).json()["name"]
        done = await emulator.wait(name)
        assert done["response"]["generateVideoResponse"]["raiMediaFilteredCount"] == 1
        stats = (await emulator.client.get("/_emulator/stats")).json()
        assert stats["injected_outcomes"] == {name.rsplit("/", 1)[1]: "blocked"}
    async with make_emulator(faults=Faults.parse("operation.fail=1")) as emulator:
        name = (await emulator.submit(FAST, {"prompt": "x"})).json()["name"]
        assert (await emulator.wait(name))["error"]["code"] == 13


@pytest.fixture
def serve_emulator(tmp_path: Path) -> Iterator[Any]:
    """Real emulators on loopback (broken downloads need a real connection to break)."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            values: dict[str, Any] = {
                "latency": (0.0, 0.0),
                "api_keys": frozenset({KEY, OTHER_KEY}),
                "storage_dir": tmp_path / "videos",
                "fps": 6,  # a 4 s video in a fraction of the time: these tests are about bytes
            }
            values.update(overrides)
            return stack.enter_context(serve_app(create_emulator_app(EmulatorConfig(**values))))

        yield start


def _finished_video(client: httpx.Client) -> str:
    """Submit, wait, and return the download path of the video."""
    response = client.post(
        f"/v1beta/models/{FAST}:predictLongRunning",
        json={"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 4}},
    )
    assert response.status_code == 200, response.text
    name = response.json()["name"]
    deadline = time.monotonic() + 60
    while not (operation := client.get(f"/v1beta/{name}").json()).get("done"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    uri: str = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    return "/" + uri.split("/", 3)[3]


def test_download_faults(serve_emulator: Any, tmp_path: Path) -> None:
    url = serve_emulator(faults=Faults.parse("download.broken=1"))
    with httpx.Client(base_url=url, headers={"x-goog-api-key": KEY}, timeout=30) as client:
        path = _finished_video(client)
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(path)

    url = serve_emulator(faults=Faults.parse("download.truncated=1"))
    with httpx.Client(base_url=url, headers={"x-goog-api-key": KEY}, timeout=30) as client:
        path = _finished_video(client)
        # The length promised is never reached: the server can only close the connection.
        with client.stream("GET", path) as response:
            assert response.status_code == 200
            promised = int(response.headers["content-length"])
            received = bytearray()
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in response.iter_bytes():
                    received += chunk
        assert len(received) == promised // 2

    url = serve_emulator(faults=Faults.parse("download.short=1"), storage_dir=tmp_path / "short")
    with httpx.Client(base_url=url, headers={"x-goog-api-key": KEY}, timeout=30) as client:
        path = _finished_video(client)
        response = client.get(path)
        # A clean, complete-looking answer: no length to check, only the bytes are cut.
        assert response.status_code == 200 and "content-length" not in response.headers
        [rendered] = (tmp_path / "short").glob("*.mp4")
        served = rendered.read_bytes()
        assert response.content == served[: len(served) // 2]
        stats = client.get("/_emulator/stats").json()
        assert stats["faults"] == {"download.short": 1} and stats["downloads"] == 1

    url = serve_emulator(faults=Faults.parse("download.redirect=1"))
    with httpx.Client(base_url=url, headers={"x-goog-api-key": KEY}, timeout=30) as client:
        path = _finished_video(client)
        response = client.get(path)
        assert response.status_code == 302
        location = response.headers["location"]
        assert "/_emulator/media/" in location
        # A signed URL: it needs no key, like the storage URLs Google redirects to.
        media = httpx.get(location, timeout=30)
        assert media.status_code == 200 and media.content[4:8] == b"ftyp"

    url = serve_emulator(faults=Faults.parse("download.slow=1,slow_seconds=0.4"))
    with httpx.Client(base_url=url, headers={"x-goog-api-key": KEY}, timeout=30) as client:
        path = _finished_video(client)
        started = time.monotonic()
        response = client.get(path)
        assert response.status_code == 200 and response.content[4:8] == b"ftyp"
        assert int(response.headers["content-length"]) == len(response.content)
        assert time.monotonic() - started >= 0.35


def test_operations_and_files_belong_to_the_submitting_key(serve_emulator: Any) -> None:
    url = serve_emulator()
    with (
        httpx.Client(base_url=url, headers={"x-goog-api-key": KEY}, timeout=30) as owner,
        httpx.Client(base_url=url, headers={"x-goog-api-key": OTHER_KEY}, timeout=30) as other,
    ):
        path = _finished_video(owner)
        operation = next(iter(owner.get("/_emulator/stats").json()["operations"]))
        polled = other.get(f"/v1beta/models/{FAST}/operations/{operation}")
        assert polled.status_code == 404 and polled.json()["error"]["status"] == "NOT_FOUND"
        assert other.get(path).status_code == 404
        assert owner.get(path).status_code == 200


async def test_quota_per_minute_per_key(make_emulator: Any) -> None:
    async with make_emulator(quota_rpm=2, api_keys=frozenset({KEY, OTHER_KEY})) as emulator:
        codes = [(await emulator.submit(FAST, {"prompt": "x"})).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        # Another key has its own quota.
        other = await emulator.client.post(
            f"/v1beta/models/{FAST}:predictLongRunning",
            json={"instances": [{"prompt": "x"}]},
            headers={"x-goog-api-key": OTHER_KEY},
        )
        assert other.status_code == 200
        stats = (await emulator.client.get("/_emulator/stats")).json()
        assert stats["quota_refusals"] == 1 and stats["submissions"] == 3


async def test_quota_of_operations_in_flight(make_emulator: Any) -> None:
    async with make_emulator(latency=(0.5, 0.5), max_in_flight_per_credential=1) as emulator:
        first = await emulator.submit(FAST, {"prompt": "x [emulator:fail]"})
        assert first.status_code == 200
        refused = await emulator.submit(FAST, {"prompt": "x"})
        assert refused.status_code == 429
        assert "1 operations in flight" in refused.json()["error"]["message"]
        await emulator.wait(first.json()["name"])
        assert (await emulator.submit(FAST, {"prompt": "x [emulator:fail]"})).status_code == 200
