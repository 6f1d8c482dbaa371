"""Shared fixtures: settings for the tests (the same environment the CLI reads)."""

from __future__ import annotations

import pytest

from tickflow.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()
