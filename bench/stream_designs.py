"""Fill designs for the stream, compared on the same decoded events in one run (CPU per event).

Over EVENTS simulated messages cached in Spark after the Kafka read, each design decodes and
fills one micro-batch and discards the result (a noop write forces the work):

  decode   from_avro only, what every design pays
  a. JVM   the fill entirely in Spark SQL: shuffle by instrument, then per field the running
           max(struct(event_time, offset, value)) over (event_time, offset) -- exactly the per-field
           last-writer-wins register -- and one row per (instrument, event_time); no state files
  b. Python per partition (what the stream ran before c): mapInArrow over each Kafka partition's events,
           no shuffle, tickflow.stream.fill_task.FillTask: fill.fill_frame on whole columns, the
           partition's registers read from and written to its state files (state.FillState)
  c. JVM per partition (what the stream runs): decode and fill in one JVM operator over the raw records
           (jvm/stream, RecordFill.filled, a mapPartitions of the Dataset API): EventDecoder, PartitionFill,
           the same state files through Hadoop's FileSystem API, no Python worker. Its figure includes the
           decode, which a and b pay on top of theirs (the decode line)

b and c run as micro-batch 1 on state written by an untimed batch 0 (so every repeat reads the
partition's registers of every instrument and writes them back, a replay of batch 1, as a running
stream does), neither sends dead letters (rejected records are only counted, as in the backfill),
and after the timings their filled rows and state files are compared (they must be equal).

CPU seconds are the Spark JVM's and its Python workers' (psutil, process tree): on a shared
machine they move less than wall time. Prints µs of CPU per event and events/s, median of REPEATS.

    .venv/bin/python -m bench.stream_designs [--events 500000] [--repeats 3]

Needs the stack (`tickflow stack up`), Maven (builds jvm/stream when its jar is missing or
older than its sources); writes a scratch topic it deletes afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import BENCH_PRINCIPAL, fresh_topics, kafka_config, register_value_schema
from bench.python_fill import FillTask
from bench.stream_bench import spark_pid, tree_cpu_seconds
from tickflow.fill.semantics import FILL_FIELDS
from tickflow.fill.state import FillState
from tickflow.runtime.location import Location
from tickflow.schemas import load
from tickflow.settings import REPO_ROOT, Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.spark import connector_jars, kafka_reader, spark_session
from tickflow.stream.decode import Limits, decoded_events
from tickflow.stream.fill_step import spark_schema


class Discard:
    """Stands in for an accumulator: the design comparison counts nothing."""

    def add(self, _: int) -> None:
        pass


STREAM_FILL = REPO_ROOT / "jvm" / "stream"


def stream_fill_jar() -> Path:
    """The JVM fill's jar (c), built with Maven when missing or older than its sources."""
    jar = STREAM_FILL / "target" / "tickflow-stream-0.1.0.jar"
    sources = [STREAM_FILL / "pom.xml", *(STREAM_FILL / "src" / "main").rglob("*.java")]
    if not jar.exists() or jar.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        subprocess.run(["mvn", "-q", "-f", str(STREAM_FILL / "pom.xml"), "package", "-DskipTests"], check=True)
    return jar


