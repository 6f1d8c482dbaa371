"""The one transform of the stream and the backfill: raw Kafka records -> enriched events.

    raw md.events records
      -> decode and validate per writer schema (decode.decoded_events_jvm, a JVM operator)
      -> FillStep: dead letters out, fill with the partition's registers (fill_step, a JVM operator, state)
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
from tickflow.schemas import TOPIC_SCHEMAS, load
from tickflow.settings import Settings
from tickflow.stream.decode import Limits, decoded_events_jvm, registered_writers
from tickflow.stream.settings import StreamSettings
from tickflow.topics import EVENTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

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

    def enrich(self, raw: DataFrame, fill: FillStep) -> DataFrame:
        """Raw Kafka records (the Kafka source's columns) -> EnrichedEvent rows, batch id ``fill.batch_id``.

        Lazy: the fill runs (and writes its state) when the result is computed, once per action, so a caller
        that needs the rows twice materialises them first."""
        from tickflow.stream.publish import enriched_events

        # Read after the caller fixed the batch's offsets: every schema id in it is registered by now.
        writers = registered_writers(self.settings, self.subject)
        # One task per core, each over several Kafka partitions (a narrow coalesce, no shuffle): a task
        # carries a fixed cost (Avro set-up, the state files' open and list) that a task per partition paid
        # twelve times per batch.
        tasks = raw.sparkSession.sparkContext.defaultParallelism
        events = decoded_events_jvm(raw.coalesce(tasks), self.reader_schema, writers, self.limits)
        return enriched_events(fill(events), self.sql)
