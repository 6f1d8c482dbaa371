"""The enrichment query: md.events -> decode/validate/fill (state store) -> SQL enrichment -> md.enriched.

``build_query`` wires one Structured Streaming query:

    Kafka source (md.events)
      -> from_avro per registered writer schema       decode in the JVM into the latest reader schema
      -> groupBy(bucket of instrument id)
         .transformWithStateInPandas(ForwardFill)     validate, fill; state per instrument in RocksDB
      -> foreachBatch(publish)                         per micro-batch:
           dlq rows    -> md.dlq (original bytes; reason, topic, partition, offset in headers)
           filled rows -> view `filled_events` -> enrichment SQL (Hive ref views) -> Avro -> md.enriched

A listener writes the query's progress where a supervisor reads it and commits the
processed offsets to a Kafka consumer group, so standard lag tools see the app's lag.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickflow.avro_codec import confluent_prefix
from tickflow.errors import TickflowError
from tickflow.schemas import TOPIC_SCHEMAS, load
from tickflow.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

log = logging.getLogger(__name__)


class StreamSettings(BaseSettings):
    """Everything the enrichment app can be told (environment prefix ``TICKFLOW_STREAM_``)."""

    model_config = SettingsConfigDict(env_prefix="TICKFLOW_STREAM_", extra="ignore", frozen=True)

    trigger_interval: str = Field(
        default="500 milliseconds", description="Micro-batch trigger; the seed's '10 seconds' is a valid choice."
    )
    max_offsets_per_trigger: int = Field(default=1_000_000, description="Cap on records per micro-batch.")
    input_topic: str = "md.events"
    output_topic: str = "md.enriched"
    dlq_topic: str = "md.dlq"
    starting_offsets: str = "earliest"
    consumer_group: str = Field(default="tickflow-enrichment", description="Offsets are committed here for lag tools.")
    checkpoint_dir: Path | None = Field(default=None, description="Default: <state>/stream/checkpoint.")
    progress_file: Path | None = Field(default=None, description="Default: <state>/stream/progress.json.")
    enrichment_sql: Path = REPO_ROOT / "spark_apps" / "enrichment.sql"
    max_future_s: float = Field(default=60.0, description="Events further in the future go to the DLQ.")
    crossed_tolerance: float = Field(default=0.0, description="Bid above ask by more than this fraction -> DLQ.")
    state_partitions: int = Field(
        default=2, description="State store partitions (one per core is fastest here); fixed once a checkpoint exists."
    )
    fill_buckets: int = Field(
        default=16, description="Instrument buckets the fill groups by; fixed once a checkpoint exists."
    )
    query_name: str = "tickflow_enrichment"

    def checkpoint(self, settings: Settings) -> Path:
        return self.checkpoint_dir or settings.root / "stream" / "checkpoint"

    def progress(self, settings: Settings) -> Path:
        return self.progress_file or settings.root / "stream" / "progress.json"


def spark_conf(stream: StreamSettings) -> dict[str, str]:
    """What the query needs on top of tickflow.spark's base configuration."""
    return {
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        "spark.sql.shuffle.partitions": str(stream.state_partitions),
        "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    }


def register_output_schema(settings: Settings, stream: StreamSettings) -> tuple[int, str]:
    """Register EnrichedEvent under the output topic's subject; returns (schema id, schema text)."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    schema = load(TOPIC_SCHEMAS["md.enriched"], settings.schemas_dir)
    try:
        client = SchemaRegistryClient({"url": settings.registry_url})
        schema_id = client.register_schema(f"{stream.output_topic}-value", Schema(schema.text, "AVRO"))
    except Exception as error:
        raise TickflowError(
            f"The schema registry at {settings.registry_url} did not take {schema.full_name} ({error}): "
            "start the stack with `tickflow stack up`."
        ) from error
    return int(schema_id), schema.text


def check_enrichment_sql(spark: SparkSession, sql: str, expected_columns: list[str]) -> None:
    """Analyse the enrichment SQL against an empty batch, so a broken query fails at start-up."""
    from pyspark.sql import functions as F

    from tickflow.stream.processor import OUTPUT_SCHEMA

    empty = spark.createDataFrame([], OUTPUT_SCHEMA).withColumn("batch_id", F.lit(0).cast("long"))
    empty.createOrReplaceTempView("filled_events")
    try:
        columns = spark.sql(sql).columns
    except Exception as error:
        raise TickflowError(f"The enrichment SQL does not run: {str(error).splitlines()[0]}") from error
    if columns != expected_columns:
        missing = [c for c in expected_columns if c not in columns]
        extra = [c for c in columns if c not in expected_columns]
        raise TickflowError(
            "The enrichment SQL must return the columns of EnrichedEvent in order "
            f"(missing: {missing or 'none'}; unexpected: {extra or 'none'}; order as in the schema file)."
        )


@dataclass
class Counters:
    """Totals the publisher keeps for the progress file."""

    dlq: int = 0
    filled: int = 0


class Publisher:
    """The foreachBatch function: DLQ rows and enriched rows to their topics."""

    def __init__(
        self, settings: Settings, stream: StreamSettings, schema_id: int, schema_text: str, sql: str, samples: int = 0
    ) -> None:
        self.samples = samples
        self.last_samples: list[dict[str, Any]] = []
        self.settings = settings
        self.stream = stream
        self.prefix = confluent_prefix(schema_id)
        self.schema_text = schema_text
        self.columns = [f["name"] for f in json.loads(schema_text)["fields"]]
        self.sql = sql
        self.counters = Counters()

    def _kafka(self, frame: DataFrame, topic: str) -> None:
        (
            frame.write.format("kafka")
            .option("kafka.bootstrap.servers", self.settings.bootstrap_servers)
            .option("kafka.linger.ms", "5")
            .option("kafka.compression.type", "lz4")
            .option("topic", topic)
            .save()
        )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F
        from pyspark.sql.avro.functions import to_avro

        spark = batch.sparkSession
        batch = batch.persist()
        try:
            kinds = {row["kind"]: row["count"] for row in batch.groupBy("kind").count().collect()}
            if kinds.get("dlq"):
                dlq = batch.where("kind = 'dlq'").select(
                    F.col("dlq_key").cast("binary").alias("key"),
                    F.col("dlq_value").alias("value"),
                    F.array(
                        *(
                            F.struct(
                                F.lit(name).alias("key"), F.col(column).cast("string").cast("binary").alias("value")
                            )
                            for name, column in (
                                ("reason", "dlq_reason"),
                                ("source.topic", "dlq_topic"),
                                ("source.partition", "dlq_partition"),
                                ("source.offset", "dlq_offset"),
                            )
                        )
                    ).alias("headers"),
                )
                self._kafka(dlq, self.stream.dlq_topic)
            if kinds.get("filled"):
                batch.where("kind = 'filled'").withColumn(
                    "batch_id", F.lit(batch_id).cast("long")
                ).createOrReplaceTempView("filled_events")
                enriched = spark.sql(self.sql)
                record = F.struct(*(F.col(c) for c in self.columns))
                out = enriched.select(
                    F.col("instrument_id").cast("binary").alias("key"),
                    F.concat(F.lit(self.prefix), to_avro(record, self.schema_text)).alias("value"),
                )
                self._kafka(out, self.stream.output_topic)
                if self.samples:  # for people watching the demo; one small extra job per batch
                    self.last_samples = [row.asDict() for row in enriched.limit(self.samples).collect()]
        finally:
            batch.unpersist()
        self.counters.dlq += kinds.get("dlq", 0)
        self.counters.filled += kinds.get("filled", 0)


def registered_writers(settings: Settings, subject: str) -> dict[int, str]:
    """Every schema registered under ``subject``, by id (empty when the subject does not exist yet)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = SchemaRegistryClient({"url": settings.registry_url})
    try:
        versions = client.get_versions(subject)
    except SchemaRegistryError as error:
        if error.http_status_code == 404:
            return {}
        raise
    registered = (client.get_version(subject, version) for version in versions)
    return {int(r.schema_id or 0): str(r.schema.schema_str) for r in registered}


def bucket(column: Column, buckets: int) -> Column:
    """The fill's grouping key for an instrument id: a stable hash bucket."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(column), F.lit(buckets))


def decoded_events(raw: DataFrame, reader: dict[str, Any], writers: dict[int, str], buckets: int) -> DataFrame:
    """Kafka records -> the processor's input: coordinates, ``decoded`` and the reader schema's fields.

    ``from_avro`` with the writer schema of the record's id and ``avroSchema`` = the reader resolves
    every known version into the latest schema, in the JVM. PERMISSIVE mode turns bad bytes into a
    null, so they and unknown ids arrive with ``decoded = false`` and the processor sorts them out.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    reader_text = json.dumps(reader)
    framed = (F.length("value") >= 6) & (F.substring("value", 1, 1) == F.lit(b"\x00"))
    schema_id = F.conv(F.hex(F.substring("value", 2, 4)), 16, 10).cast("long")
    body = F.expr("substring(value, 6)")
    event = F.lit(None)
    for writer_id, writer in writers.items():
        decode = from_avro(body, writer, {"mode": "PERMISSIVE", "avroSchema": reader_text})
        event = F.when(framed & (schema_id == writer_id), decode).otherwise(event)
    if not writers:
        event = from_avro(F.lit(None).cast("binary"), reader_text)  # typed nulls: everything decodes in Python
    key = F.coalesce(F.col("key").cast("string"), F.lit(""))
    fields = [f["name"] for f in reader["fields"]]
    return raw.select(
        key.alias("kafka_key"),
        "value",
        "topic",
        "partition",
        "offset",
        F.unix_micros("timestamp").alias("ingest_time"),
        bucket(key, buckets).alias("bucket"),
        event.alias("event"),
    ).select(
        *(c for c in ("kafka_key", "value", "topic", "partition", "offset", "ingest_time", "bucket")),
        F.col("event").isNotNull().alias("decoded"),
        *(
            F.unix_micros(F.col("event.event_time")).alias(name) if name == "event_time" else F.col(f"event.{name}")
            for name in fields
        ),
    )


def build_query(
    spark: SparkSession,
    settings: Settings,
    stream: StreamSettings,
    initial_state: DataFrame | None = None,
    samples: int = 0,
) -> tuple[StreamingQuery, Publisher]:
    """Start the enrichment query. ``initial_state`` (instrument_id + STATE_SCHEMA columns)
    seeds the state store when the checkpoint is new, e.g. from an exported snapshot."""
    from pyspark.sql import functions as F

    from tickflow.spark import kafka_reader
    from tickflow.stream.decode import Limits
    from tickflow.stream.processor import OUTPUT_SCHEMA, ForwardFill

    for key, value in spark_conf(stream).items():
        if key != "spark.sql.streaming.stateStore.providerClass":  # must be set before the session starts
            spark.conf.set(key, value)
    if not stream.enrichment_sql.exists():
        raise TickflowError(
            f"There is no enrichment SQL at {stream.enrichment_sql}: set TICKFLOW_STREAM_ENRICHMENT_SQL."
        )
    sql = stream.enrichment_sql.read_text()
    schema_id, schema_text = register_output_schema(settings, stream)
    publisher = Publisher(settings, stream, schema_id, schema_text, sql, samples)
    check_enrichment_sql(spark, sql, publisher.columns)

    reader_schema = load(TOPIC_SCHEMAS["md.events"], settings.schemas_dir).definition
    processor = ForwardFill(
        reader_schema,
        settings.registry_url,
        Limits(max_future_us=int(stream.max_future_s * 1e6), crossed_tolerance=stream.crossed_tolerance),
    )
    raw = (
        kafka_reader(spark, settings, stream.input_topic, streaming=True, starting_offsets=stream.starting_offsets)
        .option("maxOffsetsPerTrigger", stream.max_offsets_per_trigger)
        .option("failOnDataLoss", "true")
        .load()
    )
    writers = registered_writers(settings, f"{stream.input_topic}-value")
    if not writers:
        log.warning("no schema under %s-value yet: every record is decoded in Python", stream.input_topic)
    events = decoded_events(raw, reader_schema, writers, stream.fill_buckets)
    grouped_initial = (
        initial_state.withColumn("bucket", bucket(F.col("instrument_id"), stream.fill_buckets)).groupBy("bucket")
        if initial_state is not None
        else None
    )
    filled = events.groupBy("bucket").transformWithStateInPandas(
        statefulProcessor=processor,
        outputStructType=OUTPUT_SCHEMA,
        outputMode="Append",
        timeMode="None",
        initialState=grouped_initial,
    )
    checkpoint = stream.checkpoint(settings)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    query = (
        filled.writeStream.queryName(stream.query_name)
        .foreachBatch(publisher)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=stream.trigger_interval)
        .start()
    )
    return query, publisher


