"""Trades booked in PostgreSQL reach md.events through Debezium and tickflow's transform and converter,
and md.enriched through the stream; a kill -9 of the Connect worker mid-flow loses and repeats nothing a
read_committed reader sees.

Each test books a run of its own (trade ids carry the run's start), so it reads only its own events."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from tests.support.kafka import as_admin
from tests.support.stack import tickflow
from tickflow.settings import Settings
from tickflow.sources.trade_capture import BookingConfig, book
from tickflow.sources.trades_connector import TradesSourceSettings, deploy
from tickflow.stack import supervisor
from tickflow.stream.control import EnrichmentStream

pytestmark = pytest.mark.integration
EVENTS, ENRICHED = "md.events", "md.enriched"


@pytest.fixture(scope="module")
def trades(stack: Settings) -> Iterator[Settings]:
    state = deploy(stack, TradesSourceSettings())
    assert state.state == "RUNNING" and [t.state for t in state.tasks] == ["RUNNING"], state
    yield stack
    EnrichmentStream(stack).stop(grace_s=30)


def ends(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer({**as_admin(settings), "group.id": f"t-{uuid.uuid4().hex}"})
    try:
        count = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(count)}
    finally:
        consumer.close()


def events_of(record: dict[str, Any]) -> int:
    """How many input events a record stands for: an enriched record counts the events of its instrument at
    its event time that the stream merged into it (a correction keeps its trade's booking time)."""
    return int(record.get("event_count") or 1)


def read_run(
    settings: Settings, topic: str, start: dict[int, int], run: int, expected: int, timeout_s: float = 180
) -> list[tuple[Any, dict[str, Any]]]:
    """(message, record) of the run's trade events after ``start``, read_committed, until they stand for
    ``expected`` events (or the time is up), then the rest of what is already there."""
    deserialize = AvroDeserializer(SchemaRegistryClient(settings.registry_client_config))
    consumer = Consumer({
        **as_admin(settings), "group.id": f"t-{uuid.uuid4().hex}",
        "isolation.level": "read_committed", "enable.auto.commit": False,
    })  # fmt: skip
    consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
    found: list[tuple[Any, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    marker = f"-{run}-"
    quiet = 0
    total = 0
    while time.monotonic() < deadline and (total < expected or quiet < 3):
        messages = consumer.consume(5000, 1.0)
        quiet = 0 if messages else quiet + 1
        for message in messages:
            if message.error() is None:
                record = deserialize(message.value(), None)
                if marker in (record.get("trade_id") or ""):
                    found.append((message, record))
                    total += events_of(record)
    consumer.close()
    return found


def test_booked_trades_reach_md_events_and_md_enriched_as_market_events(trades: Settings) -> None:
    before_events, before_enriched = ends(trades, EVENTS), ends(trades, ENRICHED)
    EnrichmentStream(trades).start()
    start_us = time.time_ns() // 1000
    # The default seed books the reference data's universe (as `tickflow simulate` does).
    stats = book(trades, BookingConfig(rate=2_000, count=2_000, corrections=0.02, start_us=start_us))
    run = start_us // 1000
    events = read_run(trades, EVENTS, before_events, run, stats.booked + stats.corrected)
    assert len(events) == stats.booked + stats.corrected
    assert len({r["event_id"] for _, r in events}) == len(events), "one event per insert and per correction"
    for message, record in events:
        assert record["source"] == "trades" and message.key().decode() == record["instrument_id"]
        assert record["trade_price"] > 0 and record["trade_size"] > 0 and record["trade_side"] in ("buy", "sell")
    # Keyed as the Python producers key: an instrument's trades share the partition its quotes use.
    assert all(crc32_partition(r["instrument_id"], 12) == m.partition() for m, r in events)

    enriched = read_run(trades, ENRICHED, before_enriched, run, len(events), timeout_s=300)
    assert sum(events_of(r) for _, r in enriched) == len(events), "every trade event, once"
    assert {r["trade_id"] for _, r in enriched} == {r["trade_id"] for _, r in events}
    assert all(r["enriched"] and r["symbol"] for _, r in enriched)


def crc32_partition(key: str, partitions: int) -> int:
    import zlib

    return zlib.crc32(key.encode()) % partitions


def test_a_kill_9_of_the_connect_worker_mid_flow_loses_and_repeats_nothing(trades: Settings) -> None:
    before = ends(trades, EVENTS)
    start_us = time.time_ns() // 1000
    config = BookingConfig(rate=2_000, count=20_000, start_us=start_us)  # the reference universe (seed 7)
    booked: dict[str, Any] = {}
    booking = threading.Thread(target=lambda: booked.setdefault("stats", book(trades, config)))
    booking.start()
    time.sleep(4)
    pid = supervisor(trades).status("connect").pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    result = tickflow("stack", "up", "connect", check=False)
    assert result.returncode == 0, result.stderr
    booking.join(timeout=120)
    stats = booked["stats"]
    events = read_run(trades, EVENTS, before, start_us // 1000, stats.booked, timeout_s=300)
    counts = Counter(r["event_id"] for _, r in events)
    assert len(counts) == stats.booked, "every trade booked reached md.events"
    assert max(counts.values()) == 1, f"repeated: {[e for e, n in counts.items() if n > 1][:5]}"
