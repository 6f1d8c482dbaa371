"""The one transform of the stream and the backfill: raw Kafka records -> enriched events.

    raw md.events records
      -> FillStep (fill_step, one JVM operator): decode and validate per writer schema, dead letters out,
         fill with the partition's registers (state)
      -> enrichment SQL (spark_apps/enrichment.sql) with the bound ``ref_instruments`` / ``ref_fx_rates``

What differs between the callers is only what they hand in: the stream a FillStep on its checkpoint's
state that sends dead letters to md.dlq and the current reference views; the backfill a FillStep on a
temporary state that only counts dead letters, and the SCD2 history (``tickflow.reference.views.reference_history``).
The result is EnrichedEvent rows before Avro; the stream frames them for md.enriched, the backfill
for md:history and JSON for the archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tickflow.errors import TickflowError
from tickflow.fill.semantics import FILL_FIELDS
from tickflow.schemas import TOPIC_SCHEMAS, load
from tickflow.settings import Settings
from tickflow.stream.decode import Limits, registered_writers
from tickflow.stream.settings import StreamSettings
from tickflow.topics import EVENTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from tickflow.stream.fill_step import FillStep


@dataclass(frozen=True)
class Transform:
    """What the transform needs besides the batch: the input's registry subject, the reader schema, the
    validation limits and the enrichment SQL. Built once per application (:meth:`build`)."""

    settings: Settings
    subject: str
    reader_schema: dict[str, Any]
    limits: Limits
    sql: str
    filled_schema: Any = field(default=None, compare=False)  # a StructType, set by build()

    @classmethod
    def build(cls, settings: Settings, stream: StreamSettings) -> Transform:
        from tickflow.stream.fill_step import spark_schema

        if not stream.enrichment_sql.exists():
            raise TickflowError(
                f"There is no enrichment SQL at {stream.enrichment_sql}: set TICKFLOW_STREAM_ENRICHMENT_SQL."
            )
        return cls(
            settings=settings,
            subject=f"{stream.input_topic}-value",
            reader_schema=load(TOPIC_SCHEMAS[EVENTS.name], settings.schemas_dir).definition,
            limits=Limits(max_future_us=int(stream.max_future_s * 1e6), crossed_tolerance=stream.crossed_tolerance),
            sql=stream.enrichment_sql.read_text(),
            filled_schema=spark_schema(),
        )

    def decoding(self, spark: SparkSession) -> Any:
        """The JVM ``Decoding`` of the input: the reader, the writer schemas registered under the subject now, the
        registry for one registered later, the fill fields and the limits."""
        import json

        from tickflow.stream.fill_step import operators

        decode = operators(spark).decode
        writers = registered_writers(self.settings, self.subject)
        registry = decode.RegistryWriters(
            self.settings.registry_url, self.subject, int(self.settings.registry_timeout_s * 1000)
        )
        return decode.Decoding(
            json.dumps(self.reader_schema),
            {int(writer_id): text for writer_id, text in writers.items()},
            registry,
            list(FILL_FIELDS),
            int(self.limits.max_future_us),
            float(self.limits.crossed_tolerance),
        )

    def enrich(self, raw: DataFrame, fill: FillStep) -> DataFrame:
        """Raw Kafka records (the Kafka source's columns; a stream or a batch) -> EnrichedEvent rows.

        Lazy: the fill runs (and writes its state) when the result is computed, once per action (per micro-batch
        in a streaming query), so a caller that needs the rows twice materialises them first."""
        from tickflow.stream.publish import enriched_events

        # One task per core, each over several Kafka partitions (a narrow coalesce, no shuffle): a task
        # carries a fixed cost (Avro set-up, the state files' open and list) that a task per partition paid
        # twelve times per batch.
        spark = raw.sparkSession
        tasks = spark.sparkContext.defaultParallelism
        return enriched_events(fill(raw.coalesce(tasks), self.decoding(spark)), self.sql)
