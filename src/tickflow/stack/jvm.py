"""Common ground of the services that are a plain JVM on a classpath of Maven jars."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tickflow.runtime.tooling import ADD_OPENS, fetch_jars, find_java
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


class JvmService(Service):
    """A service run as ``java -cp <lib>/* <main class>`` with jars fetched from Maven Central."""

    heap = "256m"
    min_java = 17
    excludes: tuple[str, ...] = ()

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

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.coordinates:
            fetch_jars(self.coordinates, self.lib, self.log_path, self.excludes, own_excludes=self.own_excludes)
        self.write_config()

    def write_config(self) -> None:
        """Write this service's config files into its home directory."""

    def run_tool(self, main_and_args: Sequence[str], what: str) -> None:
        """Run one of the service's own tools on its classpath (formatting its storage), output into its log;
        raise, saying ``what`` failed, if it exits non-zero."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            command = [*self.java_command(), *main_and_args]
            proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            raise StackError(f"{self.name} could not {what} (exit {proc.returncode}): read {self.log_path}.")