class ProgressReporter:
    """Writes each batch's progress to a JSON file and commits its end offsets to the consumer group."""

    def __init__(self, settings: Settings, stream: StreamSettings, publisher: Publisher) -> None:
        from confluent_kafka import Consumer

        self.listener: Any = None  # set by attach_progress; pass it to spark.streams.removeListener
        self.path = stream.progress(settings)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.publisher = publisher
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": stream.consumer_group,
                "enable.auto.commit": False,
            }
        )

    def report(self, progress: dict[str, Any]) -> dict[str, Any]:
        from confluent_kafka import TopicPartition

        state_rows = sum(op.get("numRowsTotal", 0) for op in progress.get("stateOperators", []))
        source = (progress.get("sources") or [{}])[0]
        end_offsets = source.get("endOffset")
        if isinstance(end_offsets, str):
            end_offsets = json.loads(end_offsets)
        if end_offsets:
            partitions = [
                TopicPartition(topic, int(partition), int(offset))
                for topic, offsets in end_offsets.items()
                for partition, offset in offsets.items()
            ]
            try:
                self.consumer.commit(offsets=partitions, asynchronous=False)
            except Exception as error:  # noqa: BLE001 - lag reporting must never stop the stream
                log.warning("committing offsets for lag tools failed: %s", error)
        health = {
            "written_at": time.time(),
            "query": progress.get("name"),
            "run_id": progress.get("runId"),
            "batch_id": progress.get("batchId"),
            "batch_timestamp": progress.get("timestamp"),
            "num_input_rows": progress.get("numInputRows"),
            "input_rows_per_second": progress.get("inputRowsPerSecond"),
            "processed_rows_per_second": progress.get("processedRowsPerSecond"),
            "batch_duration_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
            "state_rows": state_rows,
            "dlq_total": self.publisher.counters.dlq,
            "filled_total": self.publisher.counters.filled,
            "end_offsets": end_offsets,
        }
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(health, indent=2))
        partial.replace(self.path)
        return health


