"""A trade cancelled in PostgreSQL reaches the page as a cancel. Debezium and tickflow's transform publish the
DELETE as a MarketEvent v2 cancel; the stream clears the instrument's last trade; the HBase sink writes the
cleared registers; the page shows the cancel where the trade was, never its price. A v1 record of the same
instrument (an EnrichedEvent the stream wrote before the rollout) sits beside the v2 ones in md.enriched and
md:history, and the sink and the page take both."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from tests.e2e.test_serving_ui import TOKEN, free_port
from tests.support.kafka import as_admin
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.hbase.store import MarketDataStore
from tickflow.retry import wait_for
from tickflow.schemas import load, register
from tickflow.serving.app import create_app
from tickflow.serving.auth import login_url
from tickflow.serving.server import running
from tickflow.serving.settings import ServingSettings
from tickflow.settings import REPO_ROOT, Settings
from tickflow.sinks.hbase import HBaseSinkSettings
from tickflow.sinks.hbase import deploy as deploy_sink
from tickflow.sources.trade_capture import TABLE, trades_connection
from tickflow.sources.trades_connector import TradesSourceSettings
from tickflow.sources.trades_connector import deploy as deploy_trades
from tickflow.stream.control import EnrichmentStream
from tickflow.topics import ENRICHED

RELEASED = REPO_ROOT / "tests" / "fixtures" / "schemas" / "released"


def write_v1_record(settings: Settings, instrument: str, at_us: int) -> None:
    """An EnrichedEvent v1 of the instrument on md.enriched, as the stream wrote them before v2."""
    v1 = load("tickflow.md.EnrichedEvent", RELEASED)
    schema_id = register(settings, f"{ENRICHED.name}-value", v1, compatibility=None).schema_id
    record: dict[str, Any] = {
        "instrument_id": instrument, "event_time": at_us, "event_count": 1, "enriched": False,
        "bid_price": 41.0, "bid_price_as_of": at_us, "ask_price": 41.5, "ask_price_as_of": at_us,
        "ingest_time": at_us, "processed_time": at_us, "batch_id": 0,
    }  # fmt: skip
    producer = Producer(as_admin(settings))
    producer.produce(
        ENRICHED.name, compile_encoder(v1.definition, prefix=confluent_prefix(schema_id))(record), instrument
    )
    assert producer.flush(30) == 0


def test_a_trade_cancelled_in_postgresql_shows_on_the_page_as_cancelled(reference_data: Settings, page: object) -> None:
    stack = reference_data
    deploy_trades(stack, TradesSourceSettings())
    deploy_sink(stack, HBaseSinkSettings())
    stream = EnrichmentStream(stack)
    stream.start()
    try:
        show_a_cancel(stack, page)
    finally:
        stream.stop(grace_s=30)


def show_a_cancel(stack: Settings, page: Any) -> None:
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
    history = store.history(instrument, limit=10)
    assert any(r.get("cancelled_trade_id") == trade_id for r in history), "md:history keeps the cancel"
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
