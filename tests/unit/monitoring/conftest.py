"""promtool, which the monitoring tests run: the rules' own tests and the exporter's exposition lint."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not on PATH: install Debian's prometheus package (promtool), as .ci/run does.")
    return found
