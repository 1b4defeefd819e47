"""The emulator's per-minute quota slides: a submission counts for exactly 60 seconds after it
was made, per credential, not per calendar minute. Driven over HTTP with a clock of the test's."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.emulator.conftest import FAST, HOST, KEY
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app

OTHER_KEY = "emulator-other-key"


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_per_minute_quota_slides(tmp_path: Path) -> None:
    clock = Clock()
    config = EmulatorConfig(
        latency=(0.0, 0.0),
        api_keys=frozenset({KEY, OTHER_KEY}),
        storage_dir=tmp_path / "videos",
        quota_rpm=2,
    )
    app = create_emulator_app(config, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{HOST}", timeout=60
        ) as client,
    ):

        async def submit(at: float, key: str = KEY) -> int:
            clock.now = 1000.0 + at
            response = await client.post(
                f"/v1beta/models/{FAST}:predictLongRunning",
                json={"instances": [{"prompt": "x"}]},
                headers={"x-goog-api-key": key},
            )
            if response.status_code == 429:
                error = response.json()["error"]
                assert error["status"] == "RESOURCE_EXHAUSTED"
                assert "2 requests per minute" in error["message"]
            return response.status_code

        assert await submit(0) == 200
        assert await submit(30) == 200
        assert await submit(59.9) == 429  # both still inside the last 60 s
        assert await submit(59.9, OTHER_KEY) == 200  # another credential, its own window
        assert await submit(60.0) == 200  # the first one's minute is over: one slot back
        # A fixed calendar minute would have emptied here; the sliding window still holds the
        # submissions at 30 and 60.
        assert await submit(61) == 429
        assert await submit(89.9) == 429
        assert await submit(90.0) == 200
        assert await submit(90.0) == 429
        # A refusal takes no slot: after a quiet minute both are free again.
        assert await submit(150) == 200
        assert await submit(150) == 200
        stats = (await client.get("/_emulator/stats")).json()
        assert stats["quota_refusals"] == 4 and stats["submissions"] == 7
