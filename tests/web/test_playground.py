"""The playground at `/`, driven in headless Chromium against a real gateway and the emulator."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, expect

from tests.conftest import KEY_A, Gateway
from tests.web.conftest import ARTIFACTS, Playground, open_playground
from veo_gateway.domain.catalog import DEFAULT_MODEL

MODEL = "veo-3.1-generate-preview"  # takes every mode, including reference images
NO_REFERENCES = "veo-3.1-fast-generate-preview"


def make_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (320, 180)) -> Path:
    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).ellipse((60, 30, 200, 150), fill=(255, 255, 255))
    image.save(path, "PNG")
    return path


def task_ids(page: Page) -> list[str]:
    """The ids of the videos listed, top first."""
    ids: list[str] = page.locator("#tasks > li.task").evaluate_all(
        "cards => cards.map(card => card.dataset.id)"
    )
    return ids


def submit_and_wait_for_task(page: Page) -> str:
    before = set(task_ids(page))
    page.click("#submit")
    deadline = time.monotonic() + 30
    while page.locator("#form-error").is_hidden():
        ids = task_ids(page)
        if ids and ids[0] not in before:
            return ids[0]  # the new video, on top
        assert time.monotonic() < deadline, "the page created no task"
        page.wait_for_timeout(50)
    raise AssertionError(page.locator("#form-error").inner_text())


# Resolves once the <video> has its metadata, failed to decode, or after 15 s.
VIDEO_STATE = """v => new Promise(resolve => {
  const done = () => resolve({
    readyState: v.readyState,
    duration: Number.isFinite(v.duration) ? v.duration : 0,
    error: v.error ? v.error.code : null,
    src: v.src,
    blobType: v.dataset.blobType,
    blobSize: Number(v.dataset.blobSize),
    h264: v.canPlayType('video/mp4; codecs="avc1.42E01E"'),
  });
  if (v.readyState >= 1 || v.error) return done();
  v.addEventListener('loadedmetadata', done, {once: true});
  v.addEventListener('error', done, {once: true});
  setTimeout(done, 15000);
})"""


def assert_playable(page: Page, task_id: str) -> dict[str, Any]:
    card = page.locator(f"#task-{task_id}")
    # A finished video is fetched once its card is near the screen, as a reader would see it.
    # (Scrolled from the page: a polled card is redrawn every second, so it is never "stable".)
    card.evaluate("card => card.scrollIntoView({block: 'center'})")
    video = card.locator("video")
    video.wait_for(state="attached", timeout=90_000)
    state: dict[str, Any] = video.evaluate(VIDEO_STATE)
    # The blob was fetched from /content with the key in a header.
    assert state["src"].startswith("blob:")
    assert state["blobType"] == "video/mp4"
    assert state["blobSize"] > 1000
    if state["h264"]:
        assert state["error"] is None
        assert state["readyState"] >= 1
        assert state["duration"] > 0
    else:
        # This Chromium build has no H.264 decoder (Debian's may ship without it), so the
        # emulator's MP4 cannot be decoded here; the fetched blob above is what can be checked.
        assert state["error"] is not None or state["readyState"] == 0
    link = card.locator("a.download")
    assert link.get_attribute("href") == state["src"]
    assert link.get_attribute("download") == f"{task_id}.mp4"
    assert card.locator(".task-status").inner_text() == "completed"
    return state


def test_page_is_served_with_a_strict_content_security_policy(gateway: Gateway) -> None:
    page = gateway.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "media-src blob:" in csp
    assert "img-src 'self' data: blob:" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script: only <script src=...>
    assert '<script type="module" src="/web/app.js">' in page.text
    scripts = ["app.js", "api.js", "dom.js", "form.js", "tasks.js"]
    for name, kind in [*((js, "text/javascript") for js in scripts), ("style.css", "text/css")]:
        asset = gateway.client.get(f"/web/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
        assert asset.headers["x-content-type-options"] == "nosniff"
    missing = gateway.client.get("/web/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize("mode", ["text", "image", "interpolation", "reference"])
def test_each_mode_ends_in_a_playable_video(
    playground: Playground, mode: str, tmp_path: Path
) -> None:
    page = playground.page
    playground.enter_key()
    playground.choose(MODEL, mode)
    first = make_png(tmp_path / "first.png", (200, 40, 40))
    last = make_png(tmp_path / "last.png", (40, 40, 200))
    if mode in ("image", "interpolation"):
        page.set_input_files("#file-first", str(first))
        page.locator("#drop-first .preview img").wait_for()
    if mode == "interpolation":
        page.set_input_files("#file-last", str(last))
        page.locator("#drop-last .preview img").wait_for()
    if mode == "reference":
        page.set_input_files("#file-refs", [str(first), str(last)])
        expect(page.locator("#drop-refs .preview img")).to_have_count(2)
        src = page.locator("#drop-refs .preview img").first.get_attribute("src")
        assert src is not None and src.startswith("data:image/png;base64,")
    page.fill("#prompt", f"a lighthouse at dusk ({mode})")
    page.fill("#negative", "people")

    task_id = submit_and_wait_for_task(page)
    assert_playable(page, task_id)

    # The gateway agrees: the task is this key's, completed, in the chosen mode's model.
    status = playground.gateway.get(task_id).json()
    assert status["status"] == "completed"
    assert status["model"] == MODEL
    assert playground.console_errors == []
    assert not any(KEY_A in url for url in playground.request_urls)


def test_images_can_be_dropped(playground: Playground, tmp_path: Path) -> None:
    page = playground.page
    playground.enter_key()
    playground.choose(MODEL, "image")
    data = make_png(tmp_path / "dropped.png", (10, 120, 60)).read_bytes()
    # Playwright cannot drag files from the OS, so the drop event is built in the page.
    page.evaluate(
        """bytes => {
            const file = new File([new Uint8Array(bytes)], 'dropped.png', {type: 'image/png'});
            const transfer = new DataTransfer();
            transfer.items.add(file);
            const zone = document.getElementById('drop-first');
            zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true}));
            zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
        }""",
        list(data),
    )
    preview = page.locator("#drop-first .preview img")
    preview.wait_for()
    assert preview.get_attribute("alt") == "dropped.png"


def test_an_api_refusal_is_shown_in_the_api_words(playground: Playground, tmp_path: Path) -> None:
    page = playground.page
    playground.enter_key()
    playground.choose(MODEL, "image")
    fake = tmp_path / "not-really.png"
    fake.write_bytes(b"this is plain text, not an image")
    page.set_input_files("#file-first", str(fake))
    page.fill("#prompt", "a cat")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/videos")) as sent:
        page.click("#submit")
    error = page.locator("#form-error")
    error.wait_for()

    # The same request sent directly: the page must show the API's own message.
    body = sent.value.post_data_json
    assert isinstance(body, dict)
    refused = playground.gateway.create(body)
    assert refused.status_code == 400
    envelope = refused.json()["error"]
    shown = error.inner_text()
    assert envelope["message"] in shown
    assert envelope["status"] in shown
    assert page.locator("#tasks li").count() == 0


def test_a_failed_task_shows_its_fail_reason(
    browser: Browser, make_gateway: Any, tmp_path: Path
) -> None:
    gateway = make_gateway(emulator_faults="operation.fail=1")
    opened = open_playground(browser, gateway)
    try:
        page = opened.page
        opened.enter_key()
        opened.choose(MODEL, "text")
        page.fill("#prompt", "a storm over the sea")
        task_id = submit_and_wait_for_task(page)
        card = page.locator(f"#task-{task_id}")
        card.locator(".task-error").wait_for(timeout=60_000)
        status = gateway.get(task_id).json()
        assert status["status"] == "failure"
        assert card.locator(".task-error").inner_text() == status["fail_reason"]
        assert card.locator(".task-status").inner_text() == "failed"
    finally:
        opened.page.context.close()


def test_combinations_the_model_cannot_do_are_disabled_with_the_reason(
    playground: Playground,
) -> None:
    page = playground.page
    playground.enter_key()
    playground.choose(MODEL, "text")
    page.select_option("#resolution", "720p")
    page.select_option("#duration", "4")
    hd = page.locator('#resolution option[value="1080p"]')
    assert hd.is_disabled()
    assert "1080p needs 8 s" in hd.inner_text()
    assert (
        "Resolution 1080p unavailable: 1080p needs 8 s" in page.locator("#constraints").inner_text()
    )
    assert page.locator("#constraints").is_visible()

    # Reference images: 8 seconds and 16:9 only; the duration is moved to 8 s.
    page.check('input[name="mode"][value="reference"]')
    assert page.locator("#duration").input_value() == "8"
    assert page.locator('#duration option[value="4"]').is_disabled()
    portrait = page.locator('#aspect option[value="9:16"]')
    assert portrait.is_disabled()
    assert "reference images need 16:9" in portrait.inner_text()

    # A model without reference images: that mode cannot be picked, and the page says why.
    playground.choose(NO_REFERENCES, "text")
    reference = page.locator('input[name="mode"][value="reference"]')
    assert reference.is_disabled()
    reason = f"{NO_REFERENCES} does not support reference images"
    assert reason in page.locator("#constraints").inner_text()


def test_key_stays_in_session_storage(playground: Playground) -> None:
    page = playground.page
    playground.enter_key()
    assert page.evaluate("sessionStorage.getItem('veo-gateway.key')") == KEY_A
    assert page.evaluate("localStorage.length") == 0
    assert page.input_value("#api-key") == ""
    page.click("#key-forget")
    assert page.evaluate("sessionStorage.getItem('veo-gateway.key')") is None
    assert page.locator("#model").is_disabled()


def test_a_wrong_key_is_refused_in_the_api_words(playground: Playground) -> None:
    page = playground.page
    page.fill("#api-key", "not-a-key")
    page.click("#key-save")
    status = page.locator("#key-status.error-text")
    status.wait_for()
    envelope = playground.gateway.client.get(
        "/v1/models", headers={"Authorization": "Bearer not-a-key"}
    ).json()["error"]
    assert envelope["message"] in status.inner_text()
    assert page.evaluate("sessionStorage.getItem('veo-gateway.key')") is None


def test_screenshots_desktop_and_phone(browser: Browser, gateway: Gateway, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for name, viewport, phone in [
        ("playground.png", {"width": 1280, "height": 900}, False),
        ("playground-phone.png", {"width": 390, "height": 844}, True),
    ]:
        opened = open_playground(
            browser, gateway, viewport=viewport, is_mobile=phone, has_touch=phone
        )
        try:
            page = opened.page
            opened.enter_key()
            opened.choose(MODEL, "interpolation")
            page.set_input_files("#file-first", str(make_png(tmp_path / "a.png", (200, 90, 30))))
            page.set_input_files("#file-last", str(make_png(tmp_path / "b.png", (30, 90, 200))))
            page.fill("#prompt", "a paper boat drifting down a rainy street")
            task_id = submit_and_wait_for_task(page)
            assert_playable(page, task_id)
            # Nothing wider than the screen: no sideways scrolling on a phone.
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
                f"{name}: the page is wider than the viewport"
            )
            path = ARTIFACTS / name
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot: {path}")
            assert path.stat().st_size > 0
        finally:
            opened.page.context.close()


@pytest.mark.parametrize(
    ("mode", "given", "reason"),
    [
        ("image", [], "Image (first frame) needs a first frame"),
        ("interpolation", [], "needs both images; add a first frame and a last frame."),
        ("interpolation", ["first"], "needs both images; add a last frame."),
        ("interpolation", ["last"], "needs both images; add a first frame."),
        ("reference", [], "Reference images needs at least one reference image."),
    ],
)
def test_an_image_mode_without_its_images_is_refused_and_nothing_is_sent(
    playground: Playground, tmp_path: Path, mode: str, given: list[str], reason: str
) -> None:
    page = playground.page
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    playground.enter_key()
    playground.choose(MODEL, mode)
    for slot in given:
        page.set_input_files(f"#file-{slot}", str(make_png(tmp_path / f"{slot}.png", (9, 9, 9))))
        page.locator(f"#drop-{slot} .preview img").wait_for()
    page.fill("#prompt", "a lighthouse at dusk")
    page.click("#submit")

    expect(page.locator("#form-error")).to_contain_text(reason)
    assert posts == []
    assert (
        playground.gateway.client.get("/v1/videos", headers=playground.gateway.headers()).json()[
            "data"
        ]
        == []
    )
    assert page.locator("#tasks > li.task").count() == 0

    # Once the images are there, the message goes and the same form is sent, in its mode.
    slots = {"image": ["first"], "interpolation": ["first", "last"], "reference": ["refs"]}
    for slot in slots[mode]:
        if slot not in given:
            image = make_png(tmp_path / f"{slot}-added.png", (200, 40, 40))
            page.set_input_files(f"#file-{slot}", str(image))
            page.locator(f"#drop-{slot} .preview img").first.wait_for()
    expect(page.locator("#form-error")).to_be_hidden()
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/videos")) as sent:
        page.click("#submit")
    body = sent.value.post_data_json
    sent_images = len(body.get("images", [])) + len(body["metadata"].get("referenceImages", []))
    assert sent_images == len(slots[mode])


def test_the_default_model_is_the_gateways_fast_default(playground: Playground) -> None:
    page = playground.page
    playground.enter_key()
    served = playground.gateway.client.get("/v1/models", headers=playground.gateway.headers())
    assert served.json()["default_model"] == DEFAULT_MODEL == "veo-3.1-fast-generate-preview"
    # The models are listed in the catalog's order, the standard tier first: not the default.
    assert served.json()["data"][0]["id"] != DEFAULT_MODEL
    assert page.locator("#model").input_value() == DEFAULT_MODEL

    # A model the user picked stays picked when the models are loaded again.
    page.select_option("#model", MODEL)
    page.fill("#api-key", KEY_A)
    page.click("#key-save")
    expect(page.locator("#key-status")).to_contain_text("Key accepted")
    assert page.locator("#model").input_value() == MODEL
