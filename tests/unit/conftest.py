"""Unit tests hold for the default settings, whatever the developer's environment says."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def default_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports moved with TICKFLOW_PORT_* (say, to run a second stack beside the first) do not leak in."""
    for name in [n for n in os.environ if n.startswith("TICKFLOW_PORT_")]:
        monkeypatch.delenv(name)
