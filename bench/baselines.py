"""Two baselines the enrichment stream is measured against (targets in docs/performance.md), on the same Kafka backlog.

Both read Confluent-framed MarketEvents keyed by instrument id, forward-fill, enrich with the
Hive reference data and write Confluent-framed EnrichedEvents (registered under
``<output topic>-value``) keyed by instrument id. ``ingest_time`` is the input record's Kafka
timestamp, so produce -> output latency is the output's Kafka timestamp minus ``ingest_time``.

1. :func:`start_seed_design`: the seed's design written literally. A Structured Streaming query
   whose foreachBatch decodes with ``from_avro`` (the one registered writer schema), unions the
   previous batch's latest row per instrument (kept in driver memory: lost on restart, which is
   the point of the comparison), fills with ``last(col, ignorenulls=True)`` over
   (event_time, offset) per instrument, keeps one row per (instrument, event_time), enriches with
   ``spark_apps/enrichment.sql`` and writes ``to_avro`` behind the 5-byte Confluent prefix. It has
   no per-field as-of times: the ``*_as_of`` columns are null.
2. :func:`run_python_peer`: a plain-Python consumer. One confluent_kafka Consumer, fastavro
   decode, ``tickflow.fill.semantics.fill_columns`` per instrument per poll batch (state in a dict),
   dict-based enrichment (reference rows read once from HiveServer2), the compiled Avro encoder
   and one Producer. Its state is in memory too; it is a speed reference, not a design.

Standalone, on fresh topics it deletes afterwards: feed a backlog, drain it with each baseline,
print events/s and CPU seconds:

    .venv/bin/python -m bench.baselines [--backlog 200000] [--trigger "10 seconds"] [--max-offsets N]

Needs the stack (`tickflow stack up`) with reference data loaded (ref.instruments, ref.fx_rates).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from bench.common import BENCH_PRINCIPAL, PARTITIONS, consumer, fresh_topics, register_value_schema, spark_kafka
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.fill.semantics import FILL_FIELDS, InstrumentState, fill_columns
from tickflow.reference.views import REFERENCE_VIEWS
from tickflow.schemas import TOPIC_SCHEMAS, AvroSchema, load
from tickflow.settings import REPO_ROOT, Settings
from tickflow.sources.feed import FeedConfig, producer_config, run_feed
from tickflow.topics import ENRICHED, EVENTS
from tickflow.warehouse import run_statements

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

ENRICHMENT_SQL = REPO_ROOT / "spark_apps" / "enrichment.sql"
# The reference attributes an EnrichedEvent carries, in ref.instruments' column names.
INSTRUMENT_COLUMNS = (
    "instrument_id",
    "symbol",
    "name",
    "exchange",
    "currency",
    "asset_class",
    "sector",
    "lot_size",
    "tick_size",
    "reference_version",
)
# Large fetches: a drain reads as fast as the broker serves, not in 1 MB sips.
CONSUMER_FETCH = {
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 8_388_608,
    "fetch.min.bytes": 1_048_576,
    "fetch.wait.max.ms": 50,
    "queued.min.messages": 200_000,
    "queued.max.messages.kbytes": 262_144,
}
POLL_BATCH = 10_000
# consume() waits until POLL_BATCH messages or this timeout: short, so a live (not backlog) run
# does not hold events back for latency's sake; a backlog fills the batch at once anyway.
POLL_TIMEOUT_S = 0.05
KINDS = ("events", "seed", "peer")  # the standalone run's topics: the backlog, the seed's output, the peer's


def bind_hive_reference(spark: SparkSession) -> None:
    """The Hive reference views under the enrichment SQL's names, read again by every query that joins them (as the
    seed does every batch), each row in force whatever the event time (validity bounds NULL)."""
    for name, view in REFERENCE_VIEWS.items():
        spark.sql(
            f"SELECT *, CAST(NULL AS TIMESTAMP) AS in_force_from, CAST(NULL AS TIMESTAMP) AS in_force_to FROM {view}"
        ).createOrReplaceTempView(name)


def register_output_schema(settings: Settings, output_topic: str) -> tuple[int, AvroSchema]:
    """EnrichedEvent under ``<output topic>-value``: (schema id, schema)."""
    schema = load(TOPIC_SCHEMAS[ENRICHED.name], settings.schemas_dir)
    return register_value_schema(settings, output_topic, schema), schema


# ---- 1. the seed's design, literally -------------------------------------------------------------


class SeedDesignBatch:
    """The foreachBatch function of the seed's design; ``latest`` is the driver-memory carry-over.

    ``latest`` holds, after each batch, the last filled row of every instrument seen so far
    (collected to the driver: a few hundred rows). The next batch unions it before filling, so
    values carry across batches; a restart forgets it.
    """

    def __init__(
        self, settings: Settings, output_topic: str, writer_schema: str, output_schema_id: int, output_schema: str
    ) -> None:
        self.writer_schema = writer_schema
        self.prefix = confluent_prefix(output_schema_id)
        self.output_schema = output_schema
        self.output_columns = [f["name"] for f in json.loads(output_schema)["fields"]]
        self.sql = ENRICHMENT_SQL.read_text()
        self.producer_options = {  # the batching the Python peer's producer (and the feed's) uses
            **spark_kafka(settings),
            "kafka.linger.ms": "20",
            "kafka.batch.size": "1000000",
            "kafka.compression.type": "lz4",
            "topic": output_topic,
        }
        self.latest: list[Row] = []
        self.latest_schema: Any = None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import Window
        from pyspark.sql import functions as F
        from pyspark.sql.avro.functions import from_avro, to_avro

        spark = batch.sparkSession  # the query's own session: its temp views and settings are not shared
        # Adaptive execution would coalesce the window's few-MB shuffle into one partition, leaving one
        # core idle in local[2] and halving the rate: a handicap of Spark's defaults, not of the design.
        spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
        events = batch.select(
            "offset",
            F.col("timestamp").alias("ingest_time"),
            from_avro(F.expr("substring(value, 6)"), self.writer_schema).alias("e"),
        ).select(
            "e.instrument_id",
            "e.event_time",
            "offset",
            "ingest_time",
            F.lit(False).alias("carried"),
            *(F.col(f"e.{name}") for name in FILL_FIELDS),
        )
        if self.latest:  # carried rows sort before this batch's events at the same time (offset -1)
            events = events.unionByName(spark.createDataFrame(self.latest, self.latest_schema))

        in_order = Window.partitionBy("instrument_id").orderBy("event_time", "offset")
        at_time = Window.partitionBy("instrument_id", "event_time")
        new = ~F.col("carried")
        filled = events.select(
            "instrument_id",
            "event_time",
            "offset",
            "carried",
            *(F.last(name, ignorenulls=True).over(in_order).alias(name) for name in FILL_FIELDS),
            F.lead("event_time").over(in_order).alias("next_time"),
            F.count(F.when(new, 1)).over(at_time).cast("int").alias("event_count"),
            F.max(F.when(new, F.col("ingest_time"))).over(at_time).alias("ingest_time"),
        )
        # One row per (instrument, event_time): the last one at that time, all its events applied.
        rows = filled.where(F.col("next_time").isNull() | (F.col("next_time") != F.col("event_time")))
        rows = rows.drop("next_time").persist()
        try:
            bind_hive_reference(spark)  # read from Hive again every batch, as the seed
            as_of = (F.lit(None).cast("timestamp").alias(f"{name}_as_of") for name in FILL_FIELDS)
            rows.where("event_count > 0").select(
                "instrument_id",
                "event_time",
                "event_count",
                *FILL_FIELDS,
                *as_of,
                "ingest_time",
                F.lit(batch_id).cast("long").alias("batch_id"),
                F.current_timestamp().alias("processed_time"),
            ).createOrReplaceTempView("filled_events")
            record = F.struct(*(F.col(c) for c in self.output_columns))
            enriched = spark.sql(self.sql).select(
                F.col("instrument_id").cast("binary").alias("key"),
                F.concat(F.lit(self.prefix), to_avro(record, self.output_schema)).alias("value"),
            )
            enriched.write.format("kafka").options(**self.producer_options).save()

            newest = Window.partitionBy("instrument_id").orderBy(F.desc("event_time"), F.desc("offset"))
            latest = (
                rows.withColumn("n", F.row_number().over(newest))
                .where("n = 1")
                .select(
                    "instrument_id",
                    "event_time",
                    F.lit(-1).cast("long").alias("offset"),
                    "ingest_time",
                    F.lit(True).alias("carried"),
                    *FILL_FIELDS,
                )
            )
            self.latest = latest.collect()
            self.latest_schema = latest.schema
        finally:
            rows.unpersist()


def start_seed_design(
    spark: SparkSession,
    settings: Settings,
    input_topic: str,
    output_topic: str,
    checkpoint_dir: str | Path,
    trigger: str = "10 seconds",
    max_offsets: int | None = None,
) -> StreamingQuery:
    """Start the seed's design on ``input_topic`` (from the earliest offset) -> ``output_topic``.

    Decodes with the latest schema registered under ``<input topic>-value``: the seed has one
    writer schema, so records of any other schema id are misread or fail the query.
    """
    from tickflow.spark import kafka_reader

    registry = SchemaRegistryClient(settings.registry_client_config)
    writer = str(registry.get_latest_version(f"{input_topic}-value").schema.schema_str)
    schema_id, schema = register_output_schema(settings, output_topic)
    foreach = SeedDesignBatch(settings, output_topic, writer, schema_id, schema.text)
    reader = kafka_reader(
        spark, settings, input_topic, principal=BENCH_PRINCIPAL, group_id_prefix="tickflow-bench", streaming=True
    ).option("failOnDataLoss", "true")
    if max_offsets is not None:
        reader = reader.option("maxOffsetsPerTrigger", max_offsets)
    query: StreamingQuery = (
        reader.load()
        .writeStream.queryName(f"seed_design_{uuid.uuid4().hex[:6]}")
        .foreachBatch(foreach)
        .option("checkpointLocation", str(checkpoint_dir))
        .trigger(processingTime=trigger)
        .start()
    )
    return query


# ---- 2. a plain-Python peer ----------------------------------------------------------------------


def load_reference(settings: Settings) -> dict[str, dict[str, Any]]:
    """EnrichedEvent's reference attributes per instrument id, from HiveServer2, read once."""
    columns = ", ".join(f"i.{c}" for c in INSTRUMENT_COLUMNS)
    query = (
        f"SELECT {columns}, fx.usd_per_unit FROM ref.instruments i "
        "LEFT JOIN ref.fx_rates fx ON fx.currency = i.currency"
    )
    rows = run_statements(settings, [query])
    reference = {}
    for row in rows:
        attributes = dict(zip((*INSTRUMENT_COLUMNS, "fx_rate_usd"), row, strict=True))
        attributes["instrument_name"] = attributes.pop("name")
        reference[str(row[0])] = {**attributes, "enriched": True}
    return reference


