"""HBase 2.6 standalone (master, region server and ZooKeeper in one JVM) and its Thrift server.

**Jars.** ``hbase-server`` runs as its ``-hadoop3`` build (Hadoop 3.3 client jars). ``hbase-thrift``
and the compression modules are published on Maven Central only as the Hadoop 2 build of the same
version, so they are fetched without their ``org.apache.hbase`` and ``org.apache.hadoop``
dependencies and run on the server's: the HBase classes are the same release, only the Hadoop
flavour of the build differs. (The all-Hadoop-2 combination also starts, but its old servlet jar
breaks the web UIs and it carries Hadoop 2.10.) Logging: Hadoop brings reload4j with its slf4j
binding, which is kept, so HBase's slf4j logging reaches ``log4j.properties`` and stdout, i.e. the
supervisor's log file (without the binding slf4j 1.7 drops every line).

**Tables are not the stack's.** ``hbase-thrift`` runs the Thrift (1) server that happybase speaks (reads,
writes). The ``md`` namespace and its tables are created and kept to ``tickflow.hbase.layout`` by
``tickflow hbase migrate`` (``tickflow.hbase.tables``), as the Hive tables are by ``tickflow hive migrate``.

**Compression without native libraries.** GZ is built in (Java's zlib). ``hbase-compression-
aircompressor`` adds pure-Java LZ4, Snappy and ZStandard codecs, selected through
``hbase.io.compress.<codec>.codec``; all four created tables, wrote flushed HFiles and read them back
after a restart here. ``md:history`` uses LZ4 by default (pure-Java ZSTD compresses better but was about
half of HBase's CPU at load, in flushes and compactions; ``TICKFLOW_HBASE_HISTORY_COMPRESSION`` switches
it), ``md:latest`` none (small, hot).

**Stop.** SIGTERM makes the master's shutdown hook stop ZooKeeper before the region server has
left it: ~26 s of retries and errors in the log. ``HMaster stop --shutDownCluster`` flushes and
closes the regions and stops cleanly (~20 s here), so ``shutdown`` runs that; Thrift (stopped first,
it depends on the master) exits on SIGTERM in about a second.
"""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tickflow.runtime.scrape import metrics_login, metrics_password_file
from tickflow.stack.base import StackError
from tickflow.stack.jvm import ADD_OPENS, JvmService, hadoop_xml

INFO_LOGIN = Path(__file__).with_name("HBaseInfoLogin.java")

LOG4J = """\
log4j.rootLogger=WARN,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.out
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.hadoop.hbase.master.HMaster=INFO
log4j.logger.org.apache.hadoop.hbase.thrift.ThriftServer=INFO
log4j.logger.org.apache.hadoop.hbase.thrift2.ThriftServer=INFO
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
log4j.logger.org.apache.hadoop.metrics2.impl.MetricsConfig=ERROR
log4j.logger.org.apache.hadoop.hbase.ZNodeClearer=ERROR
log4j.logger.org.apache.hadoop.hbase.client.ZKConnectionRegistry=ERROR
"""
CODECS = {
    "snappy": "SnappyCodec",
    "lz4": "Lz4Codec",
    "zstd": "ZstdCodec",
}


