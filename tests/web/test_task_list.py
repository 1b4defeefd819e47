"""The playground's "Your videos": the key's videos as `GET /v1/videos` lists them, any client's."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser, Dialog, expect

from tests.conftest import KEY_A, KEY_B, Gateway
from tests.web.conftest import open_playground
from tests.web.test_playground import MODEL, assert_playable, task_ids
from veo_gateway.domain.catalog import DEFAULT_MODEL

DAY = 86400.0
SPEC_BODY = {"model": MODEL, "prompt": "a kite over the dunes", "metadata": {"durationSeconds": 4}}
OPENAI_BODY = {"model": MODEL, "prompt": "a tram in the rain at night", "seconds": "4"}


def created(gateway: Gateway, body: dict[str, Any], key: str = KEY_A) -> str:
    response = gateway.create(body, key)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


def listed(gateway: Gateway, key: str = KEY_A) -> list[dict[str, Any]]:
    page = gateway.client.get("/v1/videos?limit=100", headers=gateway.headers(key)).json()
    data: list[dict[str, Any]] = page["data"]
    return data


def test_videos_made_through_the_api_are_listed_and_play(
    browser: Browser, gateway: Gateway
) -> None:
    spec_id = created(gateway, SPEC_BODY)
    openai_id = created(gateway, OPENAI_BODY)
    created(gateway, SPEC_BODY, key=KEY_B)  # another key's video is never listed
    opened = open_playground(browser, gateway, viewport={"width": 1280, "height": 900})
    try:
        page = opened.page
        expect(page.locator("#no-tasks")).to_have_text("Enter your key to see its videos.")
        opened.enter_key()
        expect(page.locator("#tasks > li.task")).to_have_count(2)
        assert task_ids(page) == [openai_id, spec_id]  # newest first, as the gateway lists them
        assert page.locator("#no-tasks").is_hidden()

        # Both dialects play once completed; OpenAI's object names its prompt, the spec's not.
        assert_playable(page, openai_id)
        assert_playable(page, spec_id)
        openai_card = page.locator(f"#task-{openai_id}")
        assert openai_card.locator(".task-prompt").inner_text() == OPENAI_BODY["prompt"]
        assert openai_card.locator(".task-about").inner_text() == MODEL
        assert page.locator(f"#task-{spec_id} .task-prompt").count() == 0

        # A video made in the page goes on top at once, with what the page knows of it (in the
        # model the page picked by itself: the gateway's default).
        page.fill("#prompt", "a heron taking off")
        page.click("#submit")
        expect(page.locator("#tasks > li.task")).to_have_count(3)
        made = task_ids(page)[0]
        assert made not in (spec_id, openai_id)
        top = page.locator(f"#task-{made}")
        assert top.locator(".task-prompt").inner_text() == "a heron taking off"
        assert top.locator(".task-about").inner_text() == f"{DEFAULT_MODEL} · text to video"
        assert_playable(page, made)

        # Refresh reads the list again: a video made elsewhere meanwhile shows up.
        later = created(gateway, OPENAI_BODY)
        page.click("#refresh-tasks")
        expect(page.locator("#tasks > li.task")).to_have_count(4)
        assert task_ids(page) == [later, made, openai_id, spec_id]
        assert opened.console_errors == []
        assert not any(KEY_A in url for url in opened.request_urls)
    finally:
        opened.page.context.close()


def test_load_more_pages_through_the_list(browser: Browser, gateway: Gateway) -> None:
    ids = [created(gateway, {**OPENAI_BODY, "prompt": f"clip {n}"}) for n in range(5)]
    opened = open_playground(browser, gateway, path="/?page_size=2")
    try:
        page = opened.page
        opened.enter_key()
        more = page.locator("#load-more")
        newest_first = [video["id"] for video in listed(gateway)]
        assert sorted(newest_first) == sorted(ids)
        for shown in (2, 4):
            expect(page.locator("#tasks > li.task")).to_have_count(shown)
            expect(more).to_be_visible()
            assert task_ids(page) == newest_first[:shown]
            more.click()
        expect(page.locator("#tasks > li.task")).to_have_count(5)
        expect(more).to_be_hidden()
        assert task_ids(page) == newest_first
        assert opened.console_errors == []
    finally:
        opened.page.context.close()


def test_failed_videos_show_their_reason_in_both_dialects(
    browser: Browser, make_gateway: Any
) -> None:
    gateway = make_gateway(emulator_faults="operation.fail=1")
    spec_id = created(gateway, SPEC_BODY)
    openai_id = created(gateway, OPENAI_BODY)
    opened = open_playground(browser, gateway)
    try:
        page = opened.page
        opened.enter_key()
        for task_id in (spec_id, openai_id):
            card = page.locator(f"#task-{task_id}")
            card.locator(".task-error").wait_for(timeout=60_000)
            expect(card.locator(".task-status")).to_have_text("failed")
            assert card.locator("video").count() == 0
        spec = gateway.get(spec_id).json()
        assert spec["status"] == "failure"
        assert page.locator(f"#task-{spec_id} .task-error").inner_text() == spec["fail_reason"]
        openai = gateway.get(openai_id).json()
        assert openai["status"] == "failed"
        shown = page.locator(f"#task-{openai_id} .task-error").inner_text()
        assert shown == openai["error"]["message"]
    finally:
        opened.page.context.close()


def test_a_video_the_retention_deleted_shows_the_gateway_words(
    browser: Browser, make_gateway: Any
) -> None:
    gateway = make_gateway(retention_days=2 / DAY)
    task_id = created(gateway, SPEC_BODY)
    assert gateway.wait(task_id)["status"] == "completed"
    content = f"/v1/videos/{task_id}/content"
    deadline = time.monotonic() + 20
    # Until the sweep has recorded the deletion (a 410 may come a moment earlier, while the
    # file is gone but its record not yet written, in more general words).
    while (
        gone := gateway.client.get(content, headers=gateway.headers())
    ).status_code != 410 or "retention period" not in gone.text:
        assert time.monotonic() < deadline, "the video was never deleted"
        time.sleep(0.2)
    opened = open_playground(browser, gateway)
    try:
        card = opened.page.locator(f"#task-{task_id}")
        opened.enter_key()
        card.locator(".task-gone").wait_for()
        assert card.locator(".task-gone").inner_text() == gone.json()["error"]["message"]
        assert card.locator("video").count() == 0
        assert card.locator(".task-status").inner_text() == "completed"
    finally:
        opened.page.context.close()


def test_delete_asks_first_then_deletes_on_the_gateway(browser: Browser, gateway: Gateway) -> None:
    keep, drop = created(gateway, OPENAI_BODY), created(gateway, OPENAI_BODY)
    opened = open_playground(browser, gateway)
    try:
        page = opened.page
        opened.enter_key()
        expect(page.locator("#tasks > li.task")).to_have_count(2)
        questions: list[str] = []

        def answer(accept: bool) -> Any:
            def on_dialog(dialog: Dialog) -> None:
                questions.append(dialog.message)
                if accept:
                    dialog.accept()
                else:
                    dialog.dismiss()

            return on_dialog

        page.once("dialog", answer(False))
        page.click(f"#task-{drop} .task-delete")
        assert questions and drop in questions[-1]
        assert gateway.get(drop).status_code == 200
        assert task_ids(page) == [drop, keep]

        page.once("dialog", answer(True))
        page.click(f"#task-{drop} .task-delete")
        expect(page.locator("#tasks > li.task")).to_have_count(1)
        assert task_ids(page) == [keep]
        assert gateway.get(drop).status_code == 404
        assert [video["id"] for video in listed(gateway)] == [keep]

        # Forgetting the key empties the list; the videos stay on the gateway.
        page.click("#key-forget")
        expect(page.locator("#tasks > li.task")).to_have_count(0)
        assert gateway.get(keep).status_code == 200
    finally:
        opened.page.context.close()
