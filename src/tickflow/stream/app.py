"""The enrichment query: md.events -> decode and fill per partition -> enrich -> md.enriched, all in the JVM.

``build_query`` starts one Structured Streaming query, planned once, whose every micro-batch runs as a single
Spark job, one task per core over several Kafka partitions, no shuffle:

    Kafka source (md.events, at most max_offsets_per_trigger records)
      -> RecordFill: each writer schema registered under md.events-value resolved into the reader, validation,
                     dead letters -> md.dlq, fill with the partition's registers, state file per partition and
                     batch (Hadoop FileSystem)                                          (fill_step, state)
      -> enrichment SQL with the reference snapshot -> to_avro                          (publish)
      -> exactly-once Kafka sink (md.enriched, a transaction per task: stream.publish)

The first two steps are ``transform.Transform.enrich``, which the backfill runs too. Nothing calls back into
Python per batch: the driver's Python only watches. The reference tables are read when each batch is planned,
so a refresh shows at the next batch without a restart (``tickflow.reference.views.bind_current_reference``).

A poller writes the query's progress for supervisors and commits the processed offsets to a
Kafka consumer group, so standard lag tools see the app's lag (progress).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tickflow.errors import TickflowError
from tickflow.fill.state import FillState
from tickflow.kafka_auth import Principal, java_client_properties
from tickflow.runtime.scrape import metrics_login, metrics_password_file, register_target, unregister_target
from tickflow.settings import Settings
from tickflow.stream.fill_step import STREAMING_BATCH, FillCounters, FillStep
from tickflow.stream.settings import SPARK_APP_NAME, StreamSettings
from tickflow.stream.transform import Transform
from tickflow.topics import STREAM_COMMITS, create_topics

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

    from tickflow.stream.progress import ProgressReporter

log = logging.getLogger(__name__)


def spark_conf(stream: StreamSettings) -> dict[str, str]:
    """What the query needs on top of tickflow.spark's base configuration."""
    return {
        # The FileContext manager renames checkpoint files through Hadoop's local file system, which forks
        # a `readlink` per rename (~0.1 s per batch); a local rename is atomic without it.
        "spark.sql.streaming.checkpointFileManagerClass": (
            "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
        ),
        # No shuffle to adapt to: adaptive execution only adds a re-planning round per batch.
        "spark.sql.adaptive.enabled": "false",
    }


# Spark's own metrics for Prometheus (docs/operations.md): the driver's servlet, with the streaming query's source
# (input and processing rates, batch latency). Core settings, so for the session's builder and spark-submit only.
METRICS_CONF = {
    "spark.metrics.namespace": "tickflow",
    "spark.metrics.conf.*.sink.prometheusServlet.class": "org.apache.spark.metrics.sink.PrometheusServlet",
    "spark.metrics.conf.*.sink.prometheusServlet.path": "/metrics/prometheus",
    "spark.ui.prometheus.enabled": "true",
    "spark.sql.streaming.metricsEnabled": "true",
}


UI_LOGIN = "io.tickflow.stream.ui.BasicAuthFilter"


def session_conf(settings: Settings, stream: StreamSettings) -> dict[str, str]:
    """The stream's session: the query's settings and Spark's metrics, behind the metrics login in secured mode
    (the driver's UI serves them: jvm/stream's BasicAuthFilter)."""
    conf = {**spark_conf(stream), **METRICS_CONF}
    if settings.secured:
        user, _ = metrics_login(settings) or ("", "")
        conf |= {
            "spark.ui.filters": UI_LOGIN,
            f"spark.{UI_LOGIN}.param.user": user,
            f"spark.{UI_LOGIN}.param.passwordFile": str(metrics_password_file(settings)),
        }
    return conf


@dataclass
class Counters(FillCounters):
    """Totals across micro-batches: the fill tasks' accumulators, and the state's size (``instruments``)."""

    state: FillState | None = None
    counted: tuple[int, int] = field(default=(-1, 0))  # (filled rows, instruments) when the state was last counted

    @property
    def instruments(self) -> int:
        """Instruments in the fill state, counted again only after rows were filled (a new one needs one)."""
        filled = self.filled
        if self.state is not None and filled != self.counted[0]:
            try:
                self.counted = (filled, self.state.instrument_count())
            except OSError as error:  # the state's file system did not answer (HDFS's DataNode down): next time
                log.warning("fill state not counted: %s", error)
        return self.counted[1]


