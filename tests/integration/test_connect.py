"""The Kafka Connect worker answers its REST API."""

from __future__ import annotations

import httpx
import pytest

from tickflow.settings import Settings

pytestmark = pytest.mark.integration


def test_connect_worker_lists_connectors(stack: Settings) -> None:
    response = httpx.get(f"{stack.connect_url}/connectors", timeout=10)
    assert response.status_code == 200
    assert isinstance(response.json(), list)


def test_connect_worker_reports_its_kafka_cluster(stack: Settings) -> None:
    info = httpx.get(f"{stack.connect_url}/", timeout=10).json()
    assert info["version"] == stack.kafka_version
    assert info["kafka_cluster_id"]
