"""The enrichment stream against Spark's own Kafka ceiling and two baselines, in one run.

On fresh topics (12 partitions, deleted afterwards), with the stack up and reference data loaded:

  1. drain: BACKLOG simulated events are produced first, then each contender drains them (after a round of both
     streams that warms the JIT):
       ceiling   Spark with nothing of ours: Kafka read -> from_avro -> to_avro -> Kafka write
                 (producer batch.size 512 KiB, linger.ms 20, as the stream's sink)
       stream    tickflow's enrichment stream (decode, validate, fill, state, enrich, publish exactly once: a
                 Kafka transaction per task)
       stream-alo the same stream publishing through Spark's Kafka sink, at-least-once (what exactly-once
                 costs is the difference)
       seed      the seed's design written literally (bench/baselines.py): 10 s trigger, window
                 last-non-null fill, latest row per instrument in driver memory
       python    a plain-Python peer (bench/baselines.py): one consumer, fastavro, the same fill
     printing events/s, the ratio to the ceiling, and CPU seconds per 1,000 events (the Spark JVM
     and its Python workers, or the peer's process);
  2. sustained: the simulator (a separate process on this machine) offers each of RATES events/s
     for SECONDS to the running stream; the rate is held when the lag does not grow (slope of
     the lag over the window's second half < 2% of the rate) and the stream catches up at once;
  3. latency: p50/p99 from produce (input Kafka timestamp, carried as ingest_time) to the output
     record's Kafka timestamp, with the simulator offering LATENCY_RATE events/s, for the stream (both sinks),
     the seed's design and the Python peer; a transactional record's timestamp is its send, and it becomes
     visible at its task's commit, which the outputs are read after (read_committed);
  4. scaling: the stream's drain with local[1] (a second Spark application) against local[2].

    .venv/bin/python -m bench.stream_bench [--backlog 1000000] [--rates 20000,30000,40000]
        [--seconds 60] [--latency-rate 5000] [--plot docs/performance.png]

Prints the configuration and every figure; --plot writes throughput and latency per design.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from bench import baselines
from bench.common import (
    BENCH_PRINCIPAL,
    PARTITIONS,
    FreshTopics,
    consumer,
    fresh_topics,
    percentile,
    register_value_schema,
    spark_kafka,
)
from tickflow.schemas import load
from tickflow.settings import REPO_ROOT, Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.spark import kafka_reader, spark_session
from tickflow.stream.app import build_query, spark_conf
from tickflow.stream.settings import StreamSettings

MARKET_EVENT = "tickflow.md.MarketEvent"
SINK_OPTIONS = {"kafka.linger.ms": "20", "kafka.batch.size": str(512 * 1024), "kafka.compression.type": "lz4"}


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (the Spark JVM and its Python workers)."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def spark_pid(spark: Any) -> int:
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def events_topic(settings: Settings, topics: FreshTopics, backlog: int) -> tuple[str, int]:
    """A new input topic of the run with ``backlog`` simulated events already in it; returns (topic, schema id)."""
    topic = topics.new("events")
    schema_id = register_value_schema(settings, topic, load(MARKET_EVENT, settings.schemas_dir))
    if backlog:
        run_feed(settings, FeedConfig(rate=1e9, count=backlog, topic=topic), schema_id)
    return topic, schema_id


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    return baselines.end_offsets(settings, topic)


def processed(query: Any, topic: str) -> dict[int, int]:
    return baselines.processed_offsets(query, topic)


def wait_for(query: Any, topic: str, target: dict[int, int], timeout_s: float) -> float:
    return baselines.wait_drained(query, topic, target, timeout_s)


def stream_settings(
    topics: FreshTopics, events: str, trigger: str | None = None, exactly_once: bool = True
) -> StreamSettings:
    folder = Path(tempfile.mkdtemp(prefix="tickflow-bench-"))
    return StreamSettings(
        input_topic=events, output_topic=topics.new("enriched"), dlq_topic=topics.new("dlq"),
        checkpoint_dir=folder / "checkpoint", progress_file=folder / "progress.json",
        consumer_group=f"bench-{events}", exactly_once=exactly_once,
        **({"trigger_interval": trigger} if trigger else {}),
    )  # fmt: skip


def drained(name: str, events: int, seconds: float, cpu: float) -> dict[str, Any]:
    result = {"name": name, "events": events, "seconds": seconds, "rate": events / seconds,
              "cpu_per_1000": cpu / events * 1000}  # fmt: skip
    print(f"  drain {name:8s} {result['rate']:>9,.0f} events/s  ({seconds:5.1f} s, "
          f"{result['cpu_per_1000']:.3f} CPU s per 1,000 events)", flush=True)  # fmt: skip
    return result


def drain_ceiling(spark: Any, settings: Settings, topics: FreshTopics, events: str, backlog: int) -> dict[str, Any]:
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro, to_avro

    text = load(MARKET_EVENT, settings.schemas_dir).text
    out = topics.new("ceiling")
    raw = kafka_reader(
        spark, settings, events, principal=BENCH_PRINCIPAL, group_id_prefix="tickflow-bench", streaming=False
    ).load()
    record = from_avro(F.expr("substring(value, 6)"), text)
    frame = raw.select("key", F.concat(F.expr("substring(value, 1, 5)"), to_avro(record, text)).alias("value"))
    writer = frame.write.format("kafka").options(**spark_kafka(settings))
    for key, value in SINK_OPTIONS.items():
        writer = writer.option(key, value)
    cpu, started = tree_cpu_seconds(spark_pid(spark)), time.monotonic()
    writer.option("topic", out).save()
    return drained("ceiling", backlog, time.monotonic() - started, tree_cpu_seconds(spark_pid(spark)) - cpu)


def drain_stream(
    spark: Any, settings: Settings, topics: FreshTopics, events: str, backlog: int, exactly_once: bool = True
) -> dict[str, Any]:
    stream = stream_settings(topics, events, exactly_once=exactly_once)
    target = end_offsets(settings, events)
    cpu = tree_cpu_seconds(spark_pid(spark))
    query, _ = build_query(spark, settings, stream)
    try:
        seconds = wait_for(query, events, target, 3600)
    finally:
        query.stop()
    name = "stream" if exactly_once else "stream-alo"
    return drained(name, backlog, seconds, tree_cpu_seconds(spark_pid(spark)) - cpu)


def seed_query(spark: Any, settings: Settings, topics: FreshTopics, events: str) -> Any:
    baselines.bind_hive_reference(spark)  # the seed reads the Hive views every batch
    folder = tempfile.mkdtemp(prefix="tickflow-bench-seed-")
    return baselines.start_seed_design(spark, settings, events, topics.new("seed"), folder)


def drain_seed(spark: Any, settings: Settings, topics: FreshTopics, events: str, backlog: int) -> dict[str, Any]:
    target = end_offsets(settings, events)
    cpu = tree_cpu_seconds(spark_pid(spark))
    query = seed_query(spark, settings, topics, events)
    try:
        seconds = wait_for(query, events, target, 3600)
    finally:
        query.stop()
    return drained("seed", backlog, seconds, tree_cpu_seconds(spark_pid(spark)) - cpu)


def drain_python(settings: Settings, topics: FreshTopics, events: str, backlog: int) -> dict[str, Any]:
    target = end_offsets(settings, events)
    me = psutil.Process()
    cpu = sum(me.cpu_times()[:2])
    result = baselines.run_python_peer(
        settings, events, topics.new("python"), stop_at_offsets=target, duration_s=None, progress=lambda _: None
    )
    return drained("python", backlog, result["seconds"], sum(me.cpu_times()[:2]) - cpu)


@contextmanager
def simulator(topic: str, rate: int, seconds: int) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "tickflow.cli", "simulate", "--rate", str(rate), "--duration", str(seconds),
               "--topic", topic]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def latencies_ms(settings: Settings, topic: str, skip_first_s: float = 5.0) -> list[float]:
    """Output Kafka timestamp minus ingest_time for every output record (after the first seconds)."""
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    deserialize = AvroDeserializer(SchemaRegistryClient(settings.registry_client_config))
    reader = consumer(settings, f"bench-{uuid.uuid4().hex}", **{"auto.offset.reset": "earliest"})
    reader.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    pairs: list[tuple[float, float]] = []
    idle = 0
    while idle < 3:
        batch = reader.consume(10_000, 1.0)
        idle = 0 if batch else idle + 1
        for message in batch:
            if message.error() is None:
                ingest = deserialize(message.value(), None)["ingest_time"].timestamp() * 1000
                pairs.append((ingest, message.timestamp()[1] - ingest))
    reader.close()
    if not pairs:
        return []
    first = min(p[0] for p in pairs)
    return [latency for ingest, latency in pairs if ingest - first >= skip_first_s * 1000]


def measure_latency(
    name: str, settings: Settings, topics: FreshTopics, rate: int, seconds: int, start: Callable[[str], tuple[str, Any]]
) -> dict[str, Any]:
    """``start(events topic)`` starts a contender and returns (its output topic, a stop function)."""
    events, _ = events_topic(settings, topics, 0)
    output, stop = start(events)
    time.sleep(15)  # the contender is up and idle
    with simulator(events, rate, seconds) as feed:
        feed.wait()
    time.sleep(12)  # the last records arrive (the seed's design waits for its 10 s trigger)
    stop()
    values = latencies_ms(settings, output)
    result = {"name": name, "rate": rate, "p50_ms": percentile(values, 0.5), "p99_ms": percentile(values, 0.99),
              "records": len(values)}  # fmt: skip
    print(f"  latency {name:8s} at {rate:,}/s offered: p50 {result['p50_ms']:,.0f} ms, p99 {result['p99_ms']:,.0f} ms "
          f"({len(values):,} records)", flush=True)  # fmt: skip
    return result


def lag(settings: Settings, query: Any, topic: str) -> int:
    done = processed(query, topic)
    return sum(end - done.get(p, 0) for p, end in end_offsets(settings, topic).items())


def slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def sustained(
    spark: Any, settings: Settings, topics: FreshTopics, rates: list[int], seconds: int
) -> list[dict[str, Any]]:
    """Each rate on a fresh topic against a running stream; held when the lag does not grow."""
    results = []
    for rate in rates:
        events, _ = events_topic(settings, topics, 0)
        query, _ = build_query(spark, settings, stream_settings(topics, events))
        time.sleep(10)
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        with simulator(events, rate, seconds) as feed:
            while feed.poll() is None:
                samples.append((time.monotonic() - started, lag(settings, query, events)))
                time.sleep(1)
        offered = sum(end_offsets(settings, events).values())
        elapsed = time.monotonic() - started
        try:
            catch_up = wait_for(query, events, end_offsets(settings, events), 120)
        except TimeoutError:
            catch_up = float("inf")
        query.stop()
        growth = slope([s for s in samples if s[0] >= elapsed / 2])
        held = growth < 0.02 * rate and catch_up < 10
        result = {"rate": rate, "offered": offered / elapsed, "lag_growth_per_s": growth, "catch_up_s": catch_up,
                  "held": held}  # fmt: skip
        print(f"  sustain {rate:>7,}/s: achieved offer {result['offered']:,.0f}/s, lag grows {growth:,.0f}/s, "
              f"caught up {catch_up:.1f} s after -> {'held' if held else 'NOT held'}", flush=True)  # fmt: skip
        results.append(result)
        if not held:
            break
    return results


def drain_in_child(master: str, backlog: int) -> dict[str, Any]:
    """The stream's drain in a separate Spark application with another master (local[1])."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.stream_bench", "--only-drain", "--master", master, "--backlog", str(backlog)],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )  # fmt: skip
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drains = results["drain"]
    lat = results["latency"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [d["name"] for d in drains]
    colors = ["grey", "tab:blue", "tab:cyan", "tab:orange", "tab:green"]
    left.bar(names, [d["rate"] / 1000 for d in drains], color=colors)
    left.set_ylabel("thousand events/s")
    left.set_title(f"Drain of a {drains[0]['events']:,}-event backlog (2 cores)")
    right.bar([f"{x['name']} p50" for x in lat], [x["p50_ms"] for x in lat], color="tab:blue")
    right.bar([f"{x['name']} p99" for x in lat], [x["p99_ms"] for x in lat], color="tab:red")
    right.set_yscale("log")
    right.set_ylabel("ms, produce -> output (log)")
    right.set_title(f"Latency at {lat[0]['rate']:,} events/s offered" if lat else "Latency")
    right.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--rates", default="20000,30000,40000,50000")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--latency-rate", type=int, default=5000)
    parser.add_argument("--latency-seconds", type=int, default=30)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--skip", default="", help="Comma-separated sections to skip: baselines,sustain,latency,scaling"
    )
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--only-drain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    settings = Settings()
    with fresh_topics(settings) as topics:
        spark = spark_session(
            settings,
            "tickflow-bench",
            master=args.master,
            extra=spark_conf(StreamSettings()),
            java_options=StreamSettings().java_options,
        )
        results: dict[str, Any] = {"drain": [], "latency": [], "sustained": []}
        try:
            if args.only_drain:
                events, _ = events_topic(settings, topics, args.backlog)
                with open(os.devnull, "w") as quiet, redirect_stdout(quiet):
                    result = drain_stream(spark, settings, topics, events, args.backlog)
                print(json.dumps(result))
                return
            print(f"configuration: backlog {args.backlog:,}, {args.master}, {PARTITIONS} partitions, "
                  f"stream {StreamSettings().model_dump(include={'trigger_interval', 'max_offsets_per_trigger'})}, "
                  f"sink {SINK_OPTIONS}, machine {psutil.cpu_count()} cores", flush=True)  # fmt: skip
            events, _ = events_topic(settings, topics, args.backlog)
            # A round that warms the JIT first: whichever drained first would otherwise pay for it alone.
            print("  warm-up round (not kept):", flush=True)
            for exactly_once in (True, False):
                drain_stream(spark, settings, topics, events, args.backlog, exactly_once=exactly_once)
            results["drain"].append(drain_ceiling(spark, settings, topics, events, args.backlog))
            results["drain"].append(drain_stream(spark, settings, topics, events, args.backlog))
            results["drain"].append(drain_stream(spark, settings, topics, events, args.backlog, exactly_once=False))
            if "baselines" not in skip:
                results["drain"].append(drain_seed(spark, settings, topics, events, args.backlog))
                results["drain"].append(drain_python(settings, topics, events, args.backlog))
            ceiling = results["drain"][0]["rate"]
            for d in results["drain"][1:]:
                print(f"  {d['name']:8s} drains at {d['rate'] / ceiling:.2f} of the ceiling")
            if "latency" not in skip:
                results["latency"].append(latency_stream(spark, settings, topics, args))
                results["latency"].append(latency_stream(spark, settings, topics, args, exactly_once=False))
                if "baselines" not in skip:
                    results["latency"].append(latency_seed(spark, settings, topics, args))
                    results["latency"].append(latency_python(settings, topics, args))
            if "sustain" not in skip:
                rates = [int(r) for r in args.rates.split(",")]
                results["sustained"] = sustained(spark, settings, topics, rates, args.seconds)
            if "scaling" not in skip:
                one = drain_in_child("local[1]", args.backlog)
                two = results["drain"][1]
                print(f"  scaling: local[1] {one['rate']:,.0f}/s, local[2] {two['rate']:,.0f}/s "
                      f"({two['rate'] / one['rate']:.2f}x); at {two['cpu_per_1000']:.3f} CPU s per 1,000 events, "
                      f"100k events/s needs {two['cpu_per_1000'] * 100:.1f} cores busy")  # fmt: skip
                results["scaling"] = {"local[1]": one, "local[2]": two}
        finally:
            spark.stop()
    if args.plot:
        plot(results, args.plot)
    print(json.dumps(results, default=str))


