"""Run a backfill: md.events by offsets -> the stream's transform (as of event time) -> md:history / archive.

Per chunk of offsets (``plan``), one Spark job: the Kafka records of the chosen instruments (by message
key, which the transform requires to be the instrument id anyway) go through
``tickflow.stream.transform.Transform.enrich`` exactly as a micro-batch of the stream does, with

- a ``FillStep`` whose state lives in a temporary directory (never the stream's checkpoint), and which
  only counts rejected records: the stream already sent them to md.dlq. Its registers start from the
  newest state snapshot taken before the range (``plan.choose_snapshot``, the requested instruments'
  registers from ``ops.state_snapshots``), and the read from the snapshot's input offsets; without one
  that fits, from empty registers and the earliest retained offsets;
- ``ref_instruments`` / ``ref_fx_rates`` bound to the SCD2 history (``tickflow.reference.views.reference_history``), so
  the enrichment SQL joins each event with the attributes valid at its event time.

The enriched rows with event times in ``[start, end)`` are staged once as Parquet (so the fill runs once
per chunk) and written from there:

- **hbase**: one ``md:history`` cell per record, the framed Avro the sink stores (EnrichedEvent's
  registered id), at the event time. Puts of the same record replace the same cell. md:latest, the live
  view, is not touched.
- **check**: nothing is written; the rows are compared with what the live stream published on md.enriched for
  the same range (``replay_check``: field by field, legitimate differences apart), one row to
  ``ops.replay_checks``, and the run fails in one sentence when a difference is not explained.
- **archive**: ``md.enriched_archive`` partitions of the affected dates are rewritten once at the end
  (dynamic partition overwrite) with their rows outside (instruments x range) kept and the backfilled
  rows replacing the rest (``BackfillRequest.replaces``), so running the same backfill twice leaves the
  same rows.

Records carry processing metadata of the backfill: ``processed_time`` is when it ran and ``batch_id`` the
chunk number; everything else is a function of the input and the reference history.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tickflow.backfill.plan import (
    Chunk,
    PartitionRange,
    choose_snapshot,
    describe,
    has_data,
    offsets_json,
    partition_ranges,
    plan_chunks,
    warm_from,
)
from tickflow.backfill.replay_check import ReplayCheck
from tickflow.backfill.request import BackfillRequest, BackfillSettings, InvalidBackfill, Target
from tickflow.errors import TickflowError
from tickflow.kafka_auth import BACKFILL_GROUPS, Principal
from tickflow.runtime.location import Location
from tickflow.runtime.location import scratch as scratch_location
from tickflow.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from tickflow.fill.semantics import InstrumentState

log = logging.getLogger(__name__)

ARCHIVE = "md.enriched_archive"
JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}  # event times are µs


@dataclass(frozen=True)
class BackfillReport:
    records_read: int  # Kafka records read (warm-up included)
    rows_written: int  # enriched records in the range, written to each target (compared, for a check)
    rejected: int  # records the stream's validation rejects (counted, not sent to md.dlq again)
    chunks: int
    seconds: float
    check: ReplayCheck | None = None  # target=check: what the comparison with the live topic found

    def summary(self) -> str:
        rate = self.records_read / self.seconds if self.seconds else 0.0
        done = (
            f"{self.records_read:,} records read, {self.rows_written:,} rows written, {self.rejected:,} rejected "
            f"(not sent to the DLQ again), {self.chunks} chunks in {self.seconds:.1f}s ({rate:,.0f} records/s)"
        )
        return f"{done}; {self.check.line()}" if self.check else done


class ReplayDiffers(TickflowError):
    """target=check found differences between the live output and the replay that nothing legitimate explains."""


def check_instruments(spark: SparkSession, request: BackfillRequest) -> None:
    """Every requested id must be in the SCD2 history: a typo would otherwise backfill nothing, silently."""
    from pyspark.sql import functions as F

    if not request.instruments:
        return
    history = spark.table("ref.instruments_history").where(F.col("instrument_id").isin(list(request.instruments)))
    known = {row[0] for row in history.select("instrument_id").distinct().collect()}
    missing = [i for i in request.instruments if i not in known]
    if missing:
        names = ", ".join(missing)
        raise InvalidBackfill(
            f"{'Instrument' if len(missing) == 1 else 'Instruments'} {names} "
            f"{'is' if len(missing) == 1 else 'are'} not in the reference data (ref.instruments_history): "
            "check the ids (MIC:symbol, as the events' keys)."
        )


def archive_replaced(request: BackfillRequest) -> Column:
    """``BackfillRequest.replaces`` as a Spark column over archive rows."""
    from pyspark.sql import functions as F

    start_us, end_us = (int(t.timestamp() * 1_000_000) for t in (request.start, request.end))
    micros = F.unix_micros("event_time")
    in_range = (micros >= start_us) & (micros < end_us)
    return in_range & F.col("instrument_id").isin(list(request.instruments)) if request.instruments else in_range


@dataclass(frozen=True)
class HistoryWriter:
    """foreachPartition: a partition's staged rows to md:history through the Thrift server."""

    settings: Settings

    def __call__(self, rows: Iterable[Any]) -> None:
        from tickflow.hbase.store import MarketDataStore

        records = [(row.instrument_id, int(row.event_us), bytes(row.value)) for row in rows]
        if records:
            MarketDataStore(self.settings, pool_size=1).write_history(records)


