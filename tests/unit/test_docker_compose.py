"""docker/compose.yaml stays the same topology as the local stack."""

from __future__ import annotations

from pathlib import Path

import yaml

from tickflow.settings import Settings
from tickflow.stack import services

COMPOSE = Path(__file__).parents[2] / "docker" / "compose.yaml"


def test_every_local_service_has_a_compose_counterpart_on_the_same_port() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    settings = Settings()
    for service in services(settings):
        assert service.name in compose, f"docker/compose.yaml lacks {service.name}"
        published = compose[service.name].get("ports", [])
        for port in service.ports[:1]:  # Airflow's scheduler, dag-processor and triggerer listen nowhere
            assert f"127.0.0.1:{port}:{port}" in published, service.name
        assert compose[service.name]["image"].split(":")[1], f"{service.name} image is not pinned"


def test_compose_dependencies_follow_the_local_stack() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    settings = Settings()
    for service in services(settings):
        declared = compose[service.name].get("depends_on", [])
        assert set(service.depends_on) <= set(declared), service.name
