"""The playground's "More options", built from `GET /v1/models`: what each route takes, sent as
`metadata`, and every sample of a task shown, in headless Chromium against a real gateway and
the emulator on each protocol."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.api.test_google_env import start_emulator, vertex_env
from tests.conftest import Gateway
from tests.web.conftest import Playground, open_playground
from tests.web.test_playground import make_png, submit_and_wait_for_task

STANDARD = "veo-3.1-generate-preview"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    yield from start_emulator(tmp_path)


@pytest.fixture
def vertex_playground(
    browser: Browser, make_gateway: Callable[..., Gateway], emulator: str
) -> Iterator[Playground]:
    """The playground on a gateway whose routes go to Vertex (the emulator's)."""
    opened = open_playground(browser, make_gateway(**vertex_env(emulator)))
    yield opened
    opened.page.context.close()


def option_ids(playground: Playground) -> list[str]:
    ids: list[str] = playground.page.locator("#options [data-option]").evaluate_all(
        "controls => controls.map(c => c.dataset.option)"
    )
    return ids


def sent_parameters(emulator: str) -> list[dict[str, Any]]:
    log = httpx.get(f"{emulator}/_emulator/requests").json()
    return [e["body"]["parameters"] for e in log if e["path"].endswith(":predictLongRunning")]


def test_the_options_are_the_routes_own(playground: Playground) -> None:
    """On the Gemini API (the built-in emulator's protocol) only what Google's SDK sends there."""
    playground.enter_key()
    playground.choose(STANDARD, "text")
    served = playground.gateway.client.get("/v1/models", headers=playground.gateway.headers())
    (row,) = [m for m in served.json()["data"] if m["id"] == STANDARD]
    assert sorted(option_ids(playground)) == sorted(row["capabilities"]["options"])
    assert "seed" not in option_ids(playground)
    count = playground.page.locator("#option-sampleCount")
    assert count.get_attribute("max") == str(row["capabilities"]["max_samples"])


def test_options_go_out_as_metadata_and_every_sample_plays(
    vertex_playground: Playground, emulator: str, tmp_path: Path
) -> None:
    playground = vertex_playground
    page = playground.page
    playground.enter_key()
    playground.choose(STANDARD, "text")
    page.click("#more-options summary")
    assert set(option_ids(playground)) >= {"sampleCount", "seed", "generateAudio", "resizeMode"}
    # Resize mode is for an image: hidden in text mode, shown with a first frame.
    expect(page.locator("#option-resizeMode")).to_be_hidden()
    page.check('input[name="mode"][value="image"]')
    expect(page.locator("#option-resizeMode")).to_be_visible()
    page.select_option("#option-resizeMode", label="crop")
    page.check('input[name="mode"][value="text"]')

    page.fill("#option-sampleCount", "2")
    page.fill("#option-seed", "7")
    page.select_option("#option-generateAudio", label="off")
    page.select_option("#duration", "4")
    page.fill("#prompt", "two lighthouses")
    task_id = submit_and_wait_for_task(page)

    # Only what was set, in Google's types; the image-only option stayed home in text mode.
    (parameters,) = sent_parameters(emulator)
    assert parameters["sampleCount"] == 2
    assert parameters["seed"] == 7
    assert parameters["generateAudio"] is False
    assert "resizeMode" not in parameters and "enhancePrompt" not in parameters
    status = playground.gateway.get(task_id).json()
    assert status["sample_count"] == 2

    card = page.locator(f"#task-{task_id}")
    deadline = time.monotonic() + 90
    while card.locator("video").count() < 2:
        assert time.monotonic() < deadline, card.inner_text()
        card.evaluate("card => card.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(100)
    links = card.locator("a.download")
    assert links.evaluate_all("as => as.map(a => a.download)") == [
        f"{task_id}-0.mp4",
        f"{task_id}-1.mp4",
    ]
    # Each player holds its own sample's bytes, as the gateway serves them.
    sizes = card.locator("video").evaluate_all("vs => vs.map(v => Number(v.dataset.blobSize))")
    for index, size in enumerate(sizes):
        served = playground.gateway.client.get(
            f"/v1/videos/{task_id}/content",
            params={"index": index},
            headers=playground.gateway.headers(),
        )
        assert served.status_code == 200 and len(served.content) == size
    assert not playground.console_errors, playground.console_errors


def test_a_refused_option_is_shown_in_the_api_words(
    vertex_playground: Playground, tmp_path: Path
) -> None:
    """A seed past Google's bound is sent as typed; the gateway's refusal is what the form shows."""
    page = vertex_playground.page
    vertex_playground.enter_key()
    vertex_playground.choose(STANDARD, "image")
    page.set_input_files("#file-first", str(make_png(tmp_path / "first.png", (20, 120, 40))))
    page.locator("#drop-first .preview img").wait_for()
    page.click("#more-options summary")
    page.fill("#option-seed", "99999999999")
    page.fill("#prompt", "a seed too large")
    page.click("#submit")
    error = page.locator("#form-error")
    expect(error).to_be_visible()
    assert "seed" in error.inner_text()
