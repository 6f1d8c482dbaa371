"""HBase 2.6 standalone (master, region server and ZooKeeper in one JVM) and its Thrift server.

**Jars.** ``hbase-server`` runs as its ``-hadoop3`` build (Hadoop 3.3 client jars). ``hbase-thrift``
and the compression modules are published on Maven Central only as the Hadoop 2 build of the same
version, so they are fetched without their ``org.apache.hbase`` and ``org.apache.hadoop``
dependencies and run on the server's: the HBase classes are the same release, only the Hadoop
flavour of the build differs. (The all-Hadoop-2 combination also starts, but its old servlet jar
breaks the web UIs and it carries Hadoop 2.10.) Logging: Hadoop brings reload4j with its slf4j
binding, which is kept, so HBase's slf4j logging reaches ``log4j.properties`` and stdout, i.e. the
supervisor's log file (without the binding slf4j 1.7 drops every line).

**One server per Thrift protocol.** happybase speaks HBase's Thrift (1) API, which has no
namespaces and no data block encoding. The Thrift 2 API has both (``createNamespace``,
``createTable`` with full column-family descriptors), but a Thrift server process serves one
protocol: the Thrift 2 server answers a Thrift 1 call with "Invalid method name: 'getTableNames'"
(tried, 2.6.1). So ``hbase-thrift`` runs the Thrift 1 server for happybase (reads, writes, the
maintenance DAG's compactions), and the schema is set through a Thrift 2 server that ``bootstrap``
starts only when a table or family is missing or differs from ``tickflow.hbase.layout`` (first
``stack up``, or a changed TTL setting): a short-lived JVM of the same jars on a free port, driven
from Python with thriftpy2 (happybase's own Thrift library) and the Thrift 2 IDL read from the
hbase-thrift jar. No JRuby shell, no Java code of ours, and no second resident JVM.

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
import os
import socket
import subprocess
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tickflow.processes import spawn, stop_session
from tickflow.stack.base import StackError
from tickflow.stack.jvm import ADD_OPENS, JvmService, hadoop_xml

if TYPE_CHECKING:
    from tickflow.hbase.layout import Family, TableSpec

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
FOREVER = 2**31 - 1  # HConstants.FOREVER: the TTL of a family whose cells never expire
THRIFT2_IDL = "org/apache/hadoop/hbase/thrift2/hbase.thrift"


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
            # No web UIs: they would bind every interface, and the status comes from the supervisor.
            "hbase.master.info.port": -1,
            "hbase.regionserver.info.port": -1,
            "hbase.thrift.info.port": -1,
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

    @property
    def ports(self) -> Sequence[int]:
        ports = self.settings.ports
        return (ports.hbase_zookeeper, ports.hbase_master, ports.hbase_regionserver)

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
    """The Thrift (1) server happybase talks to; it also keeps the tables as tickflow.hbase.layout says."""

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

    def bootstrap(self) -> None:
        from tickflow.hbase.layout import table_specs

        specs = table_specs(self.settings)
        outdated = [spec for spec in specs if not _table_matches(self.settings.hbase_thrift_address, spec)]
        # Thrift 1 does not show every setting of a family (block encoding, in-memory compaction): the specs
        # last applied are kept beside the service's files, and all are applied again when they change.
        applied = self.home / "tables.applied"
        changed = not applied.is_file() or applied.read_text() != repr(specs)
        if not outdated and not changed:
            return
        with self.thrift2_admin() as (thrift2, client):
            _ensure_tables(thrift2, client, specs if changed else outdated)
        still = [spec.name for spec in outdated if not _table_matches(self.settings.hbase_thrift_address, spec)]
        if still:
            raise StackError(f"hbase-thrift could not set up {', '.join(still)}: read {self.log_path} for the cause.")
        applied.write_text(repr(specs))

    @contextmanager
    def thrift2_admin(self, timeout_s: float = 120.0) -> Iterator[tuple[Any, Any]]:
        """A short-lived Thrift 2 server on a free port: (the IDL module, a client of it)."""
        from thriftpy2.rpc import make_client

        thrift2 = _thrift2_module(self.lib / f"hbase-thrift-{self.settings.hbase_version}.jar", self.home)
        with socket.socket() as probe:
            probe.bind((self.settings.host, 0))
            port = int(probe.getsockname()[1])
        command = [
            *self.java_command("192m"),
            "org.apache.hadoop.hbase.thrift2.ThriftServer",
            *("-b", self.settings.host, "-p", str(port), "-threadpool", "start"),
        ]
        pid = spawn("hbase thrift2 (schema changes)", command, os.environ, self.log_path, cwd=self.home)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    client = make_client(thrift2.THBaseService, self.settings.host, port, timeout=60_000)
                    client.listNamespaces()
                    break
                except Exception:  # noqa: BLE001 - refused or not ready while the JVM starts
                    if time.monotonic() > deadline:
                        raise StackError(
                            f"hbase-thrift's schema server did not answer within {timeout_s:.0f}s: "
                            f"read {self.log_path} for the cause."
                        ) from None
                    time.sleep(1.0)
            try:
                yield thrift2, client
            finally:
                client.close()
        finally:
            stop_session(pid, 10.0)


def _zookeeper_command(host: str, port: int, command: bytes, timeout_s: float = 5.0) -> bytes:
    """Send a ZooKeeper four-letter command; its whole answer (HBase's ZooKeeper allows them all)."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(command)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@cache
def _thrift2_module(jar: Path, workdir: Path) -> Any:
    """The Thrift 2 IDL as a thriftpy2 module, read from the hbase-thrift jar the server runs."""
    import thriftpy2

    idl = workdir / "thrift2" / "hbase.thrift"
    idl.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as archive:
        idl.write_bytes(archive.read(THRIFT2_IDL))
    return thriftpy2.load(str(idl), module_name="tickflow_hbase2_thrift")


def _table_matches(address: tuple[str, int], spec: TableSpec) -> bool:
    """Whether the table exists with these families as far as Thrift 1 shows them (not the block
    encoding, which it does not report: that is set whenever the table is created or changed)."""
    import happybase

    connection = happybase.Connection(*address, timeout=30_000)
    try:
        if spec.name.encode() not in connection.tables():
            return False
        families = connection.table(spec.name).families()
    finally:
        connection.close()
    if set(families) != {family.name.encode() for family in spec.families}:
        return False
    for family in spec.families:
        actual = families[family.name.encode()]
        ttl = actual["time_to_live"]
        if (
            actual["max_versions"] != family.max_versions
            or actual["compression"] != family.compression.encode()
            or actual["bloom_filter_type"] != family.bloom.encode()
            or bool(actual["in_memory"]) != family.in_memory
            or (None if ttl == FOREVER else ttl) != family.ttl_s
        ):
            return False
    return True


def _ensure_tables(thrift2: Any, client: Any, specs: Sequence[TableSpec]) -> None:
    """Create the namespaces, tables and families that are missing; set the others to the spec."""
    for namespace in sorted({spec.name.partition(":")[0] for spec in specs}):
        if namespace not in client.listNamespaces():
            client.createNamespace(thrift2.TNamespaceDescriptor(name=namespace))
    for spec in specs:
        namespace, _, qualifier = spec.name.partition(":")
        table = thrift2.TTableName(ns=namespace.encode(), qualifier=qualifier.encode())
        families = [_family_descriptor(thrift2, family) for family in spec.families]
        if not client.tableExists(table):
            client.createTable(thrift2.TTableDescriptor(tableName=table, columns=families), None)
            continue
        existing = {column.name for column in client.getTableDescriptor(table).columns}
        for family in families:
            if family.name in existing:
                client.modifyColumnFamily(table, family)
            else:
                client.addColumnFamily(table, family)


def _family_descriptor(thrift2: Any, family: Family) -> Any:
    return thrift2.TColumnFamilyDescriptor(
        name=family.name.encode(),
        maxVersions=family.max_versions,
        timeToLive=family.ttl_s if family.ttl_s is not None else FOREVER,
        compressionType=getattr(thrift2.TCompressionAlgorithm, family.compression),
        dataBlockEncoding=getattr(thrift2.TDataBlockEncoding, family.block_encoding),
        bloomnFilterType=getattr(thrift2.TBloomFilterType, family.bloom),  # sic, the IDL's spelling
        inMemory=family.in_memory,
        attributes={b"IN_MEMORY_COMPACTION": family.in_memory_compaction.encode()},
    )
