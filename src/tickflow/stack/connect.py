"""Kafka Connect in distributed mode; its plugins live in ``<state>/connect/plugins``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from tickflow.stack.jvm import CONSOLE_LOG4J2, JvmService


class Connect(JvmService):
    name = "connect"
    depends_on = ("kafka",)
    heap = "512m"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.connect,)

    @property
    def address(self) -> str:
        return self.settings.connect_url

    @property
    def plugin_path(self) -> Path:
        return self.home / "plugins"

    @property
    def coordinates(self) -> list[str]:
        log4j = self.settings.log4j_version
        return [
            f"org.apache.kafka:connect-runtime:{self.settings.kafka_version}",
            f"org.apache.logging.log4j:log4j-core:{log4j}",
            f"org.apache.logging.log4j:log4j-slf4j-impl:{log4j}",
        ]

    def write_config(self) -> None:
        self.plugin_path.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(CONSOLE_LOG4J2)
        (self.home / "worker.properties").write_text(
            f"""\
bootstrap.servers={self.settings.bootstrap_servers}
group.id=tickflow-connect
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.converters.ByteArrayConverter
offset.storage.topic=_connect.offsets
config.storage.topic=_connect.configs
status.storage.topic=_connect.status
offset.storage.replication.factor=1
config.storage.replication.factor=1
status.storage.replication.factor=1
offset.flush.interval.ms=5000
listeners=http://{self.settings.host}:{self.settings.ports.connect}
rest.advertised.host.name={self.settings.host}
rest.advertised.port={self.settings.ports.connect}
plugin.path={self.plugin_path}
plugin.discovery=service_load
"""
        )

    def command(self) -> list[str]:
        return [
            *self.java_command(),
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(self.home / "worker.properties"),
        ]

    def check_health(self) -> None:
        response = httpx.get(f"{self.settings.connect_url}/connectors", timeout=5)
        response.raise_for_status()
        if not isinstance(response.json(), list):
            raise ValueError("Connect answered /connectors with something other than a list")
