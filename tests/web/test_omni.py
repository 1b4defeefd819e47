"""Gemini Omni in the playground: listed with the Veo models, its form built from its own row
of `GET /v1/models` (its resolutions, no last frame, no negative prompt, no Veo options), and a
video made through the emulator's Interactions API, in headless Chromium."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.web.conftest import Playground
from tests.web.test_playground import assert_playable, make_png, submit_and_wait_for_task
from veo_gateway.domain.catalog import OMNI_MODELS
from veo_gateway.media.probe import probe_video

OMNI = "gemini-omni-1.2-flash"


def select_values(playground: Playground, select: str) -> list[str]:
    values: list[str] = playground.page.locator(f"{select} option").evaluate_all(
        "options => options.filter(o => !o.disabled).map(o => o.value)"
    )
    return values


def test_omni_models_are_listed_and_their_form_is_their_own(playground: Playground) -> None:
    page = playground.page
    playground.enter_key()
    listed = page.locator("#model option").evaluate_all("options => options.map(o => o.value)")
    assert set(OMNI_MODELS) <= set(listed)

    playground.choose(OMNI, "text")
    assert select_values(playground, "#resolution") == ["360p", "720p", "1080p", "4k"]
    expect(page.locator('input[name="mode"][value="interpolation"]')).to_be_disabled()
    expect(page.locator('input[name="mode"][value="reference"]')).to_be_enabled()
    expect(page.locator("#negative-field")).to_be_hidden()
    expect(page.locator("#more-options")).to_be_hidden()  # none of Veo's metadata options
    # Reference images need no 8 s here, unlike Veo's.
    page.check('input[name="mode"][value="reference"]')
    assert "4" in select_values(playground, "#duration")

    # Back on Veo, its own form returns.
    playground.choose("veo-3.1-generate-preview", "reference")
    assert select_values(playground, "#duration") == ["8"]
    expect(page.locator("#negative-field")).to_be_visible()
    expect(page.locator("#more-options")).to_be_visible()


def test_an_omni_video_from_the_form_plays(playground: Playground, tmp_path: Path) -> None:
    page = playground.page
    playground.enter_key()
    playground.choose(OMNI, "image")
    page.set_input_files("#file-first", str(make_png(tmp_path / "first.png", (30, 90, 200))))
    page.locator("#drop-first .preview img").wait_for()
    page.select_option("#resolution", "360p")
    page.select_option("#duration", "4")
    page.fill("#prompt", "a blue balloon drifting up")
    task_id = submit_and_wait_for_task(page)
    assert_playable(page, task_id)
    expect(page.locator(f"#task-{task_id} .extend")).to_have_count(0)

    status = playground.gateway.get(task_id).json()
    assert status["status"] == "completed" and status["model"] == OMNI
    video = playground.gateway.client.get(
        f"/v1/videos/{task_id}/content", headers=playground.gateway.headers()
    )
    path = tmp_path / "omni.mp4"
    path.write_bytes(video.content)
    info = probe_video(path)
    assert (info.width, info.height) == (640, 360) and round(info.duration) == 4
    assert not playground.console_errors, playground.console_errors