def unknown_instrument(instrument_id: str) -> dict[str, Any]:
    """Reference attributes of an instrument the reference data does not know: published, unenriched."""
    return {
        **dict.fromkeys(c if c != "name" else "instrument_name" for c in (*INSTRUMENT_COLUMNS, "fx_rate_usd")),
        "instrument_id": instrument_id,
        "enriched": False,
    }


def derive(record: dict[str, Any]) -> None:
    """The derived values of spark_apps/enrichment.sql, null where an input is null."""
    bid, ask, last, fx = record["bid_price"], record["ask_price"], record["last_price"], record["fx_rate_usd"]
    price, size = record["trade_price"], record["trade_size"]
    mid = spread = spread_bps = notional = None
    if bid is not None and ask is not None:
        mid = (bid + ask) / 2
        spread = ask - bid
        spread_bps = spread / mid * 10000 if mid else None
    if price is not None and size is not None:
        notional = price * size
    record["mid"], record["spread"], record["spread_bps"], record["trade_notional"] = mid, spread, spread_bps, notional
    record["mid_usd"] = mid * fx if mid is not None and fx is not None else None
    record["last_price_usd"] = last * fx if last is not None and fx is not None else None
    record["trade_notional_usd"] = notional * fx if notional is not None and fx is not None else None


