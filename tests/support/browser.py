"""The browser the tests drive the pages with: Debian's Chromium through Playwright (tests/e2e, and a page at
the end of an integration test's path)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = ("chromium", "chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (Playwright must not download a browser of its own)."""
    for name in CHROMIUM:
        if path := shutil.which(name):
            return path
    pytest.fail("The browser tests need Debian's Chromium: run `apt-get install chromium` (.ci/run does).")


@pytest.fixture
def page(chromium: str) -> Iterator[object]:
    """A fresh page of a headless Chromium (typed ``object``: Playwright is imported only when used)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()
