"""Spark sessions wired to the shared Hive metastore and the Kafka/Avro connectors.

The same configuration serves a session built in-process (tests, notebooks) and
``spark-submit`` (Airflow), so an app behaves the same whichever way it starts.
The connector jars are fetched once from Maven Central into the state directory
and passed as ``spark.jars``: only the five jars the connectors add on top of the
pyspark distribution, so nothing on Spark's own classpath is shadowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tickflow.settings import Settings
from tickflow.stack.base import StackPaths
from tickflow.stack.tooling import fetch_jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# kafka-clients and commons-pool2 are the versions Spark's own pom pins for this release.
CONNECTOR_EXTRAS = ("org.apache.kafka:kafka-clients:3.9.2", "org.apache.commons:commons-pool2:2.13.1")


def connector_jars(settings: Settings) -> list[Path]:
    """The Kafka source/sink and Avro jars matching the installed pyspark, fetched on first use."""
    version = settings.spark_connector_version
    coordinates = [
        f"org.apache.spark:spark-sql-kafka-0-10_2.13:{version}",
        f"org.apache.spark:spark-token-provider-kafka-0-10_2.13:{version}",
        f"org.apache.spark:spark-avro_2.13:{version}",
        *CONNECTOR_EXTRAS,
    ]
    paths = StackPaths(settings.root)
    dest = fetch_jars(
        coordinates, paths.lib / "spark-connectors", paths.log("spark-connectors"), transitive=False
    )
    return sorted(dest.glob("*.jar"))


def spark_conf(settings: Settings, app_name: str, master: str = "local[2]") -> dict[str, str]:
    """Everything a tickflow Spark application needs, as ``spark.*`` properties."""
    derby_log = StackPaths(settings.root).logs / "spark-derby.log"
    return {
        "spark.app.name": app_name,
        "spark.master": master,
        "spark.jars": ",".join(str(p) for p in connector_jars(settings)),
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
        "spark.driver.extraJavaOptions": f"-Dderby.stream.error.file={derby_log}",
    }


def spark_session(settings: Settings, app_name: str, master: str = "local[2]") -> SparkSession:
    """A session on the shared metastore with the Kafka and Avro connectors on its classpath."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_conf(settings, app_name, master).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def submit_args(settings: Settings, app_name: str, master: str = "local[2]") -> list[str]:
    """The ``spark-submit`` options equivalent to :func:`spark_session`."""
    return [
        arg
        for key, value in spark_conf(settings, app_name, master).items()
        for arg in ("--conf", f"{key}={value}")
    ]
