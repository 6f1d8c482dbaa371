"""Kafka Connect in distributed mode; its plugins live in ``<state>/connect/plugins``.

**The project's own plugins** (``connectors/<name>/``, Maven projects) are built and installed by
``prepare``, i.e. at every ``stack up`` that starts the worker: ``mvn package -DskipTests`` runs only
when the sources (``src/`` and ``pom.xml``) changed since the last install (a SHA-256 of them is kept
beside the plugin path), and the build's ``target/plugin/`` replaces
``plugins/tickflow-<name>/`` as a whole, so no jar of an older build lingers on the worker's
classpath. Maven caches in ``~/.m2``, so a rebuild needs no network once the dependencies are there.
A worker that is already running keeps the jars it loaded: stop it and ``stack up connect`` again.

**Plugins from Maven Central** (``central_plugins``: Debezium's PostgreSQL connector) are fetched with
their runtime closure into ``plugins/<name>/``, once per version (``fetch_jars`` keeps a stamp). Kafka's
and SLF4J's own jars are left out: the worker has them and loads those packages parent-first anyway, and
Debezium's closure would otherwise bring Kafka 4.3 jars beside the 4.1 worker's.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tickflow.kafka_auth import Principal, java_client_properties
from tickflow.runtime.tooling import fetch_jars, run_mvn
from tickflow.secret_file import write_private
from tickflow.settings import Settings
from tickflow.stack.base import StackError
from tickflow.stack.jvm import ADD_OPENS, CONSOLE_LOG4J2, JvmService

# The workers' group.id: kafka_acls grants it, and it starts the transactional ids of exactly-once source tasks.
CONNECT_GROUP = "tickflow-connect"
# Maven projects under settings.connectors_dir that the worker gets as plugins.
PLUGINS = ("hbase-sink", "marketevent-connect")
# What the worker provides itself; a plugin's copies would only shadow or clash with them.
WORKER_PROVIDED = ("org.apache.kafka:*", "org.slf4j:*")


@dataclass(frozen=True)
class CentralPlugin:
    """A Connect plugin fetched from Maven Central with its runtime closure into ``plugins/<name>/``."""

    name: str
    coordinates: tuple[str, ...]
    excludes: tuple[str, ...] = WORKER_PROVIDED


def central_plugins(settings: Settings) -> list[CentralPlugin]:
    return [
        CentralPlugin(
            "debezium-connector-postgres", (f"io.debezium:debezium-connector-postgres:{settings.debezium_version}",)
        ),
    ]


def install_central_plugin(plugin: CentralPlugin, plugin_path: Path, log: Path) -> Path:
    """Fetch the plugin's jars into ``plugin_path/<name>`` unless they are there already (same coordinates)."""
    return fetch_jars(list(plugin.coordinates), plugin_path / plugin.name, log, excludes=plugin.excludes)


