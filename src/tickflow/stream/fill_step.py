"""The fill stage in the JVM: decoded events -> one filled row per (instrument, event time), no shuffle.

All events of an instrument arrive on one Kafka partition (key = instrument id), and Spark reads each
Kafka partition of a micro-batch in one task. ``io.tickflow.stream.fill.FillOperator`` (``jvm/stream``,
a ``mapPartitions``) therefore fills each task's partitions alone:

  1. the rejected records go to the dead-letter topic, original key and bytes with the reason and source
     coordinates in headers, delivered before the task ends (``DeadLetters``);
  2. the valid events are filled with the partition's registers (the contract of ``fill.fill_columns``),
     read from and written back to the state files of ``state`` under the batch id, through Hadoop's
     FileSystem API (a local path here, HDFS or S3A on a cluster), so a replayed batch reads what its first
     attempt read;
  3. the filled rows come back in FILLED_SCHEMA for the enrichment SQL, with the batch id and the time the
     task ran as columns: as literals of the SQL they would change the generated code every batch, which
     Spark then compiled and the JIT optimised again (docs/performance.md).

It replaced a Python task (``mapInArrow``, now ``bench/python_fill.py``) that did the same with pandas:
the JVM operator saves the rows' trip to Python and back (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tickflow.errors import TickflowError
from tickflow.fill.semantics import FILL_FIELDS, NEVER
from tickflow.fill.state import VALUE_TYPES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TIMESTAMP = pa.timestamp("us", tz="UTC")
FILLED_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.string()),
        pa.field("event_time", TIMESTAMP),
        pa.field("event_count", pa.int32()),
        pa.field("ingest_time", TIMESTAMP),
        *(pa.field(name, VALUE_TYPES[name]) for name in FILL_FIELDS),
        *(pa.field(f"{name}_as_of", TIMESTAMP) for name in FILL_FIELDS),
        pa.field("batch_id", pa.int64()),
        pa.field("processed_time", TIMESTAMP),  # when the fill task ran
    ]
)


def spark_schema() -> Any:
    """FILLED_SCHEMA as a Spark StructType (for the enrichment SQL check)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(FILLED_SCHEMA)


def operators(spark: SparkSession) -> Any:
    """The JVM package of tickflow's stream operators, or one sentence saying how to build it."""
    from py4j.java_gateway import JavaClass

    package = spark._jvm.io.tickflow.stream  # type: ignore[union-attr]
    if not isinstance(package.fill.FillOperator, JavaClass):
        raise TickflowError(
            "The stream's JVM operators are not on this Spark session's classpath: build them with "
            "`mvn -f jvm/stream/pom.xml package -DskipTests` (make setup does) and start a new session."
        )
    return package


@dataclass
class FillCounters:
    """What the fill tasks count, as JVM accumulators the driver reads: filled rows, dead letters, and the
    newest ingest time filled (the input record's Kafka timestamp, µs)."""

    filled_acc: Any
    dlq_acc: Any
    newest_ingest_acc: Any

    @classmethod
    def create(cls, spark: SparkSession) -> FillCounters:
        context = spark.sparkContext._jsc.sc()
        newest = operators(spark).fill.MaxAccumulator()
        context.register(newest, "newest ingest time")
        return cls(context.longAccumulator("filled rows"), context.longAccumulator("dead letters"), newest)

    @property
    def filled(self) -> int:
        return int(self.filled_acc.value())

    @property
    def dlq(self) -> int:
        return int(self.dlq_acc.value())

    def output_age_s(self, now_s: float) -> float | None:
        """How old, at ``now_s``, the newest event filled is (from its input record's Kafka timestamp)."""
        newest = int(self.newest_ingest_acc.value())
        return None if newest == NEVER else max(0.0, now_s - newest / 1e6)


@dataclass(frozen=True)
class FillStep:
    """How micro-batch ``batch_id`` is filled: its state directory (a path or URI Hadoop's FileSystem reads),
    and where rejected records go. Without a ``dlq_topic`` they are only counted: a backfill re-reads records
    the stream already sent to the dead-letter topic, and must not send them again.

    ``dlq_producer`` is the dead-letter producer's Kafka settings (``kafka_auth.java_client_properties``).
    ``keep_versions``: each task prunes its partitions' state files to the newest that many (0: keeps all, as a
    backfill's scratch state does)."""

    state_dir: str
    batch_id: int
    input_topic: str
    dlq_topic: str | None
    dlq_producer: dict[str, str]
    counters: FillCounters
    keep_versions: int = 0

    def __call__(self, decoded: DataFrame) -> DataFrame:
        """The filled rows of ``decoded`` (``decode.decoded_events_jvm``). Lazy: the state is read and written,
        and dead letters sent, when the result is computed, once per action."""
        from pyspark.sql import DataFrame

        spark = decoded.sparkSession
        jdf = operators(spark).fill.FillOperator.fill(
            decoded._jdf,
            self.state_dir,
            self.batch_id,
            self.keep_versions,
            self.dlq_producer if self.dlq_topic else None,
            self.dlq_topic,
            self.input_topic,
            self.counters.filled_acc,
            self.counters.dlq_acc,
            self.counters.newest_ingest_acc,
        )
        return DataFrame(jdf, spark)