def _selected(enriched: DataFrame, request: BackfillRequest, schema_id: int, schema_text: str) -> DataFrame:
    """The rows to write, with what each target needs: framed value, JSON record, event date."""
    from pyspark.sql import functions as F

    from tickflow.stream.publish import framed_value

    start_us, end_us = (int(t.timestamp() * 1_000_000) for t in (request.start, request.end))
    micros = F.unix_micros("event_time")
    record = F.to_json(F.struct(*(F.col(c) for c in enriched.columns)), JSON_OPTIONS)
    return enriched.where((micros >= start_us) & (micros < end_us)).select(
        "instrument_id",
        "event_time",
        micros.alias("event_us"),
        record.alias("record_json"),
        F.to_date("event_time").alias("event_date"),
        framed_value(schema_id, schema_text).alias("value"),
    )


def write_archive(spark: SparkSession, request: BackfillRequest, staged: DataFrame, scratch: Location) -> None:
    """Rewrite the affected date partitions: kept rows plus the backfilled ones (module docstring)."""
    from pyspark.sql import functions as F

    dates = request.affected_dates()
    existing = spark.table(ARCHIVE).where(F.col("event_date").isin(dates))
    merged = existing.where(~archive_replaced(request)).unionByName(
        staged.select("instrument_id", "event_time", "record_json", "event_date")
    )
    # Materialised first: Spark refuses to overwrite a table in the query that reads it.
    merged.write.mode("overwrite").parquet((scratch / "archive").as_uri())
    result = spark.read.parquet((scratch / "archive").as_uri())
    present = {row[0] for row in result.select("event_date").distinct().collect()}
    previous = spark.conf.get("spark.sql.sources.partitionOverwriteMode")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")  # only the partitions written
    try:
        result.select(*spark.table(ARCHIVE).columns).write.insertInto(ARCHIVE, overwrite=True)
    finally:
        spark.conf.set("spark.sql.sources.partitionOverwriteMode", previous or "static")
    for day in dates:
        if day not in present:  # every row of the day was backfilled, and the backfill found none now
            spark.sql(f"ALTER TABLE {ARCHIVE} DROP IF EXISTS PARTITION (event_date = '{day.isoformat()}')")