def measure(name: str, spark: Any, action: Callable[[], Any], events: int, repeats: int) -> None:
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, started = tree_cpu_seconds(spark_pid(spark)), time.perf_counter()
        action()
        walls.append(time.perf_counter() - started)
        cpus.append(tree_cpu_seconds(spark_pid(spark)) - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{name:28s} {cpu / events * 1e6:6.1f} µs CPU/event  {events / wall:>10,.0f} events/s", flush=True)


def compare(settings: Settings, topic: str, events: int, repeats: int) -> None:
    """Feed ``events`` simulated events into ``topic``, then measure each design on them."""
    schema = load("tickflow.md.MarketEvent", settings.schemas_dir)
    schema_id = register_value_schema(settings, topic, schema)
    run_feed(settings, FeedConfig(rate=1e9, count=events, topic=topic), schema_id)

    from pyspark.sql import DataFrame, Window
    from pyspark.sql import functions as F

    scratch = Path(tempfile.mkdtemp(prefix="tickflow-designs-"))  # c's jar, b's and c's state files
    jar = shutil.copy2(stream_fill_jar(), scratch)  # a copy: a build of jvm/stream meanwhile cannot pull it away
    jars = [*connector_jars(settings), jar]  # extra's spark.jars replaces spark_conf's own
    spark = spark_session(  # throughput figures: the stream's full tiered JIT, not a short app's C1
        settings,
        "tickflow-bench-designs",
        extra={"spark.sql.shuffle.partitions": "2", "spark.jars": ",".join(str(p) for p in jars)},
        java_options="",
    )
    raw = (
        kafka_reader(
            spark, settings, topic, principal=BENCH_PRINCIPAL, group_id_prefix="tickflow-bench", streaming=False
        )
        .load()
        .cache()
    )
    print(f"{raw.count():,} messages cached from {topic}; local[2]; median of {repeats}")
    try:
        decoded = decoded_events(raw, schema.definition, {schema_id: schema.text}, Limits(max_future_us=10**18))

        def noop(frame: Any) -> Callable[[], None]:
            return lambda: frame.write.format("noop").mode("overwrite").save()

        measure("decode", spark, noop(decoded), events, repeats)

        def register(name: str) -> Any:
            value = F.struct(F.col("event_time").alias("t"), F.col("offset").alias("o"), F.col(name).alias("v"))
            return F.when(F.col(name).isNotNull(), value)

        running = Window.partitionBy("instrument_id").orderBy("event_time", "offset")
        last_of_time = Window.partitionBy("instrument_id").orderBy("event_time", "offset")
        # observe() is a barrier to the optimizer: without it the filter on reason is pushed down through the
        # decode's selects with every column substituted, from_avro 881 times in the plan, code past the JVM's
        # 64 KB method limit and ms per event (a run of 300k events did not end in 25 minutes).
        barrier = decoded.observe("decoded", F.count(F.lit(1)).alias("rows"))
        jvm = (
            barrier.where("reason IS NULL")
            .select(
                "instrument_id",
                "event_time",
                *(F.max(register(name)).over(running).alias(name) for name in FILL_FIELDS),
                F.lead("event_time").over(last_of_time).alias("next_time"),
            )
            .where("next_time IS NULL OR next_time != event_time")
            .select("instrument_id", "event_time", *(F.col(f"{n}.v").alias(n) for n in FILL_FIELDS))
        )
        measure("a. JVM window fill", spark, noop(jvm), events, repeats)

        state_b, state_c = scratch / "b", scratch / "c"
        first = FillTask(  # no dead-letter topic: rejected records are only counted (none with these limits)
            kafka_config(settings), topic, None, FillState(Location.of(state_b)), 0, (Discard(), Discard())
        )
        noop(decoded.mapInArrow(first, spark_schema()))()  # batch 0, untimed: the state batch 1 starts from
        python = decoded.mapInArrow(dataclasses.replace(first, batch_id=1), spark_schema())
        measure("b. Python per partition", spark, noop(python), events, repeats)

        operators = spark._jvm.io.tickflow.stream  # type: ignore[union-attr]
        rejected = spark.sparkContext._jsc.sc().longAccumulator("rejected")  # type: ignore[union-attr]
        decoding = operators.decode.Decoding(
            json.dumps(schema.definition), {schema_id: schema.text}, None, list(FILL_FIELDS), 10**18, 0.0
        )

        def jvm_fill(batch_id: int) -> DataFrame:
            jdf = operators.fill.RecordFill.filled(
                raw._jdf, decoding, state_c.as_uri(), batch_id, 0, None, None, False, topic, None, rejected, None
            )
            return DataFrame(jdf, spark)

        noop(jvm_fill(0))()
        per_partition = jvm_fill(1)
        if per_partition.schema != spark_schema():
            raise AssertionError(f"c's schema {per_partition.schema.simpleString()} is not FILLED_SCHEMA")
        measure("c. JVM decode + fill", spark, noop(per_partition), events, repeats)

        # b and c did the same work: the same rows and the same registers (read back by state.py)
        same = [c for c in python.columns if c != "processed_time"]  # when each ran
        differ = (
            python.select(same).exceptAll(per_partition.select(same)).count()
            + per_partition.select(same).exceptAll(python.select(same)).count()
        )
        b_state, c_state = FillState(Location.of(state_b)).current(), FillState(Location.of(state_c)).current()
        print(
            f"b == c: {'yes' if differ == 0 and b_state == c_state else 'NO'} ({differ} rows differ; "
            f"{len(c_state):,} instruments' registers {'equal' if b_state == c_state else 'DIFFER'}; "
            f"{rejected.value()} rejected)",
            flush=True,
        )
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    with fresh_topics(settings, "designs") as topics:
        compare(settings, topics["designs"], args.events, args.repeats)


if __name__ == "__main__":
    main()
