"""The Kafka Connect worker answers its REST API."""

from __future__ import annotations

import os
import tempfile
import uuid

import httpx
import pytest

from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectClient, ConnectError
from tickflow.sources.trade_capture import prepare
from tickflow.sources.trades_connector import TradesSourceSettings, connector_config, write_secrets

pytestmark = pytest.mark.integration


def test_connect_worker_lists_connectors(stack: Settings) -> None:
    response = httpx.get(f"{stack.connect_url}/connectors", timeout=10)
    assert response.status_code == 200
    assert isinstance(response.json(), list)


def test_connect_worker_reports_its_kafka_cluster(stack: Settings) -> None:
    info = httpx.get(f"{stack.connect_url}/", timeout=10).json()
    assert info["version"] == stack.kafka_version
    assert info["kafka_cluster_id"]


def test_a_failed_connector_fails_the_watchdogs_connector_check(stack: Settings) -> None:
    """A trades source whose converter cannot reach the schema registry fails its task; the enrichment_stream
    DAG's check_connectors task (its operator, run here directly) then fails naming it."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tickflow-airflow-home-"))
    from airflow.sdk.exceptions import AirflowException

    from tickflow.airflow.operators.connect import ConnectorsHealthOperator

    prepare(stack)  # the table, publication and slot Debezium validates against, and its password file
    write_secrets(stack)
    source = TradesSourceSettings(name=f"test-failing-{uuid.uuid4().hex[:8]}")
    config = {**connector_config(stack, source), "value.converter.schema.registry.url": "http://127.0.0.1:9"}
    client = ConnectClient(stack.connect_urls)
    client.put_config(source.name, config)
    try:
        with pytest.raises(ConnectError, match=f"Connector {source.name} failed"):
            client.wait_running(source.name, config, 1, timeout_s=120)
        with pytest.raises(AirflowException, match=f"of Kafka Connect failed: .*{source.name} "):
            ConnectorsHealthOperator(task_id="check_connectors").execute({})
    finally:
        client.delete(source.name)
    assert source.name not in ConnectorsHealthOperator(task_id="check_connectors").execute({})
