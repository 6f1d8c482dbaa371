"""The stream's transform up to the enrichment SQL in the JVM: Kafka records -> filled rows, no shuffle.

``io.tickflow.stream.fill.RecordFill`` (``jvm/stream``, a ``mapPartitions`` of the Dataset API, so it is part of
a streaming query's plan) runs in each task:

  1. decode and validate each record (``EventDecoder``: each writer schema registered under the input's subject
     resolved into the reader; an id registered after the query was planned is read from the registry);
  2. the rejected records go to the dead-letter topic, original key and bytes with the reason and source
     coordinates in headers, delivered before the task ends (``DeadLetters``), or in the transaction of the
     task's exactly-once sink;
  3. the valid events are filled per Kafka partition (all events of an instrument arrive on one partition,
     key = instrument id) with the partition's registers (the contract of ``fill.fill_columns``), read from
     and written back to the state files of ``state`` under the batch id, through Hadoop's FileSystem API (a
     local path here, HDFS or S3A on a cluster), so a replayed batch reads what its first attempt read;
  4. the filled rows come back in FILLED_SCHEMA for the enrichment SQL, with the batch id and the time the task
     ran as columns: as literals of the SQL they would change the generated code every batch.

The micro-batch id is the one Spark gives the batch's tasks; the backfill passes its chunk's number.
It replaced a foreachBatch that built the same steps again for every micro-batch (docs/performance.md).
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
    if not isinstance(package.fill.RecordFill, JavaClass):
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


STREAMING_BATCH = -1  # FillStep.batch_id of a streaming query: the micro-batch id Spark gives the tasks


@dataclass(frozen=True)
class FillStep:
    """How records are filled: the state directory (a path or URI Hadoop's FileSystem reads), the batch id the
    registers are written under (STREAMING_BATCH: the micro-batch's own), and where rejected records go. Without a
    ``dlq_topic`` they are only counted: a backfill re-reads records the stream already sent to the dead-letter
    topic, and must not send them again.

    ``dlq_producer`` is the dead-letter producer's Kafka settings (``kafka_auth.java_client_properties``).
    ``keep_versions``: each task prunes its partitions' state files to the newest that many (0: keeps all, as a
    backfill's scratch state does). ``hold_output``: the task's dead letters (and where its rows came from) go to the
    same task's exactly-once sink (``stream.publish``), which sends them in its transaction."""

    state_dir: str
    batch_id: int
    input_topic: str
    dlq_topic: str | None
    dlq_producer: dict[str, str]
    counters: FillCounters
    keep_versions: int = 0
    hold_output: bool = False

    def __call__(self, records: DataFrame, decoding: Any) -> DataFrame:
        """The filled rows of ``records`` (the Kafka source's columns), decoded by ``decoding``
        (``transform.Transform.decoding``). Lazy: the state is read and written, and dead letters sent, when the
        result is computed, once per action (per micro-batch in a streaming query)."""
        from pyspark.sql import DataFrame

        spark = records.sparkSession
        jdf = operators(spark).fill.RecordFill.filled(
            records._jdf,
            decoding,
            self.state_dir,
            self.batch_id,
            self.keep_versions,
            self.dlq_producer if self.dlq_topic else None,
            self.dlq_topic,
            self.hold_output,
            self.input_topic,
            self.counters.filled_acc,
            self.counters.dlq_acc,
            self.counters.newest_ingest_acc,
        )
        return DataFrame(jdf, spark)
