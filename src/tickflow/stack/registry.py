"""Apicurio Registry 3.x, serving the Confluent Schema Registry API (``/apis/ccompat/v7``).

Schemas are stored in Kafka (KafkaSQL storage: a journal topic replayed at start),
so they survive a restart together with the topics whose records reference them.
Apicurio 3.x is built for Java 21+, so it runs on a newer JDK than the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from tickflow.kafka_auth import Principal, java_client_properties
from tickflow.runtime.tooling import fetch_archive, find_java
from tickflow.secret_file import write_private
from tickflow.stack.base import StackError
from tickflow.stack.jvm import JvmService

# KafkaSQL joins a new consumer group at every start (to replay the whole journal), named with this prefix.
REGISTRY_GROUPS = "tickflow-registry-"


class Registry(JvmService):
    name = "registry"
    depends_on = ("kafka",)
    heap = "384m"
    min_java = 21

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.registry, self.settings.ports.registry_management)

    @property
    def address(self) -> str:
        return self.settings.registry_url

    @property
    def java(self) -> Path:
        return find_java(21, self.settings.java21_home, "The schema registry (Apicurio 3.x)")

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        fetch_archive(
            "io.apicurio",
            "apicurio-registry-app",
            self.settings.apicurio_version,
            "all",
            self.lib,
            self.log_path,
        )
        self.write_config()

    def write_config(self) -> None:
        """In secured mode, the Kafka login of the registry's producer, consumer and admin client, in the file
        Quarkus reads from its working directory (``config/application.properties``): a ``-D`` option would
        show the password to every user of the machine (``ps``)."""
        config = self.home / "config"
        config.mkdir(parents=True, exist_ok=True)
        login = java_client_properties(self.settings, Principal.REGISTRY)
        del login["bootstrap.servers"]
        lines = [
            f"apicurio.kafkasql.{client}.{key}={value}\n"
            for client in ("producer", "consumer", "admin")
            for key, value in login.items()
        ]
        write_private(config / "application.properties", "".join(lines))

    def _quarkus_jar(self) -> Path:
        jars = sorted(self.lib.rglob("quarkus-run.jar"))
        if not jars:
            raise StackError(
                f"registry: the Apicurio archive in {self.lib} holds no quarkus-run.jar; "
                f"delete {self.lib} and run the command again."
            )
        return jars[0]

    def command(self) -> list[str]:
        host, ports = self.settings.host, self.settings.ports
        properties = {
            "quarkus.http.host": host,
            "quarkus.http.port": ports.registry,
            "quarkus.management.host": host,
            "quarkus.management.port": ports.registry_management,
            "quarkus.banner.enabled": "false",
            "quarkus.log.level": "INFO",
            "quarkus.log.console.color": "false",
            'quarkus.log.category."org.apache.kafka".level': "WARN",
            "quarkus.http.access-log.enabled": "false",
            'quarkus.log.category."io.apicurio.registry.logging.audit".level': "WARN",
            "apicurio.storage.kind": "kafkasql",
            "apicurio.kafkasql.bootstrap.servers": self.settings.bootstrap_servers,
            "apicurio.kafkasql.consumer.group-prefix": REGISTRY_GROUPS,
            # The default 5 s poll runs twice during start-up; 1 s makes a restart about 25 s quicker.
            "apicurio.kafkasql.consumer.poll.timeout": "1000",
            "apicurio.rules.global.compatibility": "BACKWARD",
            "apicurio.ccompat.legacy-id-mode.enabled": "false",
        }
        return [
            str(self.java),
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-Djava.net.preferIPv4Stack=true",
            *(f"-D{key}={value}" for key, value in properties.items()),
            "-jar",
            str(self._quarkus_jar()),
        ]

    def check_health(self) -> None:
        # The API answers a moment before the journal has been replayed; readiness waits for it.
        host, ports = self.settings.host, self.settings.ports
        ready = httpx.get(f"http://{host}:{ports.registry_management}/health/ready", timeout=5)
        ready.raise_for_status()
        response = httpx.get(f"{self.settings.registry_url}/subjects", timeout=5)
        response.raise_for_status()
        if not isinstance(response.json(), list):
            raise ValueError("the registry answered /subjects with something other than a list")