def warm_up(
    settings: Settings,
    topic: str,
    ranges: list[PartitionRange],
    request: BackfillRequest,
    progress: Callable[[str], None],
) -> tuple[list[PartitionRange], dict[str, InstrumentState]]:
    """Where the read starts and the registers the fill starts from: the chosen snapshot's, or the earliest
    offsets and none (module docstring). Says which in one line."""
    from tickflow.fill.snapshot import INDEX_TABLE, indexed_snapshots, snapshot_state

    snapshots = indexed_snapshots(settings)
    if snapshots is None:
        progress(
            f"{INDEX_TABLE} does not exist (apply the migrations with `tickflow hive migrate`): "
            f"the warm-up reads {topic} from the earliest offset"
        )
        return ranges, {}
    snapshot = choose_snapshot(snapshots, topic, ranges)
    if snapshot is None:
        progress(
            f"no state snapshot of {topic} was taken before the range and is still retained "
            f"({len(snapshots)} in {INDEX_TABLE}): the warm-up reads from the earliest offset"
        )
        return ranges, {}
    states = snapshot_state(settings, snapshot.snapshot_id)
    if request.instruments:
        states = {i: states[i] for i in request.instruments if i in states}
    progress(f"the warm-up starts from {snapshot.line()} ({len(states):,} instruments' registers used)")
    return warm_from(ranges, snapshot), states


def backfill_with_session(
    settings: Settings,
    request: BackfillRequest,
    options: BackfillSettings | None = None,
    progress: Callable[[str], None] = log.info,
) -> BackfillReport:
    """:func:`run_backfill` in a Spark session of its own, stopped at the end (the command line's backfill)."""
    from tickflow.spark import spark_session

    spark = spark_session(settings, "tickflow-backfill")
    try:
        return run_backfill(spark, settings, request, options, progress)
    finally:
        spark.stop()


def _plan(
    spark: SparkSession,
    settings: Settings,
    request: BackfillRequest,
    options: BackfillSettings,
    progress: Callable[[str], None],
) -> tuple[list[Chunk], dict[str, InstrumentState] | None]:
    """The chunks of offsets to read (the range, widened to warm the fill up) and the registers to start from;
    fails in one sentence when an instrument is unknown or the topic holds nothing in the range."""
    topic = options.input_topic
    check_instruments(spark, request)
    ranges = partition_ranges(settings, topic, request, options.late_s)
    if not has_data(ranges):
        raise InvalidBackfill(
            f"{topic} has no records between {request.start.isoformat()} and {request.end.isoformat()} "
            f"(Kafka time, {options.late_s:.0f}s margin): choose a range within the topic's retention."
        )
    ranges, initial = warm_up(settings, topic, ranges, request, progress)
    totals = describe(ranges)
    chunks = plan_chunks(ranges, options.chunk_events)
    progress(
        f"backfill {request.describe()}: {totals['records']:,} records of {topic} to read in {len(chunks)} chunks "
        f"({totals['in_range']:,} near the range by Kafka time, the rest warm the fill up)"
    )
    return chunks, initial


def _read_chunk(
    spark: SparkSession, settings: Settings, topic: str, chunk: Chunk, request: BackfillRequest
) -> DataFrame:
    """One chunk's records of ``topic`` (a batch read between its offsets), only the requested instruments'."""
    from pyspark.sql import functions as F

    from tickflow.spark import kafka_reader

    starting, ending = offsets_json(topic, chunk)
    raw: DataFrame = (
        kafka_reader(
            spark,
            settings,
            topic,
            principal=Principal.BACKFILL,
            group_id_prefix=BACKFILL_GROUPS,
            streaming=False,
            starting_offsets=starting,
        )
        .option("endingOffsets", ending)
        .option("failOnDataLoss", "true")
        .load()
    )
    if request.instruments:
        raw = raw.where(F.col("key").cast("string").isin(list(request.instruments)))
    return raw


