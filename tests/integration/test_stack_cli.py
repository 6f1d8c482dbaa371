"""The stack command as a person meets it: status, logs, and errors worded as one sentence."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.support.stack import tickflow
from tickflow.settings import Settings
from tickflow.stack import SERVICES, supervisor

pytestmark = pytest.mark.integration


def test_status_lists_every_service_healthy(stack: Settings) -> None:
    result = tickflow("stack", "status", check=False)
    assert result.returncode == 0, result.stderr
    for service in SERVICES:
        assert service.name in result.stderr
    assert "beyond loopback" not in result.stderr


def test_no_service_listens_beyond_loopback(stack: Settings) -> None:
    """Every port each service's processes hold, asked for or not (web UIs, JMX, RPC ports of their own), is
    on loopback: nothing of the stack is reachable from another machine."""
    services = supervisor(stack)
    statuses = [services.status(service.name) for service in services.ordered()]
    assert {status.name: status.state.value for status in statuses if status.pid is None} == {}
    exposed = {status.name: [str(listener) for listener in status.exposed] for status in statuses if status.exposed}
    assert exposed == {}


def test_up_again_is_harmless(stack: Settings) -> None:
    result = tickflow("stack", "up", check=False)
    assert result.returncode == 0
    assert result.stderr.count("already running") == len(SERVICES)


def test_logs_prints_a_service_log(stack: Settings) -> None:
    result = tickflow("stack", "logs", "kafka", "-n", "5", check=False)
    assert result.returncode == 0
    assert result.stdout.strip()


def test_taken_port_is_one_sentence_not_a_trace(stack: Settings, tmp_path: Path) -> None:
    """A second stack pointed at a port in use fails fast and says what to do."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**os.environ, "TICKFLOW_STATE_DIR": str(tmp_path), "TICKFLOW_PORT_METASTORE": str(port)}
        result = tickflow("stack", "up", "metastore", check=False, env=env)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already taken" in result.stderr
    assert "Traceback" not in result.stderr