def attach_progress(
    spark: SparkSession, settings: Settings, stream: StreamSettings, publisher: Publisher
) -> ProgressReporter:
    """Register a listener that reports every batch of this session's queries."""
    from pyspark.sql.streaming.listener import StreamingQueryListener

    reporter = ProgressReporter(settings, stream, publisher)

    class Listener(StreamingQueryListener):
        def onQueryStarted(self, event: Any) -> None:
            pass

        def onQueryProgress(self, event: Any) -> None:
            reporter.report(json.loads(event.progress.json))

        def onQueryIdle(self, event: Any) -> None:
            pass

        def onQueryTerminated(self, event: Any) -> None:
            pass

    reporter.listener = Listener()
    spark.streams.addListener(reporter.listener)
    return reporter


def run_stream(
    settings: Settings,
    stream: StreamSettings,
    on_progress: Any = None,
    restore_snapshot: str | None = None,
    samples: int = 0,
) -> None:
    """Run the enrichment app until SIGTERM/SIGINT or a failure; stops the query cleanly."""
    import signal
    import threading

    from tickflow.spark import spark_session

    spark = spark_session(settings, "tickflow-enrichment", extra=spark_conf(stream))
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping the query after the current batch", signum)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        from tickflow.stream.snapshot import snapshot_state

        initial = snapshot_state(spark, restore_snapshot) if restore_snapshot else None
        query, publisher = build_query(spark, settings, stream, initial, samples)
        reporter = attach_progress(spark, settings, stream, publisher)
        while query.isActive and not stopping.is_set():
            query.awaitTermination(1)
            if on_progress and query.lastProgress:
                on_progress(query.lastProgress, reporter)
        if query.isActive:
            query.stop()
        failure = query.exception()
        if failure is not None:
            raise TickflowError(f"The enrichment query failed: {str(failure).splitlines()[0]}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        spark.stop()
