"""The stack command as a person meets it: status, logs, and errors worded as one sentence."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tests.support.stack import tickflow
from tickflow.settings import Settings
from tickflow.sinks.hbase import HBaseSinkSettings
from tickflow.sources.trades_connector import TradesSourceSettings
from tickflow.stack import services, supervisor
from tickflow.stream.control import Verdict

pytestmark = pytest.mark.integration


def test_status_lists_every_service_healthy(stack: Settings) -> None:
    result = tickflow("stack", "status", check=False)
    assert result.returncode == 0, result.stderr
    for service in services(stack):  # on stdout: `tickflow stack status | grep kafka` finds Kafka's row
        assert service.name in result.stdout
    assert "beyond loopback" not in result.stdout + result.stderr


def test_status_as_json(stack: Settings) -> None:
    result = tickflow("stack", "status", "--json", check=False)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {row["name"]: row["state"] for row in rows} == {service.name: "healthy" for service in services(stack)}
    kafka = next(row for row in rows if row["name"] in ("kafka", "kafka-1"))  # the cluster profile's first broker
    address = f"{stack.kafka_hosts[0]}:{stack.ports.kafka}"
    assert kafka["address"] == address and kafka["pid"] > 0 and kafka["exposed"] == []
    # Each service on the address of its own "host" (the cluster profile's 127.0.0.2-4 for brokers and workers).
    hosts = {service.name: service.host for service in services(stack) if service.ports}
    assert all(hosts[row["name"]] in row["address"] for row in rows if row["name"] in hosts), rows


def test_the_other_status_commands_answer_in_json_as_their_exit_code_says(stack: Settings) -> None:
    """connect, stream and trades status: JSON on stdout with --json, whatever runs at the moment."""
    connect = tickflow("connect", "status", "--json", check=False)
    answer = json.loads(connect.stdout)
    shown = {c["name"]: c["running"] for c in answer["connectors"]}
    assert {HBaseSinkSettings().name, TradesSourceSettings().name} <= set(shown) | set(answer["missing"])
    assert connect.returncode == (0 if not answer["missing"] and all(shown.values()) else 1), connect.stderr

    stream = tickflow("stream", "status", "--json", check=False)
    health = json.loads(stream.stdout)
    assert health["verdict"] in {verdict.value for verdict in Verdict}
    assert stream.returncode == (0 if health["verdict"] in ("healthy", "starting") else 1), stream.stderr

    trades = tickflow("trades", "status", "--json", check=False)
    slot = json.loads(trades.stdout)
    assert set(slot) == {"exists", "active", "lag_bytes", "wal_status", "healthy"}
    assert trades.returncode == (0 if slot["healthy"] else 1), trades.stderr


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
    assert result.stderr.count("already running") == len(services(stack))


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