def run_backfill(
    spark: SparkSession,
    settings: Settings,
    request: BackfillRequest,
    options: BackfillSettings | None = None,
    progress: Callable[[str], None] = log.info,
) -> BackfillReport:
    """Validate against the data (instruments, a range with records), then run the chunks and write."""
    from tickflow.fill.state import FillState
    from tickflow.reference.views import bind_reference, reference_history
    from tickflow.stream.fill_step import FillCounters, FillStep
    from tickflow.stream.publish import check_enrichment_sql, register_output_schema
    from tickflow.stream.settings import StreamSettings
    from tickflow.stream.transform import Transform

    options = options or BackfillSettings()
    topic = options.input_topic
    started = time.monotonic()
    chunks, initial = _plan(spark, settings, request, options, progress)
    stream = StreamSettings(input_topic=topic, output_topic=options.output_subject_topic)
    transform = Transform.build(settings, stream)
    reference = bind_reference(reference_history(spark))
    schema_id, schema_text = register_output_schema(settings, stream)
    columns = [f["name"] for f in json.loads(schema_text)["fields"]]
    check_enrichment_sql(spark, transform.sql, transform.filled_schema, columns)
    counters = FillCounters.create(spark)
    read = written = 0
    try:
        with scratch_location(settings, "tickflow-backfill-") as scratch:
            state = FillState(scratch / "fill-state")  # the backfill's own registers, gone afterwards
            if initial:
                state.seed(initial)
            for number, chunk in enumerate(chunks):
                raw = _read_chunk(spark, settings, topic, chunk, request)
                fill = FillStep(state.directory.as_uri(), number, topic, None, {}, counters)  # no dead letters
                enriched = transform.enrich(raw, fill)
                path = (scratch / "staged" / f"chunk={number}").as_uri()
                _selected(enriched, request, schema_id, schema_text).write.parquet(path)  # the one action
                staged = spark.read.parquet(path)
                count = staged.count()
                if count and request.writes_hbase:
                    staged.select("instrument_id", "event_us", "value").foreachPartition(HistoryWriter(settings))
                read += sum(to - begin for begin, to in chunk.values())
                written += count
                seconds = time.monotonic() - started
                progress(
                    f"chunk {number + 1}/{len(chunks)}: {read:,} records read, {written:,} rows written, "
                    f"{read / seconds:,.0f} records/s"
                )
            if not written:
                which = ", ".join(request.instruments) if request.instruments else "any instrument"
                raise InvalidBackfill(
                    f"No event of {which} in {topic} has an event time from {request.start.isoformat()} to "
                    f"{request.end.isoformat()}: nothing was written."
                )
            if request.writes_archive:
                write_archive(spark, request, spark.read.parquet((scratch / "staged").as_uri()), scratch)
                progress(f"{ARCHIVE}: {len(request.affected_dates())} date partitions rewritten")
            check = None
            if request.target == Target.CHECK:
                check = check_live(spark, settings, request, options, scratch / "staged", schema_text, progress)
    finally:
        for frame in reference:
            frame.unpersist()
    report = BackfillReport(read, written, counters.dlq, len(chunks), time.monotonic() - started, check)
    progress(f"backfill done: {report.summary()}")
    if check is not None and (failure := check.failure()):
        raise ReplayDiffers(failure)
    return report


def check_live(
    spark: SparkSession,
    settings: Settings,
    request: BackfillRequest,
    options: BackfillSettings,
    staged: Location,
    schema_text: str,
    progress: Callable[[str], None],
) -> ReplayCheck:
    """target=check: the staged rows against the live topic's records of the range; one report row."""
    from tickflow.backfill.replay_check import compare_with_live, write_report_row
    from tickflow.stream.settings import StreamSettings

    check = ReplayCheck(request.start, request.end, request.instruments, options.live_topic)
    start_ms, end_ms = (int(t.timestamp() * 1000) for t in (request.start, request.end))
    # A record is published after its input reached Kafka, which can be up to max_future_s before its event time.
    earliest = start_ms - int(StreamSettings().max_future_s * 1000)
    latest = end_ms + int((options.late_s + options.publish_delay_s) * 1000)
    compare_with_live(spark, settings, check, spark.read.parquet(staged.as_uri()), schema_text, earliest, latest)
    write_report_row(settings, check)
    progress(check.line())
    return check