def latency_stream(
    spark: Any, settings: Settings, topics: FreshTopics, args: argparse.Namespace, exactly_once: bool = True
) -> dict[str, Any]:
    def start(events: str) -> tuple[str, Any]:
        stream = stream_settings(topics, events, exactly_once=exactly_once)
        query, _ = build_query(spark, settings, stream)
        return stream.output_topic, query.stop

    name = "stream" if exactly_once else "stream-alo"
    return measure_latency(name, settings, topics, args.latency_rate, args.latency_seconds, start)


def latency_seed(spark: Any, settings: Settings, topics: FreshTopics, args: argparse.Namespace) -> dict[str, Any]:
    def start(events: str) -> tuple[str, Any]:
        query = seed_query(spark, settings, topics, events)
        return topics.names[-1], query.stop

    return measure_latency("seed", settings, topics, args.latency_rate, args.latency_seconds, start)


def latency_python(settings: Settings, topics: FreshTopics, args: argparse.Namespace) -> dict[str, Any]:
    def start(events: str) -> tuple[str, Any]:
        output = topics.new("python")
        duration = 15 + args.latency_seconds + 10
        worker = threading.Thread(
            target=baselines.run_python_peer,
            args=(settings, events, output),
            kwargs={"stop_at_offsets": None, "duration_s": duration, "progress": lambda _: None},
            daemon=True,
        )
        worker.start()
        return output, worker.join  # the peer stops by itself after its duration

    return measure_latency("python", settings, topics, args.latency_rate, args.latency_seconds, start)


if __name__ == "__main__":
    main()