def source_digest(project: Path) -> str:
    """SHA-256 of a Maven project's sources and pom (paths and contents), to tell whether to rebuild."""
    digest = hashlib.sha256()
    files = [project / "pom.xml", *sorted(p for p in (project / "src").rglob("*") if p.is_file())]
    for path in files:
        digest.update(path.relative_to(project).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def install_plugin(project: Path, plugin_path: Path, log: Path) -> bool:
    """Build ``project`` when its sources changed and put its ``target/plugin/`` into ``plugin_path`` as
    ``tickflow-<project name>/``; True if it was (re)installed."""
    target = plugin_path / f"tickflow-{project.name}"
    stamp = plugin_path.parent / f"tickflow-{project.name}.sha256"
    digest = source_digest(project)
    if target.is_dir() and any(target.glob("*.jar")) and stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    code = run_mvn(["-DskipTests", "-f", str(project / "pom.xml"), "package"], log)
    built = project / "target" / "plugin"
    if code != 0 or not any(built.glob("*.jar")):
        raise StackError(
            f"Building the Connect plugin {project.name} with Maven failed (exit {code}): "
            f"read {log} for the cause, fix it and run `tickflow stack up connect` again."
        )
    staging = plugin_path.parent / f".staging-{project.name}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(built, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    stamp.write_text(digest + "\n")
    return True


class Connect(JvmService):
    """A distributed worker: the only one (``connect``), or worker ``worker`` of the cluster profile's two
    (``connect-<worker>``), which share one group and its topics, so a worker's death moves its tasks."""

    name = "connect"
    jmx_rules = "connect"
    depends_on = ("kafka",)
    heap = "512m"

    def __init__(self, settings: Settings, worker: int = 0) -> None:
        super().__init__(settings)
        self.worker = worker
        if worker:
            self.name = f"connect-{worker}"

    @property
    def group(self) -> str:
        return "connect"

    @property
    def host(self) -> str:
        return self.settings.connect_hosts[self.worker - 1] if self.worker else self.settings.host

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.connect, self.settings.ports.connect_metrics)

    @property
    def metrics_port(self) -> int:
        return self.settings.ports.connect_metrics

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.settings.ports.connect}"

    @property
    def plugin_path(self) -> Path:
        """One set of plugins for every worker of the group."""
        return self.paths.home(self.group) / "plugins"

    @property
    def coordinates(self) -> list[str]:
        log4j = self.settings.log4j_version
        return [
            f"org.apache.kafka:connect-runtime:{self.settings.kafka_version}",
            f"org.apache.logging.log4j:log4j-core:{log4j}",
            f"org.apache.logging.log4j:log4j-slf4j-impl:{log4j}",
        ]

    def jvm_options(self) -> list[str]:
        # The HBase client in the sink reads primitives through Unsafe (java.nio.Bits), like the servers.
        return [*super().jvm_options(), *ADD_OPENS]

    def prepare(self) -> None:
        super().prepare()
        for name in PLUGINS:
            project = self.settings.connectors_dir / name
            if (project / "pom.xml").is_file():  # absent from an installed package without the checkout
                install_plugin(project, self.plugin_path, self.paths.log(f"{self.name}-plugin-{name}-build"))
        for plugin in central_plugins(self.settings):
            install_central_plugin(plugin, self.plugin_path, self.paths.log(f"{self.name}-plugin-{plugin.name}-fetch"))

    def write_config(self) -> None:
        """``worker.properties``; private, as in secured mode it holds the ``connect`` principal's password."""
        self.plugin_path.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(CONSOLE_LOG4J2)
        write_private(self.home / "worker.properties", self._kafka_login() + self._worker_properties())

    def _kafka_login(self) -> str:
        """The worker's own clients read the unprefixed keys; the connectors' clients only the ``producer.``,
        ``consumer.`` and ``admin.`` ones (a source task's producer, a sink task's consumer and its dead-letter
        producer, the admin that checks or creates their topics): all log in as ``connect``."""
        login = java_client_properties(self.settings, Principal.CONNECT)
        lines = [f"{key}={value}\n" for key, value in login.items()]
        del login["bootstrap.servers"]  # the worker hands it to its connectors' clients itself
        for client in ("producer", "consumer", "admin"):
            lines += [f"{client}.{key}={value}\n" for key, value in login.items()]
        return "".join(lines)

    def _worker_properties(self) -> str:
        replication = self.settings.kafka_replication
        return f"""\
group.id={CONNECT_GROUP}
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.converters.ByteArrayConverter
offset.storage.topic=_connect.offsets
config.storage.topic=_connect.configs
status.storage.topic=_connect.status
offset.storage.replication.factor={replication}
config.storage.replication.factor={replication}
status.storage.replication.factor={replication}
offset.flush.interval.ms=5000
listeners=http://{self.host}:{self.settings.ports.connect}
rest.advertised.host.name={self.host}
rest.advertised.port={self.settings.ports.connect}
plugin.path={self.plugin_path}
plugin.discovery=service_load
# a worker that left the group gets its tasks back only if it returns within this delay; after it, the other
# workers take them (Connect's default waits five minutes)
scheduled.rebalance.max.delay.ms=15000
# connectors may tune their own consumers (consumer.override.*: the HBase sink's max.poll.records)
connector.client.config.override.policy=All
# source connectors may commit records and offsets in one transaction (the trades source requires it)
exactly.once.source.support=enabled
# a connector config names secrets as file:<path>:<key> variables, so they stay out of GET /connectors/<name>/config
config.providers=file
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
"""

    def command(self) -> list[str]:
        worker = str(self.home / "worker.properties")
        return self.service_command("org.apache.kafka.connect.cli.ConnectDistributed", worker)

    def check_health(self) -> None:
        response = httpx.get(f"{self.address}/connectors", timeout=5)
        response.raise_for_status()
        if not isinstance(response.json(), list):
            raise ValueError("Connect answered /connectors with something other than a list")
