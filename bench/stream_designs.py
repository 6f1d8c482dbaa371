"""Fill designs for the stream, compared on the same decoded events in one run (CPU per event).

Over EVENTS simulated messages cached in Spark after the Kafka read, each design decodes and
fills one micro-batch and discards the result (a noop write forces the work):

  decode   from_avro only, what every design pays
  a. JVM   the fill entirely in Spark SQL: shuffle by instrument, then per field the running
           max(struct(event_time, offset, value)) over (event_time, offset) -- exactly the per-field
           last-writer-wins register -- and one row per (instrument, event_time)
  b. Python per partition (what the stream runs): mapInArrow over each Kafka partition's events,
           no shuffle, fill.fill_frame on whole columns (tickflow.stream.fill_task without its
           state files and dead letters)

CPU seconds are the Spark JVM's and its Python workers' (psutil, process tree): on a shared
machine they move less than wall time. Prints µs of CPU per event and events/s, median of REPEATS.

    .venv/bin/python bench/stream_designs.py [--events 500000] [--repeats 3]

Needs the stack (`tickflow stack up`); writes a scratch topic it deletes afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from stream_bench import spark_pid, tree_cpu_seconds

from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.spark import kafka_reader, spark_session
from tickflow.stream.decode import Limits, decoded_events
from tickflow.stream.fill import FILL_FIELDS
from tickflow.stream.fill_task import FillTask, spark_schema
from tickflow.stream.state import FillState
from tickflow.topics import TopicSpec, create_topics


class Discard:
    """Stands in for an accumulator: the design comparison counts nothing."""

    def add(self, _: int) -> None:
        pass


def measure(name: str, spark: Any, action: Callable[[], Any], events: int, repeats: int) -> None:
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, started = tree_cpu_seconds(spark_pid(spark)), time.perf_counter()
        action()
        walls.append(time.perf_counter() - started)
        cpus.append(tree_cpu_seconds(spark_pid(spark)) - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{name:28s} {cpu / events * 1e6:6.1f} µs CPU/event  {events / wall:>10,.0f} events/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    topic = f"bench.designs.{uuid.uuid4().hex[:6]}"
    create_topics(settings, (TopicSpec(topic, 12, 3_600_000),))
    schema = load("tickflow.md.MarketEvent", settings.schemas_dir)
    registry = SchemaRegistryClient(settings.registry_client_config)
    schema_id = int(registry.register_schema(f"{topic}-value", Schema(schema.text, "AVRO")))
    run_feed(settings, FeedConfig(rate=1e9, count=args.events, topic=topic), schema_id)

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = spark_session(  # throughput figures: the stream's full tiered JIT, not a short app's C1
        settings, "tickflow-bench-designs", extra={"spark.sql.shuffle.partitions": "2"}, java_options=""
    )
    raw = (
        kafka_reader(
            spark, settings, topic, principal=Principal.ADMIN, group_id_prefix="tickflow-bench", streaming=False
        )
        .load()
        .cache()
    )
    print(f"{raw.count():,} messages cached from {topic}; local[2]; median of {args.repeats}")
    try:
        decoded = decoded_events(raw, schema.definition, {schema_id: schema.text}, Limits(max_future_us=10**18))

        def noop(frame: Any) -> Callable[[], None]:
            return lambda: frame.write.format("noop").mode("overwrite").save()

        measure("decode", spark, noop(decoded), args.events, args.repeats)

        def register(name: str) -> Any:
            value = F.struct(F.col("event_time").alias("t"), F.col("offset").alias("o"), F.col(name).alias("v"))
            return F.when(F.col(name).isNotNull(), value)

        running = Window.partitionBy("instrument_id").orderBy("event_time", "offset")
        last_of_time = Window.partitionBy("instrument_id").orderBy("event_time", "offset")
        jvm = (
            decoded.where("reason IS NULL")
            .select(
                "instrument_id",
                "event_time",
                *(F.max(register(name)).over(running).alias(name) for name in FILL_FIELDS),
                F.lead("event_time").over(last_of_time).alias("next_time"),
            )
            .where("next_time IS NULL OR next_time != event_time")
            .select("instrument_id", "event_time", *(F.col(f"{n}.v").alias(n) for n in FILL_FIELDS))
        )
        measure("a. JVM window fill", spark, noop(jvm), args.events, args.repeats)

        task = FillTask(
            kafka_client_config(settings, Principal.ADMIN),
            topic,
            "unused",
            FillState(Path(tempfile.mkdtemp())),
            0,
            (Discard(), Discard()),
        )
        python = decoded.mapInArrow(task, spark_schema())
        measure("b. Python per partition", spark, noop(python), args.events, args.repeats)
    finally:
        spark.stop()
        for future in AdminClient({"bootstrap.servers": settings.bootstrap_servers}).delete_topics([topic]).values():
            future.result(30)


if __name__ == "__main__":
    main()
