"""Throughput and latency of the enrichment stream on this machine, for two trigger settings.

For each configuration (the chosen low-latency trigger, and the seed's 10 s micro-batches), in
one run, on fresh topics:
  1. backlog drain: BACKLOG events are produced first, then the stream starts; prints the
     time to catch up and events/s;
  2. sustained load: a simulator process offers RATE events/s for SECONDS while the stream
     runs; prints the input and processing rates of the batches in that window and the latency
     from produce (the input record's Kafka timestamp, carried as ingest_time) to md.enriched
     (the output record's Kafka timestamp), p50/p99.

    .venv/bin/python bench/stream_throughput.py [--backlog 500000] [--rate 100000] [--seconds 60]

Needs the stack (`tickflow stack up`) and loaded reference data for realistic enrichment.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.spark import spark_session
from tickflow.stream.app import StreamSettings, build_query
from tickflow.stream.app import spark_conf as stream_conf

PARTITIONS = 12


def end_offsets(settings: Settings, topic: str) -> dict[str, int]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "bench"})
    ends = {str(p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    consumer.close()
    return ends


def processed(query: Any, topic: str) -> dict[str, int]:
    import json

    progress = query.lastProgress
    if not progress:
        return {}
    offsets = progress["sources"][0]["endOffset"]
    return dict((json.loads(offsets) if isinstance(offsets, str) else offsets).get(topic, {}))


def wait_caught_up(query: Any, topic: str, target: dict[str, int], timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        done = processed(query, topic)
        if done and all(done.get(p, 0) >= end for p, end in target.items()):
            return time.monotonic() - started
        if query.exception():
            raise RuntimeError(query.exception())
        time.sleep(0.2)
    raise TimeoutError(f"not caught up after {timeout_s}s")


def latencies_ms(settings: Settings, topic: str, since_ms: int) -> list[float]:
    """Output Kafka timestamp minus the input's Kafka timestamp (ingest_time), for outputs after since_ms."""
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": settings.registry_url}))
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"bench-{uuid.uuid4().hex}"})
    starts = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in range(PARTITIONS)], timeout=10)
    consumer.assign(starts)
    values: list[float] = []
    idle = 0
    while idle < 3:
        batch = consumer.consume(10_000, 1.0)
        idle = 0 if batch else idle + 1
        for message in batch:
            if message.error() is None:
                record = deserialize(message.value(), None)
                values.append(message.timestamp()[1] - record["ingest_time"].timestamp() * 1000)
    consumer.close()
    return values


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_config(spark: Any, settings: Settings, name: str, trigger: str, args: argparse.Namespace) -> None:
    topics = {k: f"bench.{k}.{uuid.uuid4().hex[:6]}" for k in ("events", "enriched", "dlq")}
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics.values()]).values():
        future.result(30)
    schema = load("tickflow.md.MarketEvent", settings.schemas_dir)
    schema_id = int(
        SchemaRegistryClient({"url": settings.registry_url}).register_schema(
            f"{topics['events']}-value", Schema(schema.text, "AVRO")
        )
    )
    checkpoint = Path(tempfile.mkdtemp(prefix="tickflow-bench-"))
    stream = StreamSettings(
        input_topic=topics["events"], output_topic=topics["enriched"], dlq_topic=topics["dlq"],
        trigger_interval=trigger, checkpoint_dir=checkpoint / "cp", progress_file=checkpoint / "progress.json",
        consumer_group=f"bench-{topics['events']}", max_offsets_per_trigger=args.max_offsets,
    )  # fmt: skip
    try:
        run_feed(settings, FeedConfig(rate=1e9, count=args.backlog, topic=topics["events"]), schema_id)
        backlog = end_offsets(settings, topics["events"])
        query, _ = build_query(spark, settings, stream)
        seconds = wait_caught_up(query, topics["events"], backlog, timeout_s=3600)
        print(
            f"[{name}] backlog of {args.backlog:,} drained in {seconds:.1f}s = {args.backlog / seconds:,.0f} events/s"
        )

        since_ms = int(time.time() * 1000)
        first_batch = (query.lastProgress or {}).get("batchId", 0)
        simulator = subprocess.Popen(
            [sys.executable, "-m", "tickflow.cli", "simulate", "--rate", str(args.rate),
             "--duration", str(args.seconds), "--topic", topics["events"]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        simulator.wait()
        offered = end_offsets(settings, topics["events"])
        sent = sum(offered.values()) - sum(backlog.values())
        try:
            catch_up = wait_caught_up(query, topics["events"], offered, timeout_s=args.seconds * 20)
        except TimeoutError:
            catch_up = float("inf")
        batches = [p for p in query.recentProgress if p["batchId"] > first_batch and p["numInputRows"]]
        query.stop()
        rates = [p["processedRowsPerSecond"] for p in batches]
        lat = latencies_ms(settings, topics["enriched"], since_ms)
        print(
            f"[{name}] offered {sent / args.seconds:,.0f} events/s for {args.seconds}s; stream caught up "
            f"{catch_up:.1f}s after the simulator stopped; sustained {sent / (args.seconds + catch_up):,.0f} events/s; "
            f"median batch processing rate {statistics.median(rates) if rates else 0:,.0f} rows/s "
            f"over {len(batches)} batches; "
            f"latency produce -> md.enriched p50 {percentile(lat, 0.5):,.0f} ms, p99 {percentile(lat, 0.99):,.0f} ms"
        )
    finally:
        admin.delete_topics(list(topics.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=500_000)
    parser.add_argument("--rate", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--max-offsets", type=int, default=1_000_000)
    args = parser.parse_args()
    settings = Settings()
    spark = spark_session(settings, "tickflow-bench-stream", extra=stream_conf(StreamSettings()))
    print(f"configuration: {vars(args)}, local[2], state store RocksDB, {StreamSettings().state_partitions} partitions")
    for name, trigger in (("chosen: 500 ms trigger", "500 milliseconds"), ("seed: 10 s micro-batches", "10 seconds")):
        run_config(spark, settings, name, trigger, args)
    spark.stop()


if __name__ == "__main__":
    main()
