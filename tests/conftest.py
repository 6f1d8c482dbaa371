"""Shared fixtures: settings for the tests (the same environment the CLI reads), and the stack plugin."""

from __future__ import annotations

import pytest

from tickflow.settings import Settings

pytest_plugins = ["tests.support.stack", "tests.support.reference"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()
