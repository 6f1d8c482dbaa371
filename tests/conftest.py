"""Shared fixtures: settings for the tests (the same environment the CLI reads), and the stack plugin."""

from __future__ import annotations

import os

import pytest

from tickflow.settings import Settings

pytest_plugins = ["tests.support.stack", "tests.support.reference", "tests.support.browser"]

# The stream apps the tests start (directly, or through the Airflow the stack fixture starts, which inherits
# this environment) process a few thousand events: their start is what takes time, and C1-only compilation
# starts a Spark driver ~40% sooner here. Throughput is measured in bench/, with the stream's own default.
os.environ.setdefault("TICKFLOW_STREAM_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()
