"""The playground on a gateway in redirect mode over S3 storage (moto's server on loopback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import Browser, expect

from tests.conftest import Gateway
from tests.support.s3 import Bucket
from tests.web.conftest import open_playground
from tests.web.test_playground import MODEL, assert_playable


def test_the_playground_plays_videos_of_a_redirecting_gateway(
    browser: Browser, make_gateway: Callable[..., Any], s3_bucket: Bucket
) -> None:
    gateway: Gateway = make_gateway(storage_url=s3_bucket.url, content_redirect=True)
    created = gateway.create(
        {"model": MODEL, "prompt": "a lantern", "metadata": {"durationSeconds": 4}}
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    assert gateway.wait(task_id)["status"] == "completed"
    # Other clients are sent to the store ...
    assert (
        gateway.client.get(f"/v1/videos/{task_id}/content", headers=gateway.headers()).status_code
        == 307
    )
    opened = open_playground(browser, gateway, viewport={"width": 1280, "height": 900})
    try:
        opened.enter_key()
        expect(opened.page.locator("#tasks > li.task")).to_have_count(1)
        # ... the page, whose policy lets it connect to the gateway only, gets the bytes.
        assert_playable(opened.page, task_id)
        assert opened.console_errors == []
        assert not any(url.startswith(s3_bucket.endpoint) for url in opened.request_urls)
    finally:
        opened.page.context.close()
