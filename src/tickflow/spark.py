"""Spark sessions wired to the shared Hive metastore and the Kafka/Avro connectors.

The same configuration serves a session built in-process (tests, notebooks) and
``spark-submit`` (Airflow), so an app behaves the same whichever way it starts.
The connector jars are fetched once from Maven Central into the state directory
and passed as ``spark.jars``: only the jars the connectors add on top of the
pyspark distribution, so nothing on Spark's own classpath is shadowed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tickflow.kafka_auth import Principal, spark_kafka_options
from tickflow.runtime.paths import StatePaths
from tickflow.runtime.tooling import fetch_jars
from tickflow.settings import REPO_ROOT, Settings
from tickflow.topics import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# kafka-clients and commons-pool2 are the versions Spark's own pom pins for this release; the
# PostgreSQL driver reads the security master over JDBC.
CONNECTOR_EXTRAS = (
    "org.apache.kafka:kafka-clients:3.9.2",
    "org.apache.commons:commons-pool2:2.13.1",
    "org.postgresql:postgresql:42.7.14",
)
# Avro allocates a string or bytes value as long as its length prefix says before reading it (up to 2 GB),
# so one corrupt record would kill the JVM of the stream, again at every restart. Nothing in a Kafka record
# is longer than the record: past that the decoder refuses, and the record is rejected as undecodable.
AVRO_LIMITS = " ".join(f"-Dorg.apache.avro.limits.{kind}.maxLength={MAX_MESSAGE_BYTES}" for kind in ("string", "bytes"))


# The JVM operators of jvm/stream (e.g. decode.decoded_events_jvm), on every session's classpath once built.
STREAM_JAR = REPO_ROOT / "jvm" / "stream" / "target" / "tickflow-stream-0.1.0.jar"


def operator_jars() -> list[Path]:
    """tickflow's own JVM operators, when built (`mvn -f jvm/stream/pom.xml package`)."""
    return [STREAM_JAR] if STREAM_JAR.exists() else []


def connector_jars(settings: Settings) -> list[Path]:
    """The Kafka, Avro and JDBC jars matching the installed pyspark, fetched on first use."""
    version = settings.spark_connector_version
    coordinates = [
        f"org.apache.spark:spark-sql-kafka-0-10_2.13:{version}",
        f"org.apache.spark:spark-token-provider-kafka-0-10_2.13:{version}",
        f"org.apache.spark:spark-avro_2.13:{version}",
        *CONNECTOR_EXTRAS,
    ]
    paths = StatePaths(settings.root)
    dest = fetch_jars(coordinates, paths.lib / "spark-connectors", paths.log("spark-connectors"), transitive=False)
    return sorted(dest.glob("*.jar"))


SPARK_LOG4J2 = """\
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=FILE
appender.file.type=File
appender.file.name=FILE
appender.file.fileName={log}
appender.file.append=true
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=%d{{ISO8601}} %p [{app}] %c{{1}}: %m%n
logger.tickflow.name=tickflow
logger.tickflow.level=INFO
logger.operators.name=io.tickflow
logger.operators.level=INFO
"""


def _log_config(settings: Settings, app_name: str) -> Path:
    """A log4j2 config sending this application's JVM log to <state>/logs/spark-<app>.log."""
    paths = StatePaths(settings.root)
    config = paths.root / "spark" / f"log4j2-{app_name}.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    config.write_text(SPARK_LOG4J2.format(log=paths.log(f"spark-{app_name}"), app=app_name))
    return config


# On a standalone master (the cluster profile): one core per executor and at most two per app, so the stream
# never holds every core and a backfill or a reference refresh runs beside it (Spark's default gives the first
# app all of them).
STANDALONE = {"spark.executor.cores": "1", "spark.cores.max": "2", "spark.executor.memory": "1g"}


