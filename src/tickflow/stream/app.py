"""The enrichment query: md.events -> decode -> fill per partition -> enrich -> md.enriched, all in the JVM.

``build_query`` wires one Structured Streaming query whose foreachBatch runs each micro-batch
as a single Spark job, one task per Kafka partition, no shuffle:

    Kafka source (md.events, at most max_offsets_per_trigger records)
      -> DecodeOperator: each writer schema registered under md.events-value resolved into the reader,
                         validation, the reason of a rejected record      (decode.decoded_events_jvm)
      -> FillOperator:   dead letters -> md.dlq, fill with the partition's registers,
                         state file per partition and batch (Hadoop FileSystem)     (fill_step, state)
      -> enrichment SQL with the reference snapshot -> to_avro -> md.enriched           (publish)

The first three steps are ``transform.Transform.enrich``, which the backfill runs too.

A poller writes the query's progress for supervisors and commits the processed offsets to a
Kafka consumer group, so standard lag tools see the app's lag (progress).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tickflow.errors import TickflowError
from tickflow.fill.state import FillState
from tickflow.kafka_auth import Principal, java_client_properties
from tickflow.settings import Settings
from tickflow.stream.fill_step import FillCounters, FillStep
from tickflow.stream.settings import SPARK_APP_NAME, StreamSettings
from tickflow.stream.transform import Transform

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

    from tickflow.stream.progress import ProgressReporter

log = logging.getLogger(__name__)


def spark_conf(stream: StreamSettings) -> dict[str, str]:
    """What the query needs on top of tickflow.spark's base configuration."""
    return {
        # One Arrow batch per task in the common case: the fill needs a partition's events together anyway.
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(max(10_000, stream.max_offsets_per_trigger)),
        # The FileContext manager renames checkpoint files through Hadoop's local file system, which forks
        # a `readlink` per rename (~0.1 s per batch); a local rename is atomic without it.
        "spark.sql.streaming.checkpointFileManagerClass": (
            "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
        ),
        # No shuffle to adapt to: adaptive execution only adds a re-planning round per batch.
        "spark.sql.adaptive.enabled": "false",
    }


@dataclass
class Counters(FillCounters):
    """Totals across micro-batches: the fill tasks' accumulators, and the state's size."""

    instruments: int = 0


class EnrichmentBatch:
    """The foreachBatch function: one micro-batch of raw Kafka records, end to end (the shared
    ``transform.Transform`` with the checkpoint's fill state, dead letters to md.dlq, current reference)."""

    def __init__(self, spark: SparkSession, settings: Settings, stream: StreamSettings) -> None:
        from tickflow.stream.publish import Publisher, check_enrichment_sql, register_output_schema

        self.settings = settings
        self.stream = stream
        self.transform = Transform.build(settings, stream)
        self.state = FillState(stream.state_dir(settings))
        schema_id, schema_text = register_output_schema(settings, stream)
        self.publisher = Publisher(settings, stream, schema_id, schema_text)
        self.publisher.reference.refresh(spark)
        check_enrichment_sql(spark, self.transform.sql, self.transform.filled_schema, self.publisher.columns)
        self.dlq_login = java_client_properties(settings, Principal.STREAM)  # read once, not per micro-batch
        self.counters = Counters(**vars(FillCounters.create(spark)), instruments=self.state.instrument_count())

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        fill = FillStep(
            self.state.directory.as_uri(),
            batch_id,
            self.stream.input_topic,
            self.stream.dlq_topic,
            self.dlq_login,
            self.counters,
            keep_versions=self.stream.state_versions,
        )
        self.publisher.reference.refresh(raw.sparkSession)
        self.publisher.publish(self.transform.enrich(raw, fill))
        self.counters.instruments = self.state.instrument_count()


def build_query(
    spark: SparkSession,
    settings: Settings,
    stream: StreamSettings,
) -> tuple[StreamingQuery, EnrichmentBatch]:
    """Start the enrichment query on the stream's checkpoint. A checkpoint a restore prepared
    (``tickflow.fill.snapshot.install_restore``) starts at the snapshot's offsets with its registers."""
    from tickflow.fill.snapshot import restored_starting_offsets
    from tickflow.spark import kafka_reader

    for key, value in spark_conf(stream).items():
        spark.conf.set(key, value)
    checkpoint = stream.checkpoint(settings)
    # Spark reads startingOffsets only while the checkpoint has no offset log; then the log rules.
    starting_offsets = restored_starting_offsets(checkpoint, stream.input_topic) or stream.starting_offsets
    batch = EnrichmentBatch(spark, settings, stream)
    raw = (
        kafka_reader(
            spark,
            settings,
            stream.input_topic,
            principal=Principal.STREAM,
            group_id_prefix=stream.consumer_group,
            streaming=True,
            starting_offsets=starting_offsets,
        )
        .option("maxOffsetsPerTrigger", stream.max_offsets_per_trigger)
        .option("failOnDataLoss", "true")
        .load()
    )
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    query = (
        raw.writeStream.queryName(stream.query_name)
        .foreachBatch(batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=stream.trigger_interval)
        .start()
    )
    return query, batch


def run_stream(
    settings: Settings,
    stream: StreamSettings,
    on_progress: Any = None,
) -> None:
    """Run the enrichment app until SIGTERM/SIGINT or a failure; stops the query cleanly.

    ``on_progress(progress, counters)`` is called for every new batch (the CLI prints a line)."""
    import signal
    import threading

    from tickflow.spark import spark_session
    from tickflow.stream.progress import attach_progress
    from tickflow.topics import require_topics

    # One sentence now rather than a JVM trace from the Kafka source a minute into the Spark start.
    require_topics(settings, (stream.input_topic, stream.output_topic, stream.dlq_topic))
    spark = spark_session(settings, SPARK_APP_NAME, extra=spark_conf(stream), java_options=stream.java_options)
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping the query", signum)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    reporter: ProgressReporter | None = None
    try:
        query, batch = build_query(spark, settings, stream)
        reporter = attach_progress(query, settings, stream, batch.counters, on_progress)
        while query.isActive and not stopping.is_set():
            query.awaitTermination(0.5)  # type: ignore[arg-type]  # seconds; a float works
        if query.isActive:
            query.stop()
        failure = query.exception()
        if failure is not None:
            raise TickflowError(f"The enrichment query failed: {str(failure).splitlines()[0]}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if reporter is not None:
            reporter.close()
        spark.stop()
