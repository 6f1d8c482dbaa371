"""What the enrichment stream can be told (``TICKFLOW_STREAM_*``); no pyspark here, so the
stream's control and health code (and Airflow, which parses DAGs with it) import it cheaply."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickflow.settings import REPO_ROOT, Settings
from tickflow.topics import DLQ, ENRICHED, EVENTS, STREAM_COMMITS

if TYPE_CHECKING:
    from tickflow.runtime.location import Location

SPARK_APP_NAME = "tickflow-enrichment"  # the Spark application, and the consumer group lag tools read


class StreamSettings(BaseSettings):
    """Everything the enrichment app can be told (environment prefix ``TICKFLOW_STREAM_``)."""

    model_config = SettingsConfigDict(env_prefix="TICKFLOW_STREAM_", extra="ignore", frozen=True)

    trigger_interval: str = Field(
        default="250 milliseconds", description="Micro-batch trigger; the seed's '10 seconds' is a valid choice."
    )
    max_offsets_per_trigger: int = Field(
        default=250_000,
        gt=0,
        description="Cap on records per micro-batch: a backlog drains in batches of a few seconds, each reported "
        "(a batch has a fixed cost of ~0.4 s: 250k drains a backlog ~30% faster than 100k; docs/performance.md).",
    )
    input_topic: str = EVENTS.name
    output_topic: str = ENRICHED.name
    dlq_topic: str = DLQ.name
    exactly_once: bool = Field(
        default=True,
        description="Publish each micro-batch in Kafka transactions (one per task, with its dead letters and a "
        "marker of the batch id), so a read_committed reader sees every record once; false: Spark's Kafka sink, "
        "at-least-once (docs/reliability.md).",
    )
    commits_topic: str = Field(
        default=STREAM_COMMITS.name, description="Where the exactly-once sink marks the batches it committed."
    )
    starting_offsets: str = "earliest"
    consumer_group: str = Field(default=SPARK_APP_NAME, description="Offsets are committed here for lag tools.")
    checkpoint_dir: str | Path | None = Field(
        default=None,
        description="A local directory or an hdfs:// URI. Default: <state>/stream/checkpoint, or "
        "/tickflow/stream/checkpoint on the cluster profile's HDFS.",
    )
    progress_file: Path | None = Field(default=None, description="Default: <state>/stream/progress.json.")
    enrichment_sql: Path = REPO_ROOT / "spark_apps" / "enrichment.sql"
    max_future_s: float = Field(default=60.0, ge=0, description="Events further in the future go to the DLQ.")
    crossed_tolerance: float = Field(default=0.0, ge=0, description="Bid above ask by more than this fraction -> DLQ.")
    state_versions: int = Field(
        default=5,
        ge=2,
        description="Fill-state files kept per input partition (newest first; the fill tasks prune them). At "
        "least 2: a replayed batch reads the file before it.",
    )
    java_options: str = Field(
        default="-XX:-DontCompileHugeMethods",
        description="JVM options of the stream app's driver. The JVM's full tiered JIT, which a long-running "
        "query's throughput needs (C1 only, as short-lived apps use, makes the stream slower once warm), and "
        "allowed to compile methods over 8,000 bytes: Spark's generated code for the fill's ~50 output columns "
        "is one, and ran interpreted otherwise (docs/performance.md).",
    )
    producer_batch_bytes: int = Field(
        default=512 * 1024, ge=0, description="Kafka producer batch.size for md.enriched."
    )
    producer_linger_ms: int = Field(default=20, ge=0, description="Kafka producer linger.ms for md.enriched.")
    query_name: str = "tickflow_enrichment"
    stall_after_s: float = Field(
        default=120.0,
        gt=0,
        description="The longest time without a micro-batch while input waits: longer, and the stream is stalled. "
        "The health check's limit and, exported by tickflow-exporter, the TickflowStreamNoBatch alert's threshold.",
    )

    def checkpoint(self, settings: Settings) -> Location:
        from tickflow.runtime.location import Location  # pyarrow: not for every importer (DAG parsing)

        if self.checkpoint_dir is not None:
            return Location.of(self.checkpoint_dir, settings)
        if settings.hdfs_uri:  # the cluster profile: executors on other hosts read and write it
            return Location.of(f"{settings.hdfs_uri}/tickflow/stream/checkpoint", settings)
        return Location.of(settings.root / "stream" / "checkpoint", settings)

    def progress(self, settings: Settings) -> Path:
        return self.progress_file or settings.root / "stream" / "progress.json"

    def state_dir(self, settings: Settings) -> Location:
        """The fill state lives inside the checkpoint: deleting one deletes both."""
        return self.checkpoint(settings) / "fill-state"
