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
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from tests.e2e.test_serving_ui import TOKEN, free_port
from tests.support.kafka import as_admin
from tests.support.stack import tickflow
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.hbase.store import MarketDataStore
from tickflow.retry import wait_for
from tickflow.schemas import load, register
from tickflow.serving.app import create_app
from tickflow.serving.auth import login_url
from tickflow.serving.server import running
from tickflow.serving.settings import ServingSettings
from tickflow.settings import REPO_ROOT, Settings
from tickflow.sinks.connect import ConnectClient
from tickflow.sinks.hbase import HBaseSinkSettings
from tickflow.sinks.hbase import deploy as deploy_sink
from tickflow.sources.trade_capture import TABLE, BookingConfig, book, trades_connection
from tickflow.sources.trades_connector import TradesSourceSettings, deploy
from tickflow.stack import supervisor
from tickflow.stream.control import EnrichmentStream

pytestmark = pytest.mark.integration
EVENTS, ENRICHED = "md.events", "md.enriched"
RELEASED = REPO_ROOT / "tests" / "fixtures" / "schemas" / "released"  # MarketEvent and EnrichedEvent v1


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


def write_v1_record(settings: Settings, instrument: str, at_us: int) -> None:
    """An EnrichedEvent v1 of the instrument on md.enriched, as the stream wrote them before v2."""
    v1 = load("tickflow.md.EnrichedEvent", RELEASED)
    schema_id = register(settings, f"{ENRICHED}-value", v1, compatibility=None).schema_id
    record: dict[str, Any] = {
        "instrument_id": instrument, "event_time": at_us, "event_count": 1, "enriched": False,
        "bid_price": 41.0, "bid_price_as_of": at_us, "ask_price": 41.5, "ask_price_as_of": at_us,
        "ingest_time": at_us, "processed_time": at_us, "batch_id": 0,
    }  # fmt: skip
    producer = Producer(as_admin(settings))
    producer.produce(ENRICHED, compile_encoder(v1.definition, prefix=confluent_prefix(schema_id))(record), instrument)
    assert producer.flush(30) == 0


def test_a_trade_cancelled_in_postgresql_reaches_the_page_as_a_cancel(trades: Settings, page: Any) -> None:
    """The DELETE is published as a MarketEvent v2 cancel; the stream clears the instrument's last trade; the HBase
    sink writes the cleared registers; the page shows the cancel where the trade was, never its price. A v1 record
    of the same instrument (an EnrichedEvent the stream wrote before v2) sits beside the v2 ones in md.enriched and
    md:history, and the sink and the page take both."""
    stack = trades
    sink = HBaseSinkSettings()
    deploy_sink(stack, sink)
    EnrichmentStream(stack).start()
    try:
        cancel_to_page(stack, page)
    finally:
        ConnectClient(stack.connect_urls).delete(sink.name)


def cancel_to_page(stack: Settings, page: Any) -> None:
    from playwright.sync_api import expect

    store = MarketDataStore(stack)
    tag = uuid.uuid4().hex[:6].upper()
    instrument, trade_id = f"TEST:CXL{tag}", f"E2E-{tag}"
    v1_at = time.time_ns() // 1000 - 60_000_000
    write_v1_record(stack, instrument, v1_at)

    with trades_connection(stack) as connection:
        connection.execute(
            f"INSERT INTO {TABLE} (trade_id, instrument_id, booked_at, price, size, side) "
            "VALUES (%s, %s, %s, 42.5, 100, 'buy')",
            (trade_id, instrument, datetime.now(UTC)),
        )
    latest = wait_for(
        lambda: (found := store.latest([instrument]).get(instrument)) and found.values.get("trade_id") == trade_id
        and found, 180, interval_s=1.0,
    )  # fmt: skip
    assert latest.values["trade_price"] == 42.5 and latest.values["bid_price"] == 41.0  # v1's quote, v2's trade

    with trades_connection(stack) as connection:
        connection.execute(f"DELETE FROM {TABLE} WHERE trade_id = %s", (trade_id,))
    cleared = wait_for(
        lambda: (found := store.latest([instrument]).get(instrument))
        and found.values.get("cancelled_trade_id") == trade_id and found, 180, interval_s=1.0,
    )  # fmt: skip
    assert cleared.values.get("trade_id") is None and cleared.values.get("trade_price") is None
    # md:latest is handed to HBase every conflation interval, md:history's buffer at the sink's next commit: the
    # cancel can show in md:latest a moment before its history cell does.
    history = wait_for(
        lambda: (found := store.history(instrument, limit=10))
        and any(r.get("cancelled_trade_id") == trade_id for r in found) and found, 60, interval_s=1.0,
        timed_out=lambda _: AssertionError("md:history does not keep the cancel"),
    )  # fmt: skip
    assert any(r["event_time"] == v1_at and r["bid_price"] == 41.0 for r in history), "and the v1 record beside it"

    serving = ServingSettings(reference_from_hive=False, poll_ms=250, token=TOKEN)
    with running(create_app(stack, serving), "127.0.0.1", free_port()) as url:
        page.goto(login_url(url, TOKEN) if stack.secured else url)
        page.fill("#search", instrument)
        page.locator(f'#results button[data-instrument="{instrument}"]').click()
        cell = page.locator(f'#values td[data-instrument="{instrument}"][data-field="trade_id"]')
        expect(cell).to_contain_text(f"{trade_id} cancelled at", timeout=10_000)
        price = page.locator(f'#values td[data-instrument="{instrument}"][data-field="trade_price"]')
        expect(price).not_to_contain_text("42.5")
        page.screenshot(path=str(stack.root / "logs" / "e2e-cancel.png"))
