"""The playground on a phone (390 px wide): each card's header stays tidy, measured from the boxes
the browser laid out."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Locator, expect

from tests.conftest import Gateway
from tests.web.conftest import ARTIFACTS, open_playground
from tests.web.test_playground import MODEL

PHONE = {"width": 390, "height": 844}

# Each part of a card header: its box, and how many lines its text takes.
BOXES = """card => {
  if (!card.isConnected) return null;
  const lines = el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set(Array.from(range.getClientRects(), r => Math.round(r.top))).size;
  };
  const part = selector => {
    const el = card.querySelector(selector);
    const r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, lines: lines(el)};
  };
  const r = card.getBoundingClientRect();
  return {
    card: {top: r.top, bottom: r.bottom, left: r.left, right: r.right},
    status: part('.task-status'),
    about: part('.task-about'),
    remove: part('.task-delete'),
  };
}"""


def measure(card: Locator) -> dict[str, Any]:
    """The card's boxes. A card being polled is redrawn every second (replaced by a new one),
    so one found just before its redraw is measured again, as the new one."""
    for _ in range(20):
        box: dict[str, Any] | None = card.evaluate(BOXES)
        if box is not None:
            return box
    raise AssertionError("the card was redrawn under every measurement")


def test_card_headers_stay_on_their_lines_on_a_phone(browser: Browser, make_gateway: Any) -> None:
    # Slow videos, so the cards show the longest status ("in progress, N%").
    gateway: Gateway = make_gateway(emulator_latency="120")
    for body in (
        {"model": MODEL, "prompt": "a tram in the rain at night", "seconds": "4"},
        {"model": "veo-3.1-fast-generate-preview", "prompt": "a kite over the dunes"},
    ):
        assert gateway.create(body).status_code == 200
    opened = open_playground(browser, gateway, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = opened.page
        opened.enter_key()
        # The longest header: a model name and a mode, made in the page.
        opened.choose(MODEL, "text")
        page.fill("#prompt", "a paper boat drifting down a rainy street")
        page.click("#submit")
        cards = page.locator("#tasks > li.task")
        expect(cards).to_have_count(3)
        expect(cards.locator(".task-status").first).to_contain_text("in progress")

        for index in range(3):
            box = measure(cards.nth(index))
            status, about, remove = box["status"], box["about"], box["remove"]
            label = f"card {index}: {box}"
            # The status is one line, and Delete sits beside it on that line.
            assert status["lines"] == 1, label
            assert remove["lines"] == 1, label
            assert remove["top"] < status["bottom"] and status["top"] < remove["bottom"], label
            assert remove["left"] >= status["right"], label
            assert remove["right"] <= box["card"]["right"], label
            # The model (and mode) go below that line, in at most two lines.
            assert about["top"] >= max(status["bottom"], remove["bottom"]) - 1, label
            assert 1 <= about["lines"] <= 2, label
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        ARTIFACTS.mkdir(exist_ok=True)
        cards.first.evaluate("card => card.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(ARTIFACTS / "playground-phone-cards.png"))
        assert opened.console_errors == []
    finally:
        opened.page.context.close()
