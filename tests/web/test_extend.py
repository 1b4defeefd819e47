"""The playground's "Extend" on a finished video: a new task continuing it, by the spec's `video`
field, in headless Chromium against a real gateway and the emulator."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.web.conftest import Playground
from tests.web.test_playground import assert_playable, submit_and_wait_for_task, task_ids
from veo_gateway.media.probe import probe_video

FAST = "veo-3.1-fast-generate-preview"  # extends
LITE = "veo-3.1-lite-generate-preview"  # does not


def wait_for_new_task(playground: Playground, before: set[str]) -> str:
    deadline = time.monotonic() + 30
    while True:
        ids = task_ids(playground.page)
        if ids and ids[0] not in before:
            return ids[0]
        assert time.monotonic() < deadline, "no new task"
        playground.page.wait_for_timeout(50)


def test_a_finished_video_is_extended_from_its_card(playground: Playground) -> None:
    page = playground.page
    playground.enter_key()
    playground.choose(FAST, "text")
    page.select_option("#duration", "4")
    page.fill("#prompt", "a kite over a beach")
    source = submit_and_wait_for_task(page)
    assert_playable(page, source)

    card = page.locator(f"#task-{source}")
    card.locator(".extend-prompt").fill("the kite climbs into the clouds")
    before = set(task_ids(page))
    card.locator(".extend button").click()
    extension = wait_for_new_task(playground, before)
    assert_playable(page, extension)

    status = playground.gateway.get(extension).json()
    assert status["status"] == "completed" and status["extended_from_video_id"] == source
    video = playground.gateway.client.get(
        f"/v1/videos/{extension}/content", headers=playground.gateway.headers()
    )
    path = playground.gateway.settings.data_dir.parent / "extended.mp4"
    path.write_bytes(video.content)
    assert round(probe_video(path).duration) == 4 + 7
    expect(page.locator(f"#task-{extension} .task-about")).to_contain_text("extension")
    assert not playground.console_errors, playground.console_errors


def test_a_model_that_cannot_extend_offers_no_extend(playground: Playground) -> None:
    page = playground.page
    playground.enter_key()
    playground.choose(LITE, "text")
    page.select_option("#duration", "4")
    page.fill("#prompt", "a lighthouse")
    task_id = submit_and_wait_for_task(page)
    assert_playable(page, task_id)
    expect(page.locator(f"#task-{task_id} .extend")).to_have_count(0)
