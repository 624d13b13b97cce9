"""What the browser tests share: Debian's Chromium, driven by Playwright (never a downloaded browser)."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling out, and this machine refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module."""
    with chromium() as launched:
        yield launched


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium for as long as the block runs."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium).")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def widget_ask(page: Any, question: str) -> Any:
    """Ask through the widget on `page` and wait for its answer; returns the new bot message."""
    before = page.locator(".msg.bot:not(.error)").count()
    page.fill("textarea", question)
    page.press("textarea", "Enter")
    page.wait_for_function(
        "n => document.querySelector('#qa-widget-host').shadowRoot.querySelectorAll('.msg.bot').length > n",
        arg=before,
        timeout=30_000,
    )
    return page.locator(".msg.bot").last