def spark_conf(
    settings: Settings,
    app_name: str,
    master: str | None = None,
    extra: dict[str, str] | None = None,
    java_options: str | None = None,
) -> dict[str, str]:
    """Everything a tickflow Spark application needs, as ``spark.*`` properties. ``java_options`` of the
    driver JVM: by default ``settings.spark_java_options`` (short-lived apps); the stream passes its own."""
    derby_log = StatePaths(settings.root).logs / "spark-derby.log"
    log_config = _log_config(settings, app_name)
    jvm = settings.spark_java_options if java_options is None else java_options
    java_options = f"{jvm} {AVRO_LIMITS} -Dderby.stream.error.file={derby_log}"
    java_options = f"{java_options} -Dlog4j2.configurationFile=file:{log_config}".strip()
    return {
        "spark.app.name": app_name,
        "spark.master": master or settings.spark_master,
        "spark.jars": ",".join(str(p) for p in [*connector_jars(settings), *operator_jars()]),
        "spark.driver.bindAddress": settings.host,
        "spark.driver.host": settings.host,
        "spark.ui.port": str(settings.ports.spark_ui),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.hive.metastore.uris": settings.metastore_uri,
        "spark.sql.warehouse.dir": settings.warehouse_dir.as_uri(),
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.extraJavaOptions": java_options,
        "spark.executor.extraJavaOptions": AVRO_LIMITS,
        # Python workers must run this interpreter (the one with tickflow installed), not PATH's python3.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        # HDFS (the cluster profile): dial a DataNode by the name it registered, not by the source address
        # the NameNode saw (127.0.0.1 for every loopback "host"; tickflow.stack.hdfs).
        "spark.hadoop.dfs.client.use.datanode.hostname": "true",
        **(STANDALONE if (master or settings.spark_master).startswith("spark://") else {}),
        **(extra or {}),
    }


def spark_session(
    settings: Settings,
    app_name: str,
    master: str | None = None,
    extra: dict[str, str] | None = None,
    java_options: str | None = None,
) -> SparkSession:
    """A session on the shared metastore with the Kafka and Avro connectors on its classpath."""
    from pyspark.sql import SparkSession

    # Spark would otherwise pick the machine's first non-loopback address and say so on the terminal.
    os.environ.setdefault("SPARK_LOCAL_IP", settings.host)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf(settings, app_name, master, extra, java_options).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def submit_args(
    settings: Settings,
    app_name: str,
    master: str | None = None,
    extra: dict[str, str] | None = None,
    java_options: str | None = None,
) -> list[str]:
    """The ``spark-submit`` options equivalent to :func:`spark_session`."""
    conf = spark_conf(settings, app_name, master, extra, java_options)
    return [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]


def kafka_reader(
    spark: SparkSession,
    settings: Settings,
    topic: str,
    *,
    principal: Principal,
    group_id_prefix: str,
    streaming: bool,
    starting_offsets: str = "earliest",
) -> Any:
    """A Kafka DataFrameReader (or DataStreamReader) on the stack's broker, logged in as ``principal``; callers
    add options and load(). Spark names its consumers' group ids ``<group_id_prefix>-<uuid>...`` and commits
    nothing there, but in secured mode a group id outside the principal's group ACLs would be refused."""
    reader = spark.readStream if streaming else spark.read
    return (
        reader.format("kafka")
        .options(**spark_kafka_options(settings, principal))
        .option("groupIdPrefix", group_id_prefix)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        # Spark's cached consumers keep a fetch in flight past the end of what they read, and Spark asks a
        # partition's offset range (two ListOffsets) after every poll; the broker holds an empty fetch up to
        # fetch.max.wait.ms and answers a connection's requests in order, so each lookup waited for it. At
        # 500 ms (the default) that was ~3 s of every micro-batch, at 10 ms still half of the tasks' time;
        # at 0 an empty fetch is answered at once (docs/performance.md).
        .option("kafka.fetch.max.wait.ms", "0")
        # The trades source writes md.events in Kafka transactions (exactly-once Connect): a worker killed
        # mid-transaction leaves records that are aborted and written again; only committed ones count.
        .option("kafka.isolation.level", "read_committed")
    )
