"""Common ground of the services that are a plain JVM on a classpath of Maven jars."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tickflow.runtime.scrape import metrics_login
from tickflow.runtime.tooling import ADD_OPENS, fetch_artifact, fetch_jars, find_java
from tickflow.secret_file import write_private
from tickflow.settings import REPO_ROOT, Settings
from tickflow.stack.base import Service, StackError

__all__ = ["ADD_OPENS", "CONSOLE_LOG4J2", "JvmService", "hadoop_xml"]

# Everything goes to stdout, which the supervisor sends to <state>/logs/<service>.log.
CONSOLE_LOG4J2 = """\
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.kafkaapache.name=org.apache.kafka
logger.kafkaapache.level=WARN
logger.statechange.name=state.change.logger
logger.statechange.level=WARN
"""


def hadoop_xml(properties: Mapping[str, object]) -> str:
    """A Hadoop-style ``*-site.xml`` (hive-site, hbase-site)."""
    rows = "\n".join(f"  <property><name>{k}</name><value>{v}</value></property>" for k, v in properties.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}\n</configuration>\n'


# The JMX exporter's rules of each JVM whose MBeans Prometheus scrapes (docs/operations.md).
JMX_RULES = REPO_ROOT / "monitoring" / "jmx"


class JvmService(Service):
    """A service run as ``java -cp <lib>/* <main class>`` with jars fetched from Maven Central."""

    heap = "256m"
    min_java = 17
    excludes: tuple[str, ...] = ()
    # The JMX exporter agent's rules (``monitoring/jmx/<name>.yaml``) for a JVM that serves its MBeans to
    # Prometheus on :attr:`metrics_port`; None for one that does not.
    jmx_rules: str | None = None

    @property
    def metrics_port(self) -> int | None:
        return None

    @property
    def coordinates(self) -> list[str]:
        return []

    @property
    def own_excludes(self) -> Mapping[str, Sequence[str]]:
        """Exclusions ("group:artifact", ``*`` allowed) that apply to one coordinate only."""
        return {}

    @property
    def lib(self) -> Path:
        """The jars, fetched once for every member of a group (the cluster profile's brokers)."""
        return self.paths.lib / self.group

    @property
    def java(self) -> Path:
        return find_java(self.min_java, self.settings.java_home, f"{self.name} (Kafka/Spark/Hive JVMs)")

    def classpath(self) -> str:
        return f"{self.home}:{self.lib}/*"

    def jvm_options(self) -> list[str]:
        return [
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile=file:{self.home / 'log4j2.properties'}",
        ]

    def java_command(self) -> list[str]:
        return [str(self.java), *self.jvm_options(), "-cp", self.classpath()]

    @property
    def jmx_agent(self) -> Path:
        """The JMX exporter javaagent, kept apart from every classpath (it holds Prometheus's client unshaded)."""
        return self.paths.lib / "jmx-exporter" / f"jmx_prometheus_javaagent-{self.settings.jmx_exporter_version}.jar"

    def agent_options(self) -> list[str]:
        """The JMX exporter agent serving ``/metrics`` on this service's host and metrics port (its default
        host would be every interface). Only the service itself gets it, not its tools (``run_tool``), which
        would take the port for as long as they run."""
        if self.jmx_rules is None:
            return []
        return [f"-javaagent:{self.jmx_agent}={self.host}:{self.metrics_port}:{self.home / 'jmx-exporter.yaml'}"]

    def service_command(self, main: str, *args: str) -> list[str]:
        """The service's own JVM: :meth:`java_command` with the metrics agent, then its main class."""
        return [str(self.java), *self.jvm_options(), *self.agent_options(), "-cp", self.classpath(), main, *args]

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.coordinates:
            fetch_jars(self.coordinates, self.lib, self.log_path, self.excludes, own_excludes=self.own_excludes)
        if self.jmx_rules is not None:
            self._prepare_jmx_agent()
        self.write_config()

    def _prepare_jmx_agent(self) -> None:
        if not self.jmx_agent.exists():
            coordinate = f"io.prometheus.jmx:jmx_prometheus_javaagent:{self.settings.jmx_exporter_version}:jar"
            fetched = fetch_artifact(coordinate, self.log_path)
            self.jmx_agent.parent.mkdir(parents=True, exist_ok=True)
            partial = self.jmx_agent.with_suffix(".partial")
            shutil.copyfile(fetched, partial)
            partial.replace(self.jmx_agent)
        rules = (JMX_RULES / f"{self.jmx_rules}.yaml").read_text()
        write_private(self.home / "jmx-exporter.yaml", rules + jmx_login(self.settings))

    def write_config(self) -> None:
        """Write this service's config files into its home directory."""

    def compile_source(self, source: Path, classes: Path) -> None:
        """javac ``source`` (a class of the stack's own, beside its module) against the service's classpath into
        ``classes``, unless the classes there came from this very source (~4 s of CPU a start would repeat)."""
        copy = classes / source.name  # the copy the classes were compiled from
        if copy.exists() and copy.read_bytes() == source.read_bytes():
            return
        javac = self.java.with_name("javac")
        if not javac.exists():
            raise StackError(f"{self.name} needs a JDK to compile {source.name}, and {self.java.parent} has no javac.")
        classes.mkdir(parents=True, exist_ok=True)
        command = [str(javac), "-nowarn", "-d", str(classes), "-cp", self.classpath(), str(source)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise StackError(f"Compiling {source.name} failed: {done.stderr.strip() or done.stdout.strip()}")
        copy.write_bytes(source.read_bytes())

    def run_tool(self, main_and_args: Sequence[str], what: str) -> None:
        """Run one of the service's own tools on its classpath (formatting its storage), output into its log;
        raise, saying ``what`` failed, if it exits non-zero."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            command = [*self.java_command(), *main_and_args]
            proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            raise StackError(f"{self.name} could not {what} (exit {proc.returncode}): read {self.log_path}.")


def jmx_login(settings: Settings) -> str:
    """The agent's ``httpServer`` block in secured mode: the metrics login, its password as a salted SHA-256
    (``SHA-256(<salt>:<password>)``, as the agent checks it); nothing in plain mode."""
    login = metrics_login(settings)
    if login is None:
        return ""
    user, password = login
    salt = secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()
    return (
        "httpServer:\n  authentication:\n    basic:\n"
        f"      username: {user}\n      passwordHash: {digest}\n      algorithm: SHA-256\n      salt: {salt}\n"
    )
