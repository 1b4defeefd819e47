"""Fixtures for the playground tests: Chromium driven by Playwright, headless."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import KEY_A, Gateway

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


# Package-scoped, not session-scoped: Playwright's sync API runs an event loop in the main
# thread until it stops, and tests after these ones call asyncio.run().
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


def _launch(playwright: Playwright) -> Browser:
    """A system Chromium (CI installs Debian's), else Playwright's own, downloaded once if need
    be; with neither, the tests fail rather than skip."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is not None:
        return playwright.chromium.launch(executable_path=executable, headless=True)
    try:
        return playwright.chromium.launch(headless=True)
    except PlaywrightError:
        pass
    download = subprocess.run(
        [sys.executable, "-m", "playwright", "install", "chromium"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if download.returncode != 0:
        pytest.fail(
            "no Chromium for the playground tests: install the system's "
            "(apt-get install chromium) or Playwright's (python -m playwright install "
            f"chromium); downloading Playwright's failed:\n{download.stderr[-2000:]}"
        )
    return playwright.chromium.launch(headless=True)


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium, headless (see `_launch`)."""
    browser = _launch(playwright)
    yield browser
    browser.close()


@dataclass
class Playground:
    """The page, opened on a gateway, with what it logged and requested."""

    page: Page
    gateway: Gateway
    console_errors: list[str] = field(default_factory=list)
    request_urls: list[str] = field(default_factory=list)

    def enter_key(self, key: str = KEY_A) -> None:
        self.page.fill("#api-key", key)
        self.page.click("#key-save")
        expect(self.page.locator("#model option[value^=veo]")).not_to_have_count(0)

    def choose(self, model: str, mode: str) -> None:
        self.page.select_option("#model", model)
        self.page.check(f'input[name="mode"][value="{mode}"]')


def open_playground(
    browser: Browser, gateway: Gateway, path: str = "/", **context_args: object
) -> Playground:
    context = browser.new_context(**context_args)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(30_000)
    playground = Playground(page=page, gateway=gateway)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            playground.console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: playground.console_errors.append(str(error)))
    page.on("request", lambda request: playground.request_urls.append(request.url))
    # page.wait_for_function evaluates strings, which this page's CSP forbids (no unsafe-eval):
    # the tests wait with locators and Python loops instead.
    page.goto(gateway.url + path)
    return playground


@pytest.fixture
def playground(browser: Browser, gateway: Gateway) -> Iterator[Playground]:
    """The playground on a fresh gateway, key not yet entered."""
    opened = open_playground(browser, gateway, viewport={"width": 1280, "height": 900})
    yield opened
    opened.page.context.close()
