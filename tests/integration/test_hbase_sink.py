"""The Kafka Connect HBase sink on the real stack: Connect worker, registry, Kafka and HBase.

Each test deploys its own connector (unique name, its own consumer group) on its own topic and
writes EnrichedEvent records straight to it (the stream is tested elsewhere), into the real
``md:latest`` / ``md:history`` tables under instrument ids no other test uses. What HBase holds is
compared with what is computed here from the records sent: per field, the value with the greatest
timestamp (as-of for filled fields, event time for the others), ties to the later record; in history,
one cell per record holding the very bytes produced.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import happybase
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.support.kafka import as_admin
from tests.support.stack import tickflow
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.hbase.layout import (
    AS_OF_SUFFIX,
    HISTORY,
    HISTORY_COLUMN,
    LATEST,
    EventLayout,
    history_prefix,
    history_row_key,
)
from tickflow.hbase.store import MarketDataStore
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectClient
from tickflow.sinks.hbase import HBaseSinkSettings, connector_config
from tickflow.stack import supervisor

pytestmark = pytest.mark.integration

Record = dict[str, Any]
# An hour ago, ms-aligned (every generated time is a whole millisecond): md:history expires cells by their
# timestamp (TTL 7 days), so records must be recent to be kept.
T0_US = (time.time_ns() // 1_000_000 - 3_600_000) * 1000
DOUBLES = ("bid_price", "ask_price", "last_price", "close_price", "reference_price", "trade_price")
LONGS = ("bid_size", "ask_size", "trade_size")


def eventually(check: Callable[[], str | None], timeout_s: float, poll_s: float = 0.5) -> None:
    """Wait until ``check`` returns None (it returns what is still wrong, shown if the deadline passes)."""
    deadline = time.monotonic() + timeout_s
    while (problem := check()) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s:.0f}s: {problem}")
        time.sleep(poll_s)


class Records:
    """EnrichedEvent records for a set of test instruments: late ones, nulls, as-of ties."""

    def __init__(self, instruments: int, seed: int) -> None:
        self.rng = random.Random(seed)
        run = uuid.uuid4().hex[:8]
        self.instruments = [f"XTST:{run}-{n}" for n in range(instruments)]
        self.clock = dict.fromkeys(self.instruments, T0_US)
        self.used: set[tuple[str, int]] = set()
        self.sent: list[Record] = []

    def make(self, instrument: str | None = None, late: bool | None = None, **fields: Any) -> Record:
        rng = self.rng
        instrument = instrument or rng.choice(self.instruments)
        self.clock[instrument] += rng.randint(1, 4) * 1000
        late = rng.random() < 0.15 if late is None else late
        event_time = self.clock[instrument] - (rng.randint(5, 60) * 1000 if late else 0)
        while (instrument, event_time) in self.used:  # one history row per record
            event_time -= 1000
        self.used.add((instrument, event_time))
        record: Record = {
            "instrument_id": instrument,
            "event_time": event_time,
            "event_count": rng.randint(1, 3),
            "enriched": rng.random() < 0.9,
            "ingest_time": event_time + 1000,
            "processed_time": event_time + 2000,
            "batch_id": rng.randint(0, 1000),
        }
        for name in (*DOUBLES, *LONGS, "trade_id", "trade_side"):
            if rng.random() < 0.45:
                continue  # null: says nothing about the field
            if name in DOUBLES:
                record[name] = round(rng.uniform(1, 500), 4)
            elif name in LONGS:
                record[name] = rng.randint(1, 10_000)
            elif name == "trade_id":
                record[name] = f"T{rng.getrandbits(32):08x}"
            else:
                record[name] = rng.choice(["buy", "sell", "unknown"])
            # as-of at or before the event (a ms or two back makes ties between records likely); rarely unknown
            record[f"{name}{AS_OF_SUFFIX}"] = None if rng.random() < 0.05 else event_time - rng.randint(0, 2) * 1000
        if rng.random() < 0.7:
            record.update(symbol=instrument.split(":")[1], mid=round(rng.uniform(1, 500), 4), reference_version=3)
        record.update(fields)
        return record


def expected_latest(layout: EventLayout, records: list[Record]) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
    """Per instrument: every field's newest value, and each filled field's as-of (ms); ties to the later record."""
    state: dict[str, dict[str, tuple[int, Any, bool]]] = {}
    for record in records:
        fields = state.setdefault(record["instrument_id"], {})
        event_ms = record["event_time"] // 1000
        for name, value in record.items():
            if value is None or name.endswith(AS_OF_SUFFIX):
                continue
            filled = name in layout.filled
            as_of = record.get(f"{name}{AS_OF_SUFFIX}") if filled else None
            at = as_of // 1000 if as_of is not None else event_ms
            if name not in fields or at >= fields[name][0]:
                fields[name] = (at, value, filled)
    return {
        instrument: (
            {name: value for name, (_, value, _) in fields.items()},
            {name: at for name, (at, _, filled) in fields.items() if filled},
        )
        for instrument, fields in state.items()
    }


def latest_mismatch(store: MarketDataStore, records: list[Record]) -> str | None:
    expected = expected_latest(store.layout, records)
    found = store.latest(list(expected))
    for instrument, (values, as_of) in expected.items():
        got = found.get(instrument)
        if got is None:
            return f"no md:latest row for {instrument}"
        if got.values != values or got.as_of_ms != as_of:
            diff = sorted(k for k in values.keys() | got.values.keys() if values.get(k) != got.values.get(k))
            diff += sorted(k for k in as_of.keys() | got.as_of_ms.keys() if as_of.get(k) != got.as_of_ms.get(k))
            return f"md:latest of {instrument} differs in {diff}"
    return None


def history_mismatch(store: MarketDataStore, records: list[Record]) -> str | None:
    by_instrument: dict[str, dict[int, Record]] = {}
    for record in records:
        by_instrument.setdefault(record["instrument_id"], {})[record["event_time"]] = {
            k: v for k, v in record.items() if v is not None
        }
    for instrument, expected in by_instrument.items():
        rows = {row["event_time"]: row for row in store.history(instrument)}
        if rows != expected:
            missing = expected.keys() - rows.keys()
            if missing:
                return f"md:history of {instrument}: {len(missing)} of {len(expected)} rows missing"
            at = next(t for t in expected if rows[t] != expected[t])
            diff = {k: (expected[at].get(k), rows[at].get(k)) for k in expected[at].keys() | rows[at].keys()
                    if expected[at].get(k) != rows[at].get(k)}  # fmt: skip
            return f"md:history of {instrument} at {at}: (sent, stored) differ: {diff}"
    return None


def converged(store: MarketDataStore, records: list[Record]) -> Callable[[], str | None]:
    return lambda: history_mismatch(store, records) or latest_mismatch(store, records)


def raw_cells(settings: Settings, instruments: list[str]) -> dict[bytes, dict[bytes, tuple[bytes, int]]]:
    """Every cell of the instruments' rows in both tables, with its timestamp."""
    connection = happybase.Connection(*settings.hbase_thrift_address, timeout=30_000)
    try:
        cells = {
            b"latest/" + row: dict(columns)
            for row, columns in connection.table(LATEST).rows([i.encode() for i in instruments], include_timestamp=True)
        }
        history = connection.table(HISTORY)
        for instrument in instruments:
            for row, columns in history.scan(row_prefix=history_prefix(instrument), include_timestamp=True):
                cells[b"history/" + row] = dict(columns)
        return cells
    finally:
        connection.close()


