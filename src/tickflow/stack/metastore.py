"""The Hive Metastore (thrift) and the HiveServer2 endpoint (Spark Thrift Server).

Both run from the jars the pyspark wheel ships (Hive 2.3), so nothing extra is
downloaded. The metastore keeps its catalogue in a Derby database that only its own
JVM opens; every Spark application, the thrift server and Airflow's Hive hooks talk
to it over thrift, so they all see the same tables.

Hive 2.3's ``HiveMetaStore.main`` listens on every interface and has no setting for the address, so the
metastore runs from ``MetastoreLauncher.java`` (beside this module): the same thrift server, bound to
``settings.host``. It is compiled once into the service's home by ``prepare`` (javac, ~4 s of CPU that a
single-file source launch would pay at every start).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from tickflow.runtime.tooling import java_home, pyspark_home
from tickflow.stack.jvm import ADD_OPENS, JvmService, hadoop_xml

# WARN only: the metastore's INFO is a line or more per call (every health check), and the launcher prints the
# address it serves on. (HiveMetaStore.main replaced this with Hive's own log4j2 file, logging under /tmp.)
LOG4J2 = """\
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
"""

LAUNCHER = Path(__file__).with_name("MetastoreLauncher.java")


class Metastore(JvmService):
    name = "metastore"
    heap = "512m"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.metastore,)

    @property
    def address(self) -> str:
        return self.settings.metastore_uri

    @property
    def launcher_classes(self) -> Path:
        return self.home / "launcher"

    def classpath(self) -> str:
        return f"{self.launcher_classes}:{self.home}:{pyspark_home() / 'jars'}/*"

    def jvm_options(self) -> list[str]:
        return [
            *super().jvm_options(),
            *ADD_OPENS,
            # Without it Hive's log4j2 setup looks for the LMAX disruptor, which Spark does not ship.
            "-Dlog4j2.contextSelector=org.apache.logging.log4j.core.selector.ClassLoaderContextSelector",
            f"-Dderby.stream.error.file={self.paths.logs / 'metastore-derby.log'}",
        ]

    def prepare(self) -> None:
        super().prepare()
        self.compile_launcher()

    def compile_launcher(self) -> None:
        self.compile_source(LAUNCHER, self.launcher_classes)

    def write_config(self) -> None:
        self.settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(LOG4J2)
        database = self.home / "metastore_db"
        (self.home / "hive-site.xml").write_text(
            hadoop_xml(
                {
                    "javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={database};create=true",
                    "javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.EmbeddedDriver",
                    "datanucleus.schema.autoCreateAll": "true",
                    "hive.metastore.schema.verification": "false",
                    "hive.metastore.warehouse.dir": self.settings.warehouse_dir.as_uri(),
                    "hive.metastore.event.db.notification.api.auth": "false",
                }
            )
        )

    def command(self) -> list[str]:
        return [
            *self.java_command(),
            "MetastoreLauncher",
            self.settings.host,
            str(self.settings.ports.metastore),
        ]

    def check_health(self) -> None:
        from hmsclient import hmsclient

        logging.getLogger("thrift.transport.TSocket").setLevel(logging.CRITICAL)  # refused while it boots
        with hmsclient.HMSClient(host=self.settings.host, port=self.settings.ports.metastore) as client:
            if "default" not in client.get_all_databases():
                raise ValueError("the metastore has no default database yet")


class ThriftServer(JvmService):
    """HiveServer2 protocol on :10000, backed by a small local Spark on the shared metastore."""

    name = "thriftserver"
    depends_on = ("metastore",)
    heap = "768m"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.thriftserver,)

    @property
    def address(self) -> str:
        return f"jdbc:hive2://{self.settings.host}:{self.settings.ports.thriftserver}"

    def write_config(self) -> None:
        (self.home / "log4j2.properties").write_text(LOG4J2)

    def environment(self) -> Mapping[str, str]:
        return {"SPARK_HOME": str(pyspark_home()), "JAVA_HOME": str(java_home(self.java))}

    def command(self) -> list[str]:
        host = self.settings.host
        conf = {
            # Local even in the cluster profile: a standing SQL server would hold executors forever.
            "spark.master": "local[2]" if self.settings.clustered else self.settings.spark_master,
            "spark.driver.memory": self.heap,
            "spark.driver.bindAddress": host,
            "spark.driver.host": host,
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.catalogImplementation": "hive",
            "spark.hadoop.hive.metastore.uris": self.settings.metastore_uri,
            "spark.sql.warehouse.dir": self.settings.warehouse_dir.as_uri(),
            "spark.driver.extraJavaOptions": (
                f"-Dlog4j2.configurationFile=file:{self.home / 'log4j2.properties'} "
                f"-Dderby.stream.error.file={self.paths.logs / 'thriftserver-derby.log'}"
            ),
        }
        return [
            str(pyspark_home() / "bin" / "spark-submit"),
            "--class",
            "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            "--name",
            "tickflow-thriftserver",
            *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")),
            "--hiveconf",
            f"hive.server2.thrift.port={self.settings.ports.thriftserver}",
            "--hiveconf",
            f"hive.server2.thrift.bind.host={host}",
            "spark-internal",
        ]

    def check_health(self) -> None:
        from pyhive import hive

        logging.getLogger("thrift.transport.TSocket").setLevel(logging.CRITICAL)  # refused while it boots
        connection = hive.connect(
            host=self.settings.host, port=self.settings.ports.thriftserver, auth="NONE", username="tickflow"
        )
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            if cursor.fetchall() != [(1,)]:
                raise ValueError("the thrift server answered SELECT 1 wrongly")
        finally:
            connection.close()
