"""Decode and fill designs for the stream, compared on the same data in one run.

Decode (Confluent-framed MarketEvent -> columns), over EVENTS messages read from Kafka:
  a. Spark's from_avro on the body (JVM; one writer schema, so evolution needs one branch per id)
  b. fastavro in mapInPandas (Python; the registry resolves any writer id into the reader schema)
Fill (one micro-batch of EVENTS decoded events, 500 instruments):
  a. the seed's design: per instrument, window last(value, ignoreNulls) over (event_time, offset),
     then one row per (instrument, event_time) (JVM)
  b. tickflow.stream.fill's per-event loop in applyInPandas, one call per instrument
  c. tickflow.stream.fill's column operations in applyInPandas, one call per bucket of instruments
     (what the stateful operator runs since the loop lost to it)
Each is timed end to end (a count forces the work), median of REPEATS; prints events/s.

    .venv/bin/python bench/stream_designs.py [--events 500000] [--repeats 3]

Needs the stack (`tickflow stack up`); writes a scratch topic it deletes afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.spark import kafka_reader, spark_session
from tickflow.stream.fill import FILL_FIELDS, fill_batch, fill_frame
from tickflow.topics import TopicSpec, create_topics


def timed(action: Callable[[], Any], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    topic = f"bench.designs.{uuid.uuid4().hex[:6]}"
    create_topics(settings, (TopicSpec(topic, 12, 3_600_000),))
    schema = load("tickflow.md.MarketEvent", settings.schemas_dir)
    schema_id = int(
        SchemaRegistryClient({"url": settings.registry_url}).register_schema(
            f"{topic}-value", Schema(schema.text, "AVRO")
        )
    )
    run_feed(settings, FeedConfig(rate=1e9, count=args.events, topic=topic), schema_id)

    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    spark = spark_session(settings, "tickflow-bench-designs")
    raw = kafka_reader(spark, settings, topic, streaming=False).load().select("key", "value", "offset").cache()
    print(f"{raw.count():,} messages cached from {topic}; local[2]; median of {args.repeats}")
    try:
        # ---- decode ------------------------------------------------------------------
        jvm_decoded = raw.select(
            "offset", from_avro(F.expr("substring(value, 6, length(value) - 5)"), schema.text).alias("e")
        ).select("offset", "e.*")
        seconds = timed(lambda: jvm_decoded.write.format("noop").mode("overwrite").save(), args.repeats)
        print(f"decode a. from_avro (JVM):            {args.events / seconds:>10,.0f} events/s")

        reader = schema.parsed
        names = [f["name"] for f in schema.definition["fields"]]

        def decode(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            import io

            import fastavro

            for frame in frames:
                rows = []
                for value in frame["value"]:
                    body = io.BytesIO(value)
                    body.seek(5)
                    rows.append(fastavro.schemaless_reader(body, reader, None))
                out = pd.DataFrame(rows, columns=names)
                out["event_time"] = pd.to_datetime([r["event_time"] for r in rows]).tz_localize(None)
                yield out.astype({"source": str})

        python_decoded = raw.select("value").mapInPandas(decode, jvm_decoded.drop("offset").schema)
        seconds = timed(lambda: python_decoded.write.format("noop").mode("overwrite").save(), args.repeats)
        print(f"decode b. fastavro in mapInPandas:     {args.events / seconds:>10,.0f} events/s")

        # ---- fill ----------------------------------------------------------------------
        events = jvm_decoded.withColumn("t", F.col("event_time").cast("long")).cache()
        events.count()
        order = Window.partitionBy("instrument_id").orderBy("event_time", "offset")
        filled = events.select(
            "instrument_id",
            "event_time",
            *(F.last(name, ignorenulls=True).over(order).alias(name) for name in FILL_FIELDS),
            F.row_number().over(Window.partitionBy("instrument_id", "event_time").orderBy(F.desc("offset"))).alias("n"),
        ).where("n = 1")
        seconds = timed(lambda: filled.write.format("noop").mode("overwrite").save(), args.repeats)
        print(f"fill a. window last(ignoreNulls) (JVM): {args.events / seconds:>10,.0f} events/s")

        def fill(frame: pd.DataFrame) -> pd.DataFrame:
            frame = frame.assign(event_time=frame["event_time"].astype("int64") // 1000, ingest_time=0).rename(
                columns={"offset": "offset"}
            )
            _, out = fill_batch(None, frame)
            out["instrument_id"] = frame["instrument_id"].iloc[0]
            return out[["instrument_id", *FILL_FIELDS]].astype({n: str for n in FILL_FIELDS})

        out_schema = "instrument_id string, " + ", ".join(f"{n} string" for n in FILL_FIELDS)
        python_filled = (
            events.select("instrument_id", "event_id", "event_time", "offset", *FILL_FIELDS)
            .groupBy("instrument_id")
            .applyInPandas(fill, out_schema)
        )
        seconds = timed(lambda: python_filled.write.format("noop").mode("overwrite").save(), args.repeats)
        print(f"fill b. loop per instrument (Python):  {args.events / seconds:>10,.0f} events/s")

        def fill_bucket(frame: pd.DataFrame) -> pd.DataFrame:
            frame = frame.assign(event_time=frame["event_time"].astype("int64") // 1000, ingest_time=0)
            _, columns = fill_frame({}, frame)
            out = pd.DataFrame({name: columns[name] for name in ("instrument_id", *FILL_FIELDS)})
            return out.astype({n: str for n in FILL_FIELDS})

        bucketed = (
            events.select("instrument_id", "event_id", "event_time", "offset", *FILL_FIELDS)
            .withColumn("bucket", F.pmod(F.xxhash64("instrument_id"), F.lit(16)))
            .groupBy("bucket")
            .applyInPandas(fill_bucket, out_schema)
        )
        seconds = timed(lambda: bucketed.write.format("noop").mode("overwrite").save(), args.repeats)
        print(f"fill c. columns per bucket (Python):   {args.events / seconds:>10,.0f} events/s")
    finally:
        spark.stop()
        AdminClient({"bootstrap.servers": settings.bootstrap_servers}).delete_topics([topic])


if __name__ == "__main__":
    main()