@dataclass
class Sink:
    """One test's connector on one test's topic, and a producer of framed EnrichedEvents to it."""

    settings: Settings
    topic: str
    name: str
    encode: Callable[[Record], bytes]
    producer: Producer
    client: ConnectClient

    @property
    def dlq(self) -> str:
        return f"{self.topic}.dlq"

    def deploy(self, name: str | None = None) -> None:
        sink = HBaseSinkSettings(name=name or self.name, topic=self.topic, dlq_topic=self.dlq, tasks=2)
        config = connector_config(self.settings, sink)
        self.client.put_config(sink.name, config)
        self.client.wait_running(sink.name, config, sink.tasks, timeout_s=90)

    def send(self, records: list[Record], rate: float | None = None) -> None:
        started = time.monotonic()
        for n, record in enumerate(records, 1):
            self.producer.produce(self.topic, self.encode(record), record["instrument_id"])
            if rate and n % 50 == 0:
                self.producer.poll(0)
                time.sleep(max(0.0, started + n / rate - time.monotonic()))
        assert self.producer.flush(30) == 0

    def send_raw(self, key: str, value: bytes) -> None:
        self.producer.produce(self.topic, value, key)
        assert self.producer.flush(30) == 0


@pytest.fixture
def store(stack: Settings) -> MarketDataStore:
    return MarketDataStore(stack)


@pytest.fixture
def sink(stack: Settings, tmp_topic: str) -> Iterator[Sink]:
    schema = load("tickflow.md.EnrichedEvent", stack.schemas_dir)
    schema_id = SchemaRegistryClient(stack.registry_client_config).register_schema(
        f"{tmp_topic}-value", Schema(schema.text, "AVRO")
    )
    encode = compile_encoder(schema.definition, prefix=confluent_prefix(int(schema_id)))
    producer = Producer({**as_admin(stack), "linger.ms": 5, "enable.idempotence": True})
    made = Sink(stack, tmp_topic, f"test-hbase-sink-{tmp_topic}", encode, producer, ConnectClient(stack.connect_urls))
    deployed = [made.name]
    original_deploy = made.deploy

    def deploy(name: str | None = None) -> None:
        deployed.append(name or made.name)
        original_deploy(name)

    made.deploy = deploy  # type: ignore[method-assign]
    yield made
    for name in deployed:
        made.client.delete(name)
    AdminClient(as_admin(stack)).delete_topics([made.dlq])


