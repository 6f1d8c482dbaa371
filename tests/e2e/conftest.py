"""End-to-end tests drive the platform as a person does, through the browser, on the real stack."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = ("chromium", "chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (Playwright must not download a browser of its own)."""
    for name in CHROMIUM:
        if path := shutil.which(name):
            return path
    pytest.fail("The browser tests need Debian's Chromium: run `apt-get install chromium` (.ci/run does).")