class _HBaseJvm(JvmService):
    """The master and the Thrift server run from the same jars and the same hbase-site.xml."""

    @property
    def coordinates(self) -> list[str]:
        version = self.settings.hbase_version
        return [
            f"org.apache.hbase:hbase-server:{version}-hadoop3",
            f"org.apache.hbase:hbase-thrift:{version}",
            f"org.apache.hbase:hbase-compression-aircompressor:{version}",
        ]

    @property
    def own_excludes(self) -> Mapping[str, Sequence[str]]:
        hadoop2_builds = self.coordinates[1:]
        return {coordinate: ("org.apache.hbase:*", "org.apache.hadoop:*") for coordinate in hadoop2_builds}

    @property
    def lib(self) -> Path:
        return self.paths.lib / "hbase"

    @property
    def data(self) -> Path:
        """Root dir, ZooKeeper and temp files of the standalone cluster."""
        return self.paths.home("hbase")

    def jvm_options(self, heap: str | None = None) -> list[str]:
        return [
            f"-Xmx{heap or self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=50",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",  # its admin server would want :8080 (Airflow's)
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            *ADD_OPENS,
        ]

    def java_command(self, heap: str | None = None) -> list[str]:
        return [str(self.java), *self.jvm_options(heap), "-cp", self.classpath()]

    def hbase_site(self) -> dict[str, object]:
        host, ports = self.settings.host, self.settings.ports
        site: dict[str, object] = {
            "hbase.cluster.distributed": "false",
            "hbase.rootdir": self.paths.hbase_root.as_uri(),
            "hbase.tmp.dir": self.data / "tmp",
            # The local file system cannot hflush/hsync; standalone HBase accepts that (as its shipped conf).
            "hbase.unsafe.stream.capability.enforce": "false",
            "hbase.zookeeper.quorum": host,
            "hbase.zookeeper.property.clientPort": ports.hbase_zookeeper,
            "hbase.zookeeper.property.dataDir": self.data / "zookeeper",
            "hbase.master.port": ports.hbase_master,
            "hbase.master.ipc.address": host,
            "hbase.master.hostname": host,
            "hbase.regionserver.port": ports.hbase_regionserver,
            "hbase.regionserver.ipc.address": host,
            "hbase.unsafe.regionserver.hostname": host,
            # The master's info server, on loopback only, for its /prometheus: the servlet exports the whole JVM's
            # metrics (master, region server and ZooKeeper run in this one). No other web UI: it would bind every
            # interface, and the status comes from the supervisor.
            "hbase.master.info.port": ports.hbase_master_info,
            "hbase.master.info.bindAddress": host,
            "hbase.regionserver.info.port": -1,
            "hbase.thrift.info.port": -1,
            # The inputs of a compaction leave the store at the discharger's next run (2 min by default), and a
            # major compaction is over when they did (tickflow.hbase.compaction watches the store files): 5 s.
            "hbase.hfile.compaction.discharger.interval": 5_000,
        }
        for codec, cls in CODECS.items():
            site[f"hbase.io.compress.{codec}.codec"] = f"org.apache.hadoop.hbase.io.compress.aircompressor.{cls}"
        return site

    def write_config(self) -> None:
        (self.home / "log4j.properties").write_text(LOG4J)
        (self.home / "hbase-site.xml").write_text(hadoop_xml(self.hbase_site()))


class HBase(_HBaseJvm):
    """HMaster in standalone mode: master, one region server and ZooKeeper in one JVM."""

    name = "hbase"
    heap = "512m"

    def prepare(self) -> None:
        super().prepare()
        if self.settings.secured:  # the info server's login, compiled onto the classpath (its home)
            self.compile_source(INFO_LOGIN, self.home)

    def hbase_site(self) -> dict[str, object]:
        site = super().hbase_site()
        login = metrics_login(self.settings)
        if login is not None:  # secured mode: the info server (its /prometheus) asks for the metrics login
            site |= {
                "hbase.http.filter.initializers": INFO_LOGIN.stem,
                "tickflow.metrics.user": login[0],
                "tickflow.metrics.password.file": metrics_password_file(self.settings),
            }
        return site

    @property
    def ports(self) -> Sequence[int]:
        ports = self.settings.ports
        return (ports.hbase_zookeeper, ports.hbase_master, ports.hbase_regionserver, ports.hbase_master_info)

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.ports.hbase_zookeeper} (ZooKeeper)"

    def command(self) -> list[str]:
        return [*self.java_command(), "org.apache.hadoop.hbase.master.HMaster", "start"]

    def check_health(self) -> None:
        """ZooKeeper answers, and lists the active master's and a region server's ephemeral nodes."""
        dump = _zookeeper_command(self.settings.host, self.settings.ports.hbase_zookeeper, b"dump")
        if b"/hbase/master" not in dump or b"/hbase/rs/" not in dump:
            raise StackError("hbase has no active master and region server in ZooKeeper yet")

    def shutdown(self) -> bool:
        with self.log_path.open("ab") as log:
            subprocess.run(
                [*self.java_command("128m"), "org.apache.hadoop.hbase.master.HMaster", "stop", "--shutDownCluster"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                timeout=120,
                check=True,
            )
        return True


class HBaseThrift(_HBaseJvm):
    """The Thrift (1) server happybase talks to."""

    name = "hbase-thrift"
    depends_on = ("hbase",)
    heap = "256m"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.hbase_thrift,)

    @property
    def address(self) -> str:
        host, port = self.settings.hbase_thrift_address
        return f"thrift://{host}:{port}"

    def command(self) -> list[str]:
        host, port = self.settings.hbase_thrift_address
        return [
            *self.java_command(),
            "org.apache.hadoop.hbase.thrift.ThriftServer",
            *("-b", host, "-p", str(port), "-threadpool"),  # buffered transport, binary: happybase's defaults
            "start",
        ]

    def check_health(self) -> None:
        """A real call through the master: list the tables (fails while the master initializes)."""
        import happybase

        logging.getLogger("thriftpy2").setLevel(logging.CRITICAL)
        host, port = self.settings.hbase_thrift_address
        connection = happybase.Connection(host, port, timeout=10_000)
        try:
            connection.tables()
        finally:
            connection.close()


def _zookeeper_command(host: str, port: int, command: bytes, timeout_s: float = 5.0) -> bytes:
    """Send a ZooKeeper four-letter command; its whole answer (HBase's ZooKeeper allows them all)."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(command)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