def test_latest_is_the_newest_value_of_every_field_and_history_has_every_record(
    sink: Sink, store: MarketDataStore
) -> None:
    feed = Records(instruments=40, seed=1)
    records = [feed.make() for _ in range(2000)]
    sink.deploy()
    sink.send(records)
    eventually(converged(store, records), timeout_s=60)
    # each history row is one cell: the record's value exactly as produced, at its event time (ms)
    history = {row: cells for row, cells in raw_cells(sink.settings, feed.instruments).items()
               if row.startswith(b"history/")}  # fmt: skip
    assert history == {
        b"history/" + history_row_key(r["instrument_id"], r["event_time"]): {
            HISTORY_COLUMN: (sink.encode(r), r["event_time"] // 1000)
        }
        for r in records
    }


def test_a_late_record_never_overwrites_and_a_null_never_deletes(sink: Sink, store: MarketDataStore) -> None:
    feed = Records(instruments=1, seed=2)
    (instrument,) = feed.instruments
    first = feed.make(instrument, late=False, bid_price=101.5, bid_price_as_of=T0_US + 50_000, symbol="NEW")
    sink.deploy()
    sink.send([first])
    eventually(converged(store, [first]), timeout_s=60)

    # older as-of for bid_price, older event time for the e family, then a record saying nothing of either
    late = {**feed.make(instrument, late=True), "bid_price": 99.0, "bid_price_as_of": T0_US + 10_000,
            "event_time": T0_US - 1_000_000, "symbol": "OLD"}  # fmt: skip
    silent = {**feed.make(instrument, late=False), "bid_price": None, "bid_price_as_of": None, "symbol": None}
    sink.send([late, silent])
    eventually(converged(store, [first, late, silent]), timeout_s=60)
    state = store.latest([instrument])[instrument]
    assert state.values["bid_price"] == 101.5 and state.as_of_ms["bid_price"] == (T0_US + 50_000) // 1000
    assert state.values["symbol"] == "NEW"


def test_a_replayed_topic_changes_no_cell(sink: Sink, store: MarketDataStore, stack: Settings) -> None:
    feed = Records(instruments=20, seed=3)
    records = [feed.make() for _ in range(1000)]
    sink.deploy()
    sink.send(records)
    eventually(converged(store, records), timeout_s=60)
    before = raw_cells(stack, feed.instruments)

    replay = f"{sink.name}-replay"  # a new consumer group: the whole topic again, from the earliest offset
    sink.deploy(replay)
    consumer = Consumer({**as_admin(stack), "group.id": f"connect-{replay}"})
    partitions = [TopicPartition(sink.topic, p) for p in range(3)]
    ends = {tp.partition: consumer.get_watermark_offsets(tp)[1] for tp in partitions}

    def replayed() -> str | None:
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        return None if committed == ends else f"replay committed {committed}, topic ends at {ends}"

    try:
        eventually(replayed, timeout_s=60)
    finally:
        consumer.close()
    assert raw_cells(stack, feed.instruments) == before


def test_kill_9_of_the_connect_worker_loses_nothing(sink: Sink, store: MarketDataStore, stack: Settings) -> None:
    feed = Records(instruments=30, seed=4)
    records = [feed.make() for _ in range(3000)]
    sink.deploy()
    producing = threading.Thread(target=sink.send, args=(records[:2000], 500.0))
    producing.start()
    eventually(lambda: None if store.latest(feed.instruments) else "nothing written yet", timeout_s=60, poll_s=0.2)

    workers = supervisor(stack)
    pid = workers.running_pid("connect")
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # the worker's whole process group, mid-flow
    eventually(lambda: None if workers.running_pid("connect") is None else "worker still alive", timeout_s=10)
    restarted = tickflow("stack", "up", "connect", check=False)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    producing.join()
    sink.send(records[2000:])
    eventually(converged(store, records), timeout_s=120)


def test_corrupt_values_go_to_the_dlq_with_a_reason_and_the_records_around_them_are_written(
    sink: Sink, store: MarketDataStore, stack: Settings
) -> None:
    feed = Records(instruments=2, seed=5)
    before = [feed.make() for _ in range(50)]
    after = [feed.make() for _ in range(50)]
    good = sink.encode(feed.make(feed.instruments[0], late=False))
    bad_magic = b"\x01" + good[1:]
    trailing = good + b"\x02\x04"
    sink.deploy()
    sink.send(before)
    sink.send_raw(feed.instruments[0], bad_magic)
    sink.send_raw(feed.instruments[0], trailing)
    sink.send(after)
    eventually(converged(store, before + after), timeout_s=60)

    consumer = Consumer({**as_admin(stack), "group.id": f"test-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([sink.dlq])
    dead: list[tuple[bytes, dict[str, str]]] = []
    deadline = time.monotonic() + 60
    try:
        while len(dead) < 2 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                raw = cast(list[tuple[str, bytes]], message.headers() or [])
                headers = {key: value.decode() for key, value in raw}
                dead.append((message.value() or b"", headers))
    finally:
        consumer.close()
    assert sorted(value for value, _ in dead) == sorted([bad_magic, trailing])
    for value, headers in dead:
        reason = headers["__connect.errors.exception.message"]
        assert ("magic" in reason) if value == bad_magic else ("left" in reason or "trailing" in reason), reason
        assert headers["__connect.errors.topic"] == sink.topic