class EnrichmentQuery:
    """What the query is made of (the shared ``transform.Transform`` with the checkpoint's fill state, dead
    letters to md.dlq, the output schema and the current reference) and how to start it on the checkpoint."""

    def __init__(self, spark: SparkSession, settings: Settings, stream: StreamSettings) -> None:
        from tickflow.reference.views import bind_current_reference
        from tickflow.stream.publish import Publisher, check_enrichment_sql, register_output_schema

        self.spark = spark
        self.settings = settings
        self.stream = stream
        self.transform = Transform.build(settings, stream)
        if stream.exactly_once and stream.commits_topic == STREAM_COMMITS.name:
            create_topics(settings, (STREAM_COMMITS,))  # the platform's own, shared by every stream: made once
        state = FillState(stream.state_dir(settings))
        schema_id, schema_text = register_output_schema(settings, stream)
        self.publisher = Publisher(settings, stream, schema_id, schema_text)
        bind_current_reference(spark)
        check_enrichment_sql(spark, self.transform.sql, self.transform.filled_schema, self.publisher.columns)
        self.counters = Counters(**vars(FillCounters.create(spark)), state=state)
        self.fill = FillStep(
            state.directory.as_uri(),
            STREAMING_BATCH,
            stream.input_topic,
            stream.dlq_topic,
            java_client_properties(settings, Principal.STREAM),
            self.counters,
            keep_versions=stream.state_versions,
            hold_output=stream.exactly_once,
        )

    def start(self) -> StreamingQuery:
        """Start the query on the stream's checkpoint. A checkpoint a restore prepared
        (``tickflow.fill.snapshot.install_restore``) starts at the snapshot's offsets with its registers."""
        from tickflow.fill.snapshot import restored_starting_offsets
        from tickflow.spark import kafka_reader

        checkpoint = self.stream.checkpoint(self.settings)
        # Spark reads startingOffsets only while the checkpoint has no offset log; then the log rules.
        starting_offsets = (
            restored_starting_offsets(checkpoint, self.stream.input_topic) or self.stream.starting_offsets
        )
        raw = (
            kafka_reader(
                self.spark,
                self.settings,
                self.stream.input_topic,
                principal=Principal.STREAM,
                group_id_prefix=self.stream.consumer_group,
                streaming=True,
                starting_offsets=starting_offsets,
            )
            .option("maxOffsetsPerTrigger", self.stream.max_offsets_per_trigger)
            .option("failOnDataLoss", "true")
            .load()
        )
        checkpoint.parent.mkdir()
        return self.publisher.start(self.transform.enrich(raw, self.fill), checkpoint)


def stop_between_batches(query: StreamingQuery, timeout_s: float = 30.0) -> None:
    """Stop ``query``, waiting (up to ``timeout_s``) until no batch is running: a batch stopped half-way is run
    again at the next start, and its records already published would be published twice."""
    deadline = time.monotonic() + timeout_s
    while query.isActive and query._jsq.status().isTriggerActive() and time.monotonic() < deadline:
        time.sleep(0.01)
    query.stop()


def build_query(
    spark: SparkSession, settings: Settings, stream: StreamSettings
) -> tuple[StreamingQuery, EnrichmentQuery]:
    """Start the enrichment query (``EnrichmentQuery.start``); returns it and what it is made of."""
    for key, value in spark_conf(stream).items():
        spark.conf.set(key, value)
    enrichment = EnrichmentQuery(spark, settings, stream)
    return enrichment.start(), enrichment


def announce_metrics(spark: SparkSession, settings: Settings, stream: StreamSettings) -> Path | None:
    """Make the driver's metrics a Prometheus target (its UI's port is Spark's choice when 4040 is taken)."""
    url = spark.sparkContext.uiWebUrl
    if not url:
        return None
    return register_target(settings, "stream", urlsplit(url).netloc, {"query": stream.query_name})


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
    conf = session_conf(settings, stream)
    spark = spark_session(settings, SPARK_APP_NAME, extra=conf, java_options=stream.java_options)
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping the query", signum)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    reporter: ProgressReporter | None = None
    target: Path | None = None
    try:
        query, enrichment = build_query(spark, settings, stream)
        reporter = attach_progress(query, settings, stream, enrichment.counters, on_progress)
        target = announce_metrics(spark, settings, stream)
        while query.isActive and not stopping.is_set():
            query.awaitTermination(0.5)  # type: ignore[arg-type]  # seconds; a float works
        if query.isActive:
            stop_between_batches(query)
        failure = query.exception()
        if failure is not None:
            raise TickflowError(f"The enrichment query failed: {str(failure).splitlines()[0]}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if reporter is not None:
            reporter.close()
        if target is not None:
            unregister_target(target)
        spark.stop()
