"""Trades from booking in PostgreSQL to md.events through Debezium, against the engines alone and a Python poller.

With the stack up and the trades connector running (``tickflow connect deploy trades``). Every booking run has
trade ids of its own (``<MIC>-<run start ms>-<n>``), found in the records' bytes; only inserts are booked (no
corrections or cancels), so a run is complete when the topic holds as many of its records as were booked.
Every consumer reads read_committed from the end offsets taken before its run.

  1. connector (what we ship): ``book`` (a thread of this process) offers each of RATES trades/s for SECONDS,
     then books unthrottled, while the running connector streams to md.events. Per rate: booked/s,
     delivered/s while booking, lag when booking stopped, drain time after it, and latency p50/p99 on every
     SAMPLE-th record: when the consumer saw it minus when ``book`` was due to book it (its booked_at, shifted
     by ``book``'s start-up). Kept up: booked at 95% of the offer and all delivered within 2 s of the stop.
  2. ceiling: (a) BACKLOG trades, generated beforehand, COPYed in 20,000-row transactions (``book``'s largest)
     with the connector paused: PostgreSQL alone; (b) the connector resumed: Debezium's drain of that backlog.
     It includes tickflow's SMT and converter (Debezium cannot write a MarketEvent without them), and a paused
     task's Debezium fills its queue (8,192 changes) ahead, so the drain starts slightly ahead.
  3. baseline: what a user writes instead, a Python poller in its own process: SELECT ... WHERE change_seq >
     last ORDER BY change_seq LIMIT 10000, again at once after a full page, else after 50 ms (the connector's
     poll interval), a MarketEvent per row with the repo's compiled Avro encoder, confluent_kafka to a per-run
     topic. The table has no index on change_seq (DDL on the shared table deadlocks other bookers), so every
     poll scans it: "pg cores" shows the cost. It drains the same backlog, then is offered the same rates. It
     is not exactly once: a restart re-sends or loses what it produced since it last saved its position, it
     misses deletes, and it skips a row whose transaction commits after a higher change_seq was read
     (concurrent bookers). The connector keeps streaming the same trades to md.events meanwhile.

"cores": CPU of the pipeline's process (the Connect worker, the poller); "pg cores": of every PostgreSQL
process (the walsender, the poller's queries, but also the booking and anybody else's queries), over the run.
"per txn": trades per Kafka transaction, estimated from the gaps that transaction markers leave in the offsets.

    .venv/bin/python -m bench.trades_bench [--rates 2000,5000,10000] [--seconds 20] [--backlog 100000]
        [--sample 10] [--timeout 300]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from io import BytesIO
from typing import Any

import fastavro
import httpx
import psutil
from confluent_kafka import Producer, TopicPartition

from bench.common import consumer, fresh_topics, percentile, register_value_schema
from tickflow.avro_codec import compile_encoder, confluent_prefix, to_micros
from tickflow.errors import TickflowError
from tickflow.schemas import TOPIC_SCHEMAS, load
from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectClient
from tickflow.sources.feed import producer_config
from tickflow.sources.simulator import Source, generators
from tickflow.sources.trade_capture import COPY_SQL, SCHEMA, TABLE, Booker, BookingConfig, book, trades_connection
from tickflow.sources.trades_connector import TradesSourceSettings
from tickflow.sources.universe import build_universe
from tickflow.stack import supervisor
from tickflow.topics import EVENTS

UNTHROTTLED = 1e9  # trades/s offered to book(): every transaction takes max_batch trades
MARKET_EVENT = TOPIC_SCHEMAS[EVENTS.name]
POLL_LIMIT, POLL_IDLE_S = 10_000, 0.05
POLL_SQL = (f"SELECT trade_id, instrument_id, booked_at, price, size, side, version, change_seq FROM {TABLE} "
            f"WHERE change_seq > %s ORDER BY change_seq LIMIT {POLL_LIMIT}")  # fmt: skip


class Reader:
    """A read_committed consumer from the topic's current end: counts one run's records, samples latencies."""

    def __init__(self, settings: Settings, topic: str, run: int, sample: int) -> None:
        self.consumer = consumer(settings, f"bench-{uuid.uuid4()}", **{"isolation.level": "read_committed",
                                                                        "enable.auto.commit": False})  # fmt: skip
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        self.consumer.assign([TopicPartition(topic, p, offset) for p, offset in ends.items()])
        self.marker, self.sample = f"-{run}-".encode(), sample
        self.parsed = fastavro.parse_schema(load(MARKET_EVENT, settings.schemas_dir).definition)
        self.count, self.last, self.gaps = 0, {p: o - 1 for p, o in ends.items()}, Counter[int]()
        self.seen: list[tuple[int, int]] = []  # (event_time, seen) in µs, every sample-th record
        self.timeline = [(time.monotonic(), 0)]
        self.read(1.0)  # connected and fetching before the first trade is booked

    def read(self, timeout_s: float = 0.01) -> int:
        """One batch; a short timeout, since consume() waits for it unless 10,000 records come first."""
        messages = self.consumer.consume(10_000, timeout_s)
        seen_us = time.time_ns() // 1000
        for message in messages:
            value = message.value()
            if message.error() is None and value and self.marker in value:
                self.count += 1
                partition, offset = message.partition() or 0, message.offset() or 0
                self.gaps[partition] += offset != self.last[partition] + 1
                self.last[partition] = offset
                if self.count % self.sample == 0:
                    record: Any = fastavro.schemaless_reader(BytesIO(value[5:]), self.parsed, self.parsed)
                    self.seen.append((to_micros(record["event_time"]), seen_us))
        self.timeline.append((time.monotonic(), self.count))
        return self.count

    def per_transaction(self) -> float | None:
        """Records per Kafka transaction: a batch of thousands touches every partition, each leaving a marker."""
        transactions = max(self.gaps.values(), default=0)
        return self.count / transactions if transactions else None

    def crossed(self, since: float, every_s: float = 5.0) -> bool:
        """True when the last read crossed a multiple of ``every_s`` after ``since`` (a progress line is due)."""
        (before, _), (after, _) = self.timeline[-2:]
        return max(0.0, before - since) // every_s != (after - since) // every_s

    def count_at(self, moment: float) -> int:
        return max(count for at, count in self.timeline if at <= moment)

    def wait_for(self, expected: int, timeout_s: float, label: str) -> float | None:
        """Read until ``expected`` records arrived; the moment they had, or None after the timeout."""
        started = time.monotonic()
        while self.read() < expected:
            if (now := time.monotonic()) > started + timeout_s:
                return None
            if self.crossed(started):
                print(f"    {label}: {now - started:5.0f} s, {self.count:,} of {expected:,} arrived", flush=True)
        return self.timeline[-1][0]


class Busy:
    """Cores that processes and their descendants keep busy from now on; a child that exits meanwhile (a
    PostgreSQL backend, a parallel worker of the poller's scan) counts through its parent's children times."""

    def __init__(self, *pids: int | None) -> None:
        self.pids, self.started = pids, time.monotonic()
        self.cpu = [self.seconds(pid) for pid in pids]

    @staticmethod
    def seconds(pid: int | None) -> float:
        total = 0.0
        with suppress(psutil.NoSuchProcess):
            for process in [root := psutil.Process(pid), *root.children(recursive=True)] if pid else []:
                with suppress(psutil.NoSuchProcess):
                    total += sum(process.cpu_times()[:4])  # user, system, children_user, children_system
        return total

    def cores(self) -> list[float]:
        elapsed = time.monotonic() - self.started
        return [(self.seconds(pid) - cpu) / elapsed for pid, cpu in zip(self.pids, self.cpu, strict=True)]


def measure(settings: Settings, label: str, topic: str, rate: int | None, pids: tuple[int | None, int | None],
            args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Book at ``rate`` (None: unthrottled) for ``--seconds`` while the pipeline (``pids``: its process and
    PostgreSQL) fills ``topic``; the figures of one row, CPU from the start of booking to the last record."""
    start_us = time.time_ns() // 1000
    reader = Reader(settings, topic, start_us // 1000, args.sample)
    config = BookingConfig(rate=rate or UNTHROTTLED, duration_s=args.seconds, start_us=start_us)
    state: dict[str, Any] = {}

    def report(stats: Any, _rate: float) -> None:
        state.setdefault("started_us", time.time_ns() // 1000 - int(stats.seconds * 1e6))
        state["booked"] = stats.booked

    def booking() -> None:
        try:
            state["stats"] = book(settings, config, report)
        finally:
            state["stopped"] = time.monotonic()

    thread = threading.Thread(target=booking, daemon=True)
    thread.start()
    busy = Busy(*pids)
    while thread.is_alive():
        reader.read()
        if reader.crossed(busy.started):
            print(f"    {label}: {time.monotonic() - busy.started:5.0f} s, booked {state.get('booked', 0):,}, "
                  f"arrived {reader.count:,}", flush=True)  # fmt: skip
    if "stats" not in state:
        raise TickflowError(f"Booking for {label} failed (traceback above): is PostgreSQL up?")
    stats, stopped = state["stats"], state["stopped"]
    done = reader.wait_for(stats.booked, args.timeout, f"{label} drain")
    cores, pg_cores = busy.cores()
    reader.consumer.close()
    shift = state["started_us"] - start_us  # book()'s connection and DDL before its first slice
    latencies = [(seen - event_time - shift) / 1000 for event_time, seen in reader.seen] if rate else []
    drain = None if done is None else max(0.0, done - stopped)
    p50, p99 = (percentile(latencies, 0.5), percentile(latencies, 0.99)) if latencies else (None, None)
    row = {"label": label, "offered": rate, "booked": stats.rate, "delivered": reader.count_at(stopped) / stats.seconds,
           "lag": stats.booked - reader.count_at(stopped), "drain": drain, "p50": p50,
           "p99": p99, "cores": cores, "pg_cores": pg_cores,
           "per_txn": reader.per_transaction()}  # fmt: skip
    row["kept"] = drain is not None and drain <= 2.0 and (rate is None or stats.rate >= 0.95 * rate)
    latency = f"; p50 {row['p50']:,.0f} ms, p99 {row['p99']:,.0f} ms ({len(latencies):,} samples)" if latencies else ""
    drained = "not drained" if drain is None else f"drained {drain:.1f} s after"
    print(f"  {label}: booked {stats.booked:,} at {stats.rate:,.0f}/s, {reader.count:,} arrived, "
          f"lag at stop {row['lag']:,}, {drained}{latency}", flush=True)  # fmt: skip
    return row


def connector_state(client: ConnectClient, name: str, action: str, state: str, timeout_s: float = 60) -> None:
    """``PUT /connectors/<name>/<action>`` (pause or resume), then wait until connector and tasks are ``state``."""
    httpx.put(f"{client.url}/connectors/{name}/{action}", timeout=client.timeout_s).raise_for_status()
    deadline = time.monotonic() + timeout_s
    while (status := client.status(name)) is None or {status.state, *(t.state for t in status.tasks)} != {state}:
        if time.monotonic() > deadline:
            raise TickflowError(f"Connector {name} was not {state} {timeout_s:.0f} s after {action}: {status}.")
        time.sleep(0.2)


def ceiling(settings: Settings, client: ConnectClient, name: str, pids: tuple[int | None, int | None],
            args: argparse.Namespace) -> list[dict[str, Any]]:  # fmt: skip
    """COPY of a backlog with the connector paused, then the connector's drain of it; returns the two rows."""
    start_us, config = time.time_ns() // 1000, BookingConfig(rate=UNTHROTTLED)
    universe = build_universe(config.instruments, config.seed)
    (generator,) = generators(universe, {Source.TRADES: config.rate}, start_us, config.seed)
    booker = Booker(generator, config)
    texts = [booker.copy_text(generator.batch(min(config.max_batch, args.backlog - n)))[0]
             for n in range(0, args.backlog, config.max_batch)]  # fmt: skip
    reader = Reader(settings, EVENTS.name, start_us // 1000, args.sample)
    try:
        connector_state(client, name, "pause", "PAUSED")
        with trades_connection(settings) as connection:
            started = time.monotonic()
            for text in texts:
                with connection.transaction(), connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
                    copy.write(text)
            copy_s = time.monotonic() - started
    finally:
        busy = Busy(*pids)
        connector_state(client, name, "resume", "RUNNING")
    print(f"  COPY alone: {args.backlog:,} trades in {copy_s:.1f} s ({args.backlog / copy_s:,.0f}/s)", flush=True)
    done = reader.wait_for(args.backlog, args.timeout, "Debezium drain")
    cores, pg_cores = busy.cores()
    reader.consumer.close()
    drain = None if done is None else args.backlog / (done - busy.started)
    print(f"  Debezium drain: {reader.count:,} of {args.backlog:,} in md.events, "
          f"{'-' if drain is None else f'{drain:,.0f}/s'} from the resume", flush=True)  # fmt: skip
    return [{"label": f"ceiling: COPY alone, {args.backlog:,} backlog", "booked": args.backlog / copy_s},
            {"label": "ceiling: connector's drain of it", "delivered": drain, "cores": cores, "pg_cores": pg_cores,
             "per_txn": reader.per_transaction(), "run": start_us // 1000}]  # fmt: skip


def poll_trades(topic: str, schema_id: int, after: int, ready: Any, go: Any, stop: Any, results: Any) -> None:
    """The baseline, in a process of its own: poll the table by change_seq, produce a MarketEvent per row."""
    settings = Settings()
    encode = compile_encoder(load(MARKET_EVENT, settings.schemas_dir).definition, ("instrument_id",),
                             confluent_prefix(schema_id))  # fmt: skip
    producer = Producer(producer_config(settings))
    polls, query_s, last = 0, 0.0, after
    with trades_connection(settings) as connection:
        ready.set()
        go.wait(300)
        while not stop.is_set():
            started = time.monotonic()
            rows = connection.execute(POLL_SQL, (last,)).fetchall()
            query_s, polls = query_s + time.monotonic() - started, polls + 1
            for trade_id, instrument_id, booked_at, price, size, side, version, change_seq in rows:
                event = {"event_id": f"{trade_id}#v{version}", "instrument_id": instrument_id, "source": "trades",
                         "event_time": booked_at, "sequence": change_seq, "trade_id": trade_id,
                         "trade_price": price, "trade_size": size, "trade_side": side}  # fmt: skip
                while True:
                    try:
                        producer.produce(topic, encode(event), instrument_id)
                        break
                    except BufferError:
                        producer.poll(0.05)
                last = change_seq
            producer.poll(0)
            if len(rows) < POLL_LIMIT:
                time.sleep(POLL_IDLE_S)
    results.put({"undelivered": producer.flush(30), "polls": polls, "query_ms": query_s * 1000 / max(polls, 1)})


@contextmanager
def poller(topic: str, schema_id: int, after: int) -> Iterator[tuple[Any, dict[str, Any], int | None]]:
    """A running poller process (it starts reading once ``go`` is set); its counters once the block is left."""
    context = multiprocessing.get_context("spawn")
    ready, go, stop, results = context.Event(), context.Event(), context.Event(), context.Queue()
    process = context.Process(target=poll_trades, args=(topic, schema_id, after, ready, go, stop, results))
    process.start()
    counters: dict[str, Any] = {}
    try:
        if not ready.wait(60):
            raise TickflowError("The poller process did not connect to PostgreSQL within 60 s.")
        yield go, counters, process.pid
    finally:
        stop.set()
        go.set()
        with suppress(queue.Empty):
            counters.update(results.get(timeout=60))
        process.join(10)
        if process.is_alive():
            process.kill()
        print(f"    poller: {counters.get('polls', 0):,} polls, {counters.get('query_ms', 0):,.0f} ms each, "
              f"{counters.get('undelivered', '?')} undelivered", flush=True)  # fmt: skip


def last_change_seq(settings: Settings) -> int:
    with trades_connection(settings) as connection:
        return int(connection.execute(f"SELECT last_value FROM {SCHEMA}.change_seq").fetchone()[0])


def baseline(settings: Settings, backlog_run: int, after: int, postgres: int | None,
             args: argparse.Namespace) -> list[dict[str, Any]]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    with fresh_topics(settings, "poller", prefix="bench.trades", partitions=EVENTS.partitions) as topics:
        topic = topics["poller"]
        schema_id = register_value_schema(settings, topic, load(MARKET_EVENT, settings.schemas_dir))
        with poller(topic, schema_id, after) as (go, _, pid):
            reader = Reader(settings, topic, backlog_run, args.sample)
            busy = Busy(pid, postgres)
            go.set()
            done = reader.wait_for(args.backlog, args.timeout, "poller drain")
            cores, pg_cores = busy.cores()
            reader.consumer.close()
        rate = None if done is None else args.backlog / (done - busy.started)
        print(f"  poller drain: {reader.count:,} of {args.backlog:,}, {'-' if rate is None else f'{rate:,.0f}/s'}")
        rows.append({"label": "baseline poller: drain of it", "delivered": rate, "cores": cores, "pg_cores": pg_cores})
        for rate in [*args.rates, None]:
            with poller(topic, schema_id, last_change_seq(settings)) as (go, _, pid):
                go.set()
                rows.append(measure(settings, f"baseline poller {rate or 'max'}", topic, rate, (pid, postgres), args))
    return rows


def table(rows: list[dict[str, Any]]) -> None:
    def n(value: Any, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    print(f"\n{'':36} {'offered/s':>9} {'booked/s':>8} {'deliver/s':>9} {'lag@stop':>8} {'drain s':>7} {'kept up':>7} "
          f"{'p50 ms':>6} {'p99 ms':>6} {'cores':>5} {'pg cores':>8} {'per txn':>7}")  # fmt: skip
    for r in rows:
        offered = "-" if "kept" not in r else ("max" if r["offered"] is None else f"{r['offered']:,}")
        kept = "-" if "kept" not in r else ("yes" if r["kept"] else "no")
        print(f"{r['label']:36} {offered:>9} {n(r.get('booked')):>8} {n(r.get('delivered')):>9} {n(r.get('lag')):>8} "
              f"{n(r.get('drain'), 1):>7} {kept:>7} {n(r.get('p50')):>6} {n(r.get('p99')):>6} "
              f"{n(r.get('cores'), 2):>5} {n(r.get('pg_cores'), 2):>8} {n(r.get('per_txn')):>7}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="2000,5000,10000", type=lambda s: [int(r) for r in s.split(",")])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=10, help="decode every n-th record for its latency")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a run's last record")
    args = parser.parse_args()
    settings, source = Settings(), TradesSourceSettings()
    client = ConnectClient(settings.connect_urls)
    status = client.status(source.name)
    if status is None or not status.running:
        raise TickflowError(f"Connector {source.name} is not running ({status and status.state}): deploy it with "
                            "`tickflow connect deploy trades`.")  # fmt: skip
    stack = supervisor(settings)
    connect, postgres = stack.running_pid("connect"), stack.running_pid("postgres")
    print(f"config: rates {args.rates} trades/s for {args.seconds:.0f} s each, backlog {args.backlog:,}, latency "
          f"on every {args.sample}th record; connector poll {source.poll_interval_ms} ms, exactly once; "
          f"{os.cpu_count()} cores shared with the whole stack", flush=True)  # fmt: skip
    rows = []
    print("connector (what we ship): book() at each rate, the running connector -> md.events", flush=True)
    for rate in [*args.rates, None]:
        rows.append(measure(settings, f"connector {rate or 'max'}", EVENTS.name, rate, (connect, postgres), args))
    print(f"ceiling: engines alone on a {args.backlog:,}-trade backlog", flush=True)
    after = last_change_seq(settings)
    rows += ceiling(settings, client, source.name, (connect, postgres), args)
    print("baseline: a Python poller of the table -> a per-run topic", flush=True)
    rows += baseline(settings, rows[-1]["run"], after, postgres, args)
    table(rows)
    for name in ("connector", "baseline poller"):
        held = [r["offered"] for r in rows if r["label"].startswith(name) and r.get("offered") and r["kept"]]
        flat_out = next(r for r in rows if r["label"] == f"{name} max")
        print(f"{name}: highest offered rate kept up {max(held, default=0):,}/s; booking flat out "
              f"{flat_out['booked']:,.0f}/s, delivered {flat_out['delivered']:,.0f}/s while booking")  # fmt: skip


if __name__ == "__main__":
    main()
