"""The Kafka Connect HBase sink against batched writes through Thrift and a plain-Python sink, in one run.

With the stack up (Kafka, registry, HBase, Thrift, Connect with the plugin), on per-run topics
(12 partitions, deleted afterwards) and per-run instruments (``XBENCH:<run>-<n>``) in the real
``md:latest`` / ``md:history``:

  1. drain: BACKLOG EnrichedEvent records (every filled field set, as the stream publishes them) are
     produced first, then each contender writes them into HBase:
       sink      the connector (per-run name and consumer group, tickflow's deploy settings): from the
                 deploy to the last partition's last record in md:history
       thrift    the same cells, encoded beforehand, put by WORKERS processes through happybase batches
                 (md:latest conflated per 5,000 records like the sink; md:history the produced bytes as
                 they are, one cell per record): HBase behind its Thrift server with nothing of ours in
                 the way. It was the ceiling while history rows had ~46 cells; with one, the sink's native
                 client (BufferedMutator, no Thrift hop) passes it
       python    the simplest sink a user would write: one consumer, fastavro for md:latest and the row
                 key, one happybase put per cell timestamp and record, the message value as md:history's
                 one cell (on SAMPLE records, it is slow)
  2. latency: the stream's rates (RATES events/s, SECONDS each) offered to a running connector;
     records carry event_time = produce time, a sample of them is polled for in md:history; p50/p99
     from produce to the row being readable.

    .venv/bin/python -m bench.hbase_sink_bench [--backlog 200000] [--rates 5000,10000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import Any

import fastavro
import happybase
import psutil
from confluent_kafka import Producer

from bench.common import PARTITIONS, FreshTopics, consumer, fresh_topics, percentile, register_value_schema
from bench.common import producer as bench_producer
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.hbase.layout import HISTORY, HISTORY_COLUMN, LATEST, event_layout, history_cells, history_row_key
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectClient
from tickflow.sinks.hbase import HBaseSinkSettings, connector_config
from tickflow.stack import supervisor

INSTRUMENTS = 500
FILLED = {"bid_price": 1, "ask_price": 1, "last_price": 1, "close_price": 1, "reference_price": 1,
          "trade_price": 1, "bid_size": 2, "ask_size": 2, "trade_size": 2, "trade_id": 3, "trade_side": 4}  # fmt: skip


def record(instrument: str, event_time: int, n: int) -> dict[str, Any]:
    """An EnrichedEvent as the stream publishes it: every field filled, reference attributes, derived values."""
    price = 100 + (n % 97) * 0.01
    out: dict[str, Any] = {
        "instrument_id": instrument, "event_time": event_time, "event_count": 1, "enriched": True,
        "symbol": instrument.split(":")[1], "instrument_name": "Bench Corp", "exchange": "XBEN", "currency": "USD",
        "asset_class": "equity", "sector": "tech", "lot_size": 100, "tick_size": 0.01, "reference_version": 1,
        "mid": price, "spread": 0.02, "spread_bps": 2.0, "trade_notional": price * 100, "fx_rate_usd": 1.0,
        "mid_usd": price, "last_price_usd": price, "trade_notional_usd": price * 100,
        "ingest_time": event_time, "processed_time": event_time, "batch_id": n // 10_000,
    }  # fmt: skip
    for name, kind in FILLED.items():
        out[name] = {1: price, 2: 100 + n % 10, 3: f"T{n}", 4: "buy"}[kind]
        out[f"{name}_as_of"] = event_time - (n % 3) * 1000
    return out


class Run:
    """Per-run instruments, topics (``topics``: deleted when the block of :func:`per_run` is left) and connectors
    (deleted by :meth:`close`)."""

    def __init__(self, settings: Settings, topics: FreshTopics) -> None:
        self.settings = settings
        self.id = uuid.uuid4().hex[:8]
        self.instruments = [f"XBENCH:{self.id}-{n}" for n in range(INSTRUMENTS)]
        self.schema = load("tickflow.md.EnrichedEvent", settings.schemas_dir)
        self.topics = topics
        self.connectors: list[str] = []
        self.client = ConnectClient(settings.connect_urls)

    def topic(self, kind: str) -> tuple[str, Any]:
        name = self.topics.new(kind)
        schema_id = register_value_schema(self.settings, name, self.schema)
        return name, compile_encoder(self.schema.definition, prefix=confluent_prefix(schema_id))

    def deploy(self, topic: str) -> HBaseSinkSettings:
        sink = HBaseSinkSettings(name=f"bench-hbase-sink-{topic}", topic=topic, dlq_topic=f"{topic}.dlq")
        config = connector_config(self.settings, sink)
        self.connectors.append(sink.name)
        self.topics.adopt(sink.dlq_topic)
        self.client.put_config(sink.name, config)
        self.client.wait_running(sink.name, config, sink.tasks, sink.deploy_timeout_s)
        return sink

    def close(self) -> None:
        for name in self.connectors:
            self.client.delete(name)


@contextmanager
def per_run(settings: Settings) -> Iterator[Run]:
    """A :class:`Run`: its connectors deleted, then its topics, when the block is left."""
    with fresh_topics(settings, prefix="bench.hbase") as topics:
        run = Run(settings, topics)
        try:
            yield run
        finally:
            run.close()


def producer(settings: Settings) -> Producer:
    return bench_producer(settings, **{"linger.ms": 20, "batch.size": 1 << 20, "compression.type": "lz4",
                                       "enable.idempotence": True})  # fmt: skip


def backlog(run: Run, events: int) -> tuple[str, list[tuple[dict[str, Any], bytes]], dict[int, bytes]]:
    """Produce ``events`` records; returns the topic, the records with the value produced for each, and each
    partition's last history row key."""
    topic, encode = run.topic("backlog")
    out = producer(run.settings)
    records, last_row = [], {}
    base = (time.time_ns() // 1000 // 1000) * 1000 - 3_600_000_000
    for n in range(events):
        instrument = run.instruments[n % INSTRUMENTS]
        rec = record(instrument, base + (n // INSTRUMENTS) * 1000, n)
        value = encode(rec)
        records.append((rec, value))
        partition = n % INSTRUMENTS % PARTITIONS  # one instrument, one partition (as keyed by the stream)
        out.produce(topic, value, instrument, partition=partition)
        last_row[partition] = history_row_key(instrument, rec["event_time"])
        if n % 10_000 == 0:
            out.poll(0)
    assert out.flush(60) == 0
    return topic, records, last_row


@contextmanager
def cpu_of(*pids: int | None) -> Iterator[dict[str, float]]:
    """CPU seconds the given process trees spend inside the block."""
    procs = [psutil.Process(p) for p in pids if p]

    def total() -> float:
        seconds = 0.0
        for proc in procs:
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                    seconds += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        return seconds

    result: dict[str, float] = {}
    start = total()
    yield result
    result["cpu_s"] = total() - start


def rows_exist(settings: Settings, keys: list[bytes]) -> bool:
    connection = happybase.Connection(*settings.hbase_thrift_address, timeout=30_000)
    try:
        return len(connection.table(HISTORY).rows(keys, columns=[HISTORY_COLUMN])) == len(keys)
    finally:
        connection.close()


def drain_sink(run: Run, topic: str, events: int, last_rows: dict[int, bytes]) -> dict[str, Any]:
    stack = supervisor(run.settings)
    keys = list(last_rows.values())
    with cpu_of(stack.running_pid("connect"), stack.running_pid("hbase"), stack.running_pid("hbase-thrift")) as cpu:
        started = time.monotonic()
        run.deploy(topic)
        running = time.monotonic()
        while not rows_exist(run.settings, keys):
            time.sleep(0.2)
        done = time.monotonic()
    return {"events": events, "seconds": done - started, "rate": events / (done - started),
            "rate_after_start": events / (done - running), **cpu}  # fmt: skip


def _cells(records: list[tuple[dict[str, Any], bytes]], schemas_dir: str) -> tuple[list[Any], list[Any]]:
    layout = event_layout(Settings(schemas_dir=schemas_dir))  # type: ignore[arg-type]
    latest: dict[tuple[bytes, int], dict[bytes, bytes]] = {}
    history = []
    for rec, value in records:
        for ts, cells in layout.latest_cells(rec).items():
            latest.setdefault((rec["instrument_id"].encode(), ts), {}).update(cells)
        history.append(history_cells(rec, value))  # the produced bytes as they are, as the sink stores them
    return [(row, cells, ts) for (row, ts), cells in latest.items()], history


def _thrift_worker(args: tuple[str, int, list[tuple[dict[str, Any], bytes]], str]) -> float:
    host, port, records, schemas_dir = args
    chunks = [_cells(records[i : i + 5000], schemas_dir) for i in range(0, len(records), 5000)]
    connection = happybase.Connection(host, port, timeout=60_000)
    start = time.monotonic()
    for latest, history in chunks:
        with connection.table(HISTORY).batch(batch_size=1000) as batch:
            for row, cells, _ts in history:
                batch.put(row, cells)  # timestamps: happybase batches carry one per batch, so none here
        with connection.table(LATEST).batch(batch_size=1000) as batch:
            for row, cells, _ts in latest:
                batch.put(row, cells)
    connection.close()
    return time.monotonic() - start


def drain_thrift(run: Run, records: list[tuple[dict[str, Any], bytes]], workers: int) -> dict[str, Any]:
    """Puts only (cells prepared before the clock starts); the per-batch timestamp is dropped, which costs HBase
    nothing. The instruments are this run's, so nothing the sink wrote is touched twice in a way that matters."""
    host, port = run.settings.hbase_thrift_address
    shards = [[r for r in records if hash(r[0]["instrument_id"]) % workers == w] for w in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        seconds = max(pool.map(_thrift_worker, [(host, port, s, str(run.settings.schemas_dir)) for s in shards]))
    return {"events": len(records), "seconds": seconds, "rate": len(records) / seconds}


def drain_python(run: Run, topic: str, sample: int) -> dict[str, Any]:
    """One consumer, fastavro decode, a happybase put per (record, cell timestamp), the value as history's cell:
    what a user writes first."""
    settings = run.settings
    layout = event_layout(settings)
    parsed = fastavro.parse_schema(run.schema.definition)
    reader = consumer(settings, f"bench-python-{run.id}", **{"auto.offset.reset": "earliest",
                                                             "enable.auto.commit": False})  # fmt: skip
    reader.subscribe([topic])
    connection = happybase.Connection(*settings.hbase_thrift_address, timeout=60_000)
    latest, history = connection.table(LATEST), connection.table(HISTORY)
    done, start = 0, time.monotonic()
    while done < sample:
        for message in reader.consume(500, 1.0):
            if message.error() or done >= sample:
                continue
            value = message.value() or b""
            rec: dict[str, Any] = fastavro.schemaless_reader(  # type: ignore[assignment]
                BytesIO(value[5:]), parsed, parsed
            )
            row = rec["instrument_id"].encode()
            for ts, cells in layout.latest_cells(rec).items():
                latest.put(row, cells, timestamp=ts)
            key, cells, ts = history_cells(rec, value)
            history.put(key, cells, timestamp=ts)
            done += 1
    seconds = time.monotonic() - start
    reader.close()
    connection.close()
    return {"events": done, "seconds": seconds, "rate": done / seconds}


def latency(run: Run, rate: int, seconds: int) -> dict[str, Any]:
    """Offer ``rate`` records/s to a running connector; sample ~20 records/s and time their history rows."""
    topic, encode = run.topic(f"latency{rate}")
    run.deploy(topic)
    out = bench_producer(run.settings, **{"linger.ms": 5, "compression.type": "lz4", "enable.idempotence": True})
    connection = happybase.Connection(*run.settings.hbase_thrift_address, timeout=30_000)
    table = connection.table(HISTORY)
    # A running connector is what is measured: wait until its tasks have joined the group and write
    # (the broker delays a new group's first assignment by 3 s), not the deploy.
    warm_us = time.time_ns() // 1000
    out.produce(topic, encode(record(run.instruments[0], warm_us, 0)), run.instruments[0], partition=0)
    out.flush(30)
    warm_deadline = time.monotonic() + 120
    while not table.row(history_row_key(run.instruments[0], warm_us), columns=[HISTORY_COLUMN]):
        assert time.monotonic() < warm_deadline, "the connector wrote nothing within 120 s"
        time.sleep(0.1)
    samples: list[tuple[bytes, float]] = []
    stop = threading.Event()
    every = max(1, rate // 20)

    def produce() -> None:
        start, n = time.monotonic(), 0
        while not stop.is_set():
            now_us = time.time_ns() // 1000
            instrument = run.instruments[n % INSTRUMENTS]
            rec = record(instrument, now_us, n)
            out.produce(topic, encode(rec), instrument, partition=n % INSTRUMENTS % PARTITIONS)
            if n % every == 0:
                samples.append((history_row_key(instrument, now_us), time.monotonic()))
            n += 1
            if n % 100 == 0:
                out.poll(0)
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
        out.flush(30)
        produced.append(n / (time.monotonic() - start))

    produced: list[float] = []
    thread = threading.Thread(target=produce)
    thread.start()
    found: dict[bytes, float] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline + 10:
        if time.monotonic() >= deadline:
            stop.set()
        pending = [key for key, _ in samples if key not in found]
        if not pending and stop.is_set():
            break
        now = time.monotonic()
        for row, _ in table.rows(pending[:200], columns=[HISTORY_COLUMN]):
            found[row] = now
        time.sleep(0.02)
    stop.set()
    thread.join()
    connection.close()
    warm = [s for s in samples if s[1] > samples[0][1] + 3.0]  # the first seconds include the tasks' first fetch
    lat = sorted((found[key] - sent) * 1000 for key, sent in warm if key in found)
    lost = sum(1 for key, _ in warm if key not in found)
    return {"rate": rate, "offered": produced[0] if produced else 0, "samples": len(lat), "not_seen": lost,
            "p50_ms": statistics.median(lat) if lat else None,
            "p99_ms": percentile(lat, 0.99) if lat else None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--python-sample", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="processes of the happybase contender")
    parser.add_argument("--rates", default="5000,10000")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()

    settings = Settings()
    sink = HBaseSinkSettings()
    print(f"config: backlog {args.backlog} records, {PARTITIONS} partitions, {INSTRUMENTS} instruments; "
          f"sink tasks {sink.tasks}, max.poll.records {sink.max_poll_records}, "
          f"flush every {sink.flush_interval_ms} ms, write buffer {sink.write_buffer_bytes} B; "
          f"{os.cpu_count()} cores shared with the whole stack")  # fmt: skip
    with per_run(settings) as run:
        topic, records, last_rows = backlog(run, args.backlog)
        print(f"produced {len(records)} records to {topic}")
        result = drain_sink(run, topic, len(records), last_rows)
        print(f"sink     drain: {result['rate']:>9,.0f} events/s ({result['seconds']:.1f} s from deploy; "
              f"{result['rate_after_start']:,.0f}/s after tasks ran); Connect+HBase+Thrift CPU "
              f"{result['cpu_s'] * 1000 / result['events']:.2f} s per 1k events")  # fmt: skip
        thrift = drain_thrift(run, records, args.workers)
        print(f"thrift   drain: {thrift['rate']:>9,.0f} events/s (happybase batches, {args.workers} processes, "
              f"cells prepared beforehand); sink/thrift = {result['rate'] / thrift['rate']:.2f}")  # fmt: skip
        python = drain_python(run, topic, args.python_sample)
        print(f"python   drain: {python['rate']:>9,.0f} events/s (one consumer, a put per record, "
              f"{python['events']} records); sink/python = {result['rate'] / python['rate']:.1f}")  # fmt: skip
        stack = supervisor(settings)
        for rate in (int(r) for r in args.rates.split(",")):
            with cpu_of(stack.running_pid("connect"), stack.running_pid("hbase")) as cpu:
                lat = latency(run, rate, args.seconds)
            p50 = f"{lat['p50_ms']:.0f}" if lat["p50_ms"] is not None else "-"
            p99 = f"{lat['p99_ms']:.0f}" if lat["p99_ms"] is not None else "-"
            print(
                f"latency at {rate:>6} events/s (offered {lat['offered']:,.0f}/s): md.enriched -> md:history "
                f"p50 {p50} ms, p99 {p99} ms ({lat['samples']} samples, {lat['not_seen']} not seen in time); "
                f"Connect+HBase {cpu['cpu_s'] / max(1.0, lat['offered'] * args.seconds) * 1000:.3f} CPU s per 1k "
                "events (warm-up included)"
            )


if __name__ == "__main__":
    random.seed(0)
    main()