def plain_types(schema: Any) -> Any:
    """A schema without logical types: fastavro then reads timestamps as µs integers (same bytes),
    which the fill wants, instead of building a datetime per field per event."""
    if isinstance(schema, dict):
        return {k: plain_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [plain_types(s) for s in schema]
    return schema


class WriterSchemas:
    """Parsed writer schemas by Confluent schema id, fetched from the registry once each."""

    def __init__(self, registry_url: str) -> None:
        self.client = SchemaRegistryClient({"url": registry_url})
        self.parsed: dict[int, Any] = {}

    def __getitem__(self, schema_id: int) -> Any:
        parsed = self.parsed.get(schema_id)
        if parsed is None:
            text = self.client.get_schema(schema_id).schema_str
            parsed = self.parsed[schema_id] = fastavro.parse_schema(plain_types(json.loads(str(text))))
        return parsed


def run_python_peer(
    settings: Settings,
    input_topic: str,
    output_topic: str,
    *,
    stop_at_offsets: dict[int, int] | None,
    duration_s: float | None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Consume ``input_topic`` from the beginning until every partition reaches ``stop_at_offsets``
    (partition -> end offset, exclusive) or ``duration_s`` has passed (forever if neither).

    Per poll batch (up to POLL_BATCH messages): decode, group by instrument, ``fill_columns`` with
    each instrument's stored state, enrich, encode, produce. ``fill_columns`` per instrument beat
    ``fill_frame`` over the whole poll batch: about 7.5-9 against 9-10 µs/event (CPU time, 100k
    simulated events, 500 instruments, 10k-event batches, both ending in output records), since
    fill_frame needs a DataFrame built from the decoded dicts (~5 µs/event) and its numpy columns
    turned back into records (NaN/NEVER to None, float sizes to int).

    Returns events consumed, wall seconds, events/s and this process's CPU seconds (librdkafka's
    threads included). Messages that are not decodable Avro are skipped and counted (``rejected``).
    """
    schema_id, schema = register_output_schema(settings, output_topic)
    encode = compile_encoder(
        schema.definition,
        ("instrument_id", "symbol", "instrument_name", "exchange", "currency", "asset_class", "sector"),
        confluent_prefix(schema_id),
    )
    reference = load_reference(settings)
    writers = WriterSchemas(settings.registry_url)
    reader = consumer(
        settings,
        f"bench-peer-{uuid.uuid4().hex[:8]}",
        **{"enable.auto.commit": False, "enable.auto.offset.store": False, "log_level": 3, **CONSUMER_FETCH},
    )
    partitions = sorted(reader.list_topics(input_topic, timeout=10).topics[input_topic].partitions)
    reader.assign([TopicPartition(input_topic, p, OFFSET_BEGINNING) for p in partitions])
    producer = Producer(producer_config(settings))
    produce, poll = producer.produce, producer.poll
    remaining = {p: end for p, end in (stop_at_offsets or {}).items() if end > 0}
    states: dict[str, InstrumentState] = {}
    read: Callable[..., Any] = fastavro.schemaless_reader
    events = rejected = batch_id = 0
    started, cpu_started = time.monotonic(), time.process_time()
    next_report = started + 5
    try:
        while True:
            if stop_at_offsets is not None and not remaining:
                break
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            messages = reader.consume(POLL_BATCH, POLL_TIMEOUT_S)
            if not messages:
                continue
            by_instrument: dict[str, list[dict[str, Any]]] = {}
            for message in messages:
                value = message.value()
                if message.error() is not None:  # a consumer event, not a record
                    continue
                if not value or value[0] != 0:
                    rejected += 1
                    continue
                body = io.BytesIO(value)
                body.seek(5)
                try:
                    record: dict[str, Any] = read(body, writers[int.from_bytes(value[1:5], "big")], None)
                except Exception:  # noqa: BLE001 - bad bytes or an unknown id: a baseline skips them
                    rejected += 1
                    continue
                record["offset"] = message.offset()
                record["ingest_time"] = message.timestamp()[1] * 1000
                by_instrument.setdefault(record["instrument_id"], []).append(record)
            events += len(messages)
            processed_time = time.time_ns() // 1000
            for instrument_id, records in by_instrument.items():
                states[instrument_id], columns = fill_columns(states.get(instrument_id), records)
                known = reference.get(instrument_id)
                if known is None:
                    known = reference[instrument_id] = unknown_instrument(instrument_id)
                names = list(columns)
                for row in zip(*columns.values(), strict=True):
                    out = dict(zip(names, row, strict=True))
                    out.update(known)
                    derive(out)
                    out["processed_time"] = processed_time
                    out["batch_id"] = batch_id
                    encoded = encode(out)
                    while True:
                        try:
                            produce(output_topic, encoded, instrument_id)
                            break
                        except BufferError:  # librdkafka's queue is full: let it send, then retry
                            poll(0.05)
            poll(0)
            batch_id += 1
            if stop_at_offsets is not None:
                for tp in reader.position([TopicPartition(input_topic, p) for p in list(remaining)]):
                    if tp.offset >= remaining[tp.partition]:
                        del remaining[tp.partition]
            now = time.monotonic()
            if now >= next_report:
                progress(f"[python peer] {events:,} events in {now - started:.0f}s = {events / (now - started):,.0f}/s")
                next_report = now + 5
        left = producer.flush(60)
        if left:
            raise RuntimeError(f"{left} enriched records were not delivered to {output_topic}")
    finally:
        reader.close()
    seconds = time.monotonic() - started
    return {
        "events": events,
        "seconds": seconds,
        "rate": events / seconds if seconds else 0.0,
        "cpu_seconds": time.process_time() - cpu_started,
        "rejected": rejected,
    }


# ---- standalone run ------------------------------------------------------------------------------


def jvm_cpu_seconds(spark: SparkSession) -> float:
    """CPU seconds the Spark driver JVM (all of local[*]'s executors) has used so far (Linux /proc)."""
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    watermarks = consumer(settings, "bench-baselines")
    try:
        return {p: watermarks.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    finally:
        watermarks.close()


def processed_offsets(query: StreamingQuery, topic: str) -> dict[int, int]:
    progress = query.lastProgress
    if not progress:
        return {}
    offsets = progress["sources"][0]["endOffset"]
    parsed = json.loads(offsets) if isinstance(offsets, str) else offsets
    return {int(p): int(o) for p, o in parsed.get(topic, {}).items()}


def wait_drained(query: StreamingQuery, topic: str, target: Mapping[int, int], timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        done = processed_offsets(query, topic)
        if done and all(done.get(p, 0) >= end for p, end in target.items()):
            return time.monotonic() - started
        if query.exception():
            raise RuntimeError(str(query.exception()))
        time.sleep(0.1)
    raise TimeoutError(f"the query had not drained {topic} after {timeout_s:.0f}s")


def drain_both(settings: Settings, args: argparse.Namespace, topics: dict[str, str], checkpoint: Path) -> None:
    """Feed the backlog into ``topics["events"]``, then drain it with the Python peer and the seed's design."""
    from tickflow.spark import spark_session

    schema = load(TOPIC_SCHEMAS[EVENTS.name], settings.schemas_dir)
    schema_id = register_value_schema(settings, topics["events"], schema)
    fed = run_feed(settings, FeedConfig(rate=1e9, count=args.backlog, topic=topics["events"]), schema_id)
    backlog = end_offsets(settings, topics["events"])
    print(f"backlog: {sum(backlog.values()):,} events produced at {fed.rate:,.0f}/s")

    peer = run_python_peer(settings, topics["events"], topics["peer"], stop_at_offsets=backlog, duration_s=None)
    cpu = peer["cpu_seconds"]
    print(
        f"[python peer] drained {peer['events']:,} events in {peer['seconds']:.1f}s = {peer['rate']:,.0f} "
        f"events/s; CPU {cpu:.1f}s ({cpu / peer['seconds']:.2f} cores, {cpu / peer['events'] * 1e6:.0f} µs/event); "
        f"{sum(end_offsets(settings, topics['peer']).values()):,} records out"
    )

    # Measured against the stream: the same JIT as the stream's driver (full tiered), not a short app's C1.
    spark = spark_session(settings, "tickflow-bench-baselines", java_options="")
    try:
        for view in ("ref.instruments", "ref.fx_rates"):  # the first metastore round trips, not timed
            spark.table(view).count()
        cpu_before, driver_before = jvm_cpu_seconds(spark), time.process_time()
        query = start_seed_design(
            spark, settings, topics["events"], topics["seed"], checkpoint / "seed", args.trigger, args.max_offsets
        )
        try:
            seconds = wait_drained(query, topics["events"], backlog, timeout_s=3600)
        finally:
            query.stop()
        cpu = jvm_cpu_seconds(spark) - cpu_before + time.process_time() - driver_before
        batches = [p for p in query.recentProgress if p["numInputRows"]]
        busy = sum(p["durationMs"]["triggerExecution"] for p in batches) / 1000
        events = sum(backlog.values())
        print(
            f"[seed design] drained {events:,} events in {seconds:.1f}s = {events / seconds:,.0f} events/s "
            f"from query start ({len(batches)} batches taking {busy:.1f}s = {events / busy:,.0f} events/s); "
            f"CPU {cpu:.1f}s ({cpu / seconds:.2f} cores, {cpu / events * 1e6:.0f} µs/event); "
            f"{sum(end_offsets(settings, topics['seed']).values()):,} records out"
        )
    finally:
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--trigger", default="10 seconds", help="the seed's micro-batch interval")
    parser.add_argument("--max-offsets", type=int, default=None, help="maxOffsetsPerTrigger of the seed's query")
    args = parser.parse_args()
    settings = Settings()
    checkpoint = Path(tempfile.mkdtemp(prefix="tickflow-baselines-"))
    try:
        with fresh_topics(settings, *KINDS, prefix="bench.baselines") as scratch:
            topics = {kind: scratch[kind] for kind in KINDS}
            print(f"configuration: {vars(args)}; {PARTITIONS} partitions; seed on local[2]; topics {topics}")
            print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
            drain_both(settings, args, topics, checkpoint)
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    print(
        "load average after: {:.1f} {:.1f} {:.1f} (other processes on this machine share its 2 cores)".format(
            *os.getloadavg()
        )
    )


if __name__ == "__main__":
    main()
