"""Where one micro-batch's time goes: the stream's steps added one at a time over the same records.

Reads the newest EVENTS records of md.events (spread over its partitions) as one batch and times,
each into Spark's `noop` sink, cumulatively:

    read       the Kafka read
    decode     + decode.decoded_events (from_avro per writer, bytes-left-over check, validation)
    decode jvm the read + decode.decoded_events_jvm instead of decode: the same output from one JVM
               operator (jvm/stream; left out when its jar is not built), a contender the stream does not run
    to python  + mapInArrow of a function that hands the rows back (the Arrow round trip)
    fill       + the FillTask (dead letters, fill, state files in a scratch directory)
    batch      the stream's whole transform as a batch query: decode and fill in the JVM (RecordFill), the
               enrichment join, to_avro, Kafka write to a scratch topic

Each step runs ROUNDS times; the first round warms the JVM up and is not counted; the median of the
rest is printed. Needs the stack up, md.events filled (`tickflow simulate`) and reference data.

    .venv/bin/python -m bench.batch_steps [--events 100000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from bench.common import consumer, fresh_topics, kafka_config, spark_kafka
from bench.python_fill import FillTask
from tickflow.fill.state import FillState
from tickflow.reference.views import bind_current_reference
from tickflow.runtime.location import Location
from tickflow.schemas import TOPIC_SCHEMAS, load
from tickflow.settings import Settings
from tickflow.spark import operator_jars, spark_session
from tickflow.stream.app import Counters, spark_conf
from tickflow.stream.decode import Limits, decoded_events, decoded_events_jvm, registered_writers
from tickflow.stream.fill_step import FillCounters, FillStep, spark_schema
from tickflow.stream.publish import framed, register_output_schema
from tickflow.stream.settings import StreamSettings
from tickflow.stream.transform import Transform
from tickflow.topics import topic_partitions


def offset_ranges(settings: Settings, topic: str, events: int) -> tuple[str, str]:
    """startingOffsets / endingOffsets JSON for the newest ``events`` records of ``topic``."""
    watermarks = consumer(settings, "tickflow-bench")
    try:
        partitions = watermarks.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: watermarks.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    finally:
        watermarks.close()
    share = events // len(ends)
    start = {str(p): max(low, high - share) for p, (low, high) in ends.items()}
    end = {str(p): high for p, (_low, high) in ends.items()}
    return json.dumps({topic: start}), json.dumps({topic: end})


def handed_back(batches: Iterator[Any]) -> Iterator[Any]:
    yield from batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    settings = Settings()
    stream = StreamSettings()
    spark = spark_session(settings, "tickflow-bench-steps", extra=spark_conf(stream), java_options=stream.java_options)
    start, end = offset_ranges(settings, stream.input_topic, args.events)

    def raw() -> Any:
        return (
            spark.read.format("kafka")
            .options(**spark_kafka(settings))
            .option("kafka.fetch.max.wait.ms", "10")  # as tickflow.spark.kafka_reader
            .option("subscribe", stream.input_topic)
            .option("startingOffsets", start)
            .option("endingOffsets", end)
            .load()
        )

    count = raw().count()
    reader = load(TOPIC_SCHEMAS[stream.input_topic], settings.schemas_dir).definition
    writers = registered_writers(settings, f"{stream.input_topic}-value")
    tasks = spark.sparkContext.defaultParallelism
    decoded_schema = decoded_events(raw(), reader, writers, Limits()).schema
    counters = (spark.sparkContext.accumulator(0), spark.sparkContext.accumulator(0))
    scratch = Path(tempfile.mkdtemp(prefix="tickflow-steps-"))

    def decoded() -> Any:
        return decoded_events(raw().coalesce(tasks), reader, writers, Limits())

    def decoded_jvm() -> Any:
        return decoded_events_jvm(raw().coalesce(tasks), reader, writers, Limits())

    def noop(frame: Any) -> None:
        frame.write.format("noop").mode("overwrite").save()

    with fresh_topics(settings, "steps") as topics:
        output = topics["steps"]
        batch_stream = stream.model_copy(update={"output_topic": output, "checkpoint_dir": scratch / "checkpoint"})
        transform = Transform.build(settings, batch_stream)
        bind_current_reference(spark)
        schema_id, schema_text = register_output_schema(settings, batch_stream)
        partitions = topic_partitions(settings, output)
        fill_counters = Counters(**vars(FillCounters.create(spark)))
        rounds = iter(range(10**9))

        def batch() -> None:
            fill = FillStep(
                (scratch / "batch-fill").as_uri(), next(rounds), stream.input_topic, None, {}, fill_counters
            )
            enriched = framed(transform.enrich(raw(), fill), schema_id, schema_text, partitions)
            enriched.write.format("kafka").options(**spark_kafka(settings)).option("topic", output).save()

        def fill() -> None:
            state = FillState(Location.of(scratch / "fill"))
            task = FillTask(kafka_config(settings), stream.input_topic, output, state, next(rounds), counters)
            noop(decoded().mapInArrow(task, spark_schema()))

        steps: dict[str, Callable[[], None]] = {
            "read": lambda: noop(raw().coalesce(tasks)),
            "decode": lambda: noop(decoded()),
            **({"decode jvm": lambda: noop(decoded_jvm())} if operator_jars() else {}),
            "to python": lambda: noop(decoded().mapInArrow(handed_back, decoded_schema)),
            "fill": fill,
            "batch": batch,
        }
        print(f"{count:,} records of {stream.input_topic}, local[{tasks}], {args.rounds - 1} timed rounds", flush=True)
        try:
            for name, step in steps.items():
                times = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    step()
                    times.append(time.perf_counter() - started)
                median = statistics.median(times[1:])
                print(f"  {name:<10} {median:6.2f} s  ({median / count * 1e6:5.1f} µs/event)", flush=True)
        finally:
            spark.stop()


if __name__ == "__main__":
    main()
