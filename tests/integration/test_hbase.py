"""md:latest and md:history on the real HBase started by the stack command: the tables as specified,
cells through the codec, newest-wins per field, history newest first, one cell per record framed with
the registry's id for EnrichedEvent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import happybase
import pytest

from tickflow.hbase.layout import HISTORY, HISTORY_COLUMN, LATEST, history_row_key
from tickflow.hbase.store import MarketDataStore
from tickflow.hbase.tables import migrate, thrift2_admin
from tickflow.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(hbase_stack: Settings) -> MarketDataStore:
    return MarketDataStore(hbase_stack)


@pytest.fixture
def connection(hbase_stack: Settings) -> Iterator[happybase.Connection]:
    connection = happybase.Connection(*hbase_stack.hbase_thrift_address)
    yield connection
    connection.close()


@pytest.fixture
def instrument() -> str:
    """An instrument no other test writes (the tables are shared)."""
    return f"TEST:{uuid.uuid4().hex[:10]}"


def now_us() -> int:
    return time.time_ns() // 1000  # md:history's TTL hides cells with old timestamps: write recent ones


def event(instrument: str, at: int, **fields: Any) -> dict[str, Any]:
    """A whole EnrichedEvent (every required field), as md:history stores the record itself."""
    return {"instrument_id": instrument, "event_time": at, "event_count": 1, "enriched": False,
            "ingest_time": at + 1000, "processed_time": at + 2000, "batch_id": 1, **fields}  # fmt: skip


def test_tables_and_families_are_as_specified(connection: happybase.Connection, hbase_stack: Settings) -> None:
    assert {LATEST.encode(), HISTORY.encode()} <= set(connection.tables())
    latest = connection.table(LATEST).families()
    assert set(latest) == {b"f", b"e"}
    for family in latest.values():
        assert family["max_versions"] == 1
        assert family["time_to_live"] == 2**31 - 1  # FOREVER
        assert family["in_memory"] is True
        assert family["bloom_filter_type"] == b"ROW"
    history = connection.table(HISTORY).families()[b"h"]
    assert history["max_versions"] == 1
    assert history["time_to_live"] == hbase_stack.hbase_history_ttl_s
    assert history["compression"] == hbase_stack.hbase_history_compression.encode()
    assert history["bloom_filter_type"] == b"ROW"


def test_a_second_migration_finds_everything_as_specified(hbase_stack: Settings) -> None:
    assert migrate(hbase_stack) == []  # the fixture migrated already


def test_what_thrift_1_does_not_show_is_set_too(hbase_stack: Settings) -> None:
    """Block encoding and in-memory compaction, through the Thrift 2 admin the migration sets them with."""
    with thrift2_admin(hbase_stack) as (thrift2, client):

        def families(table: str) -> dict[bytes, dict[bytes, bytes]]:
            namespace, _, qualifier = table.partition(":")
            descriptor = client.getTableDescriptor(
                thrift2.TTableName(ns=namespace.encode(), qualifier=qualifier.encode())
            )
            return {column.name: column.attributes for column in descriptor.columns}

        latest, history = families(LATEST), families(HISTORY)
    assert {name: attributes[b"IN_MEMORY_COMPACTION"] for name, attributes in latest.items()} == {
        b"f": b"EAGER",
        b"e": b"EAGER",
    }
    assert history[b"h"][b"DATA_BLOCK_ENCODING"] == b"FAST_DIFF"
    assert history[b"h"][b"IN_MEMORY_COMPACTION"] == b"NONE"


def test_latest_round_trip_through_the_codec(store: MarketDataStore, instrument: str) -> None:
    t = now_us()
    store.write([event(instrument, t, bid_price=101.25, bid_price_as_of=t - 2_000_000, bid_size=300,
                       bid_size_as_of=t, trade_side="sell", trade_side_as_of=t, enriched=True, sector="Tech",
                       ingest_time=t + 5)])  # fmt: skip
    latest = store.latest([instrument, f"{instrument}-unknown"])
    assert list(latest) == [instrument]
    state = latest[instrument]
    assert state.values["bid_price"] == 101.25
    assert state.values["bid_size"] == 300
    assert state.values["trade_side"] == "sell"
    assert state.values["enriched"] is True
    assert state.values["sector"] == "Tech"
    assert state.values["ingest_time"] == t + 5
    assert state.values["event_time"] == t
    assert state.as_of_ms == {"bid_price": (t - 2_000_000) // 1000, "bid_size": t // 1000, "trade_side": t // 1000}


def test_an_older_cell_never_replaces_a_newer_one_in_latest(
    store: MarketDataStore, connection: happybase.Connection, instrument: str
) -> None:
    t = now_us()
    store.write([event(instrument, t, ask_price=10.5, ask_price_as_of=t, symbol="NEW")])
    store.write([event(instrument, t - 60_000_000, ask_price=9.0, ask_price_as_of=t - 60_000_000, symbol="OLD")])
    state = store.latest([instrument])[instrument]
    assert (state.values["ask_price"], state.values["symbol"]) == (10.5, "NEW")
    assert state.as_of_ms["ask_price"] == t // 1000
    # VERSIONS=1: the late write is not even kept as an older version.
    cells = connection.table(LATEST).cells(instrument.encode(), b"f:ask_price", versions=5, include_timestamp=True)
    assert len(cells) == 1


def test_a_null_does_not_delete_a_cell(store: MarketDataStore, instrument: str) -> None:
    t = now_us()
    store.write([event(instrument, t, last_price=50.0, last_price_as_of=t)])
    store.write([event(instrument, t + 1000, last_price=None, close_price=49.0, close_price_as_of=t + 1000)])
    state = store.latest([instrument])[instrument].values
    assert (state["last_price"], state["close_price"]) == (50.0, 49.0)


def test_history_is_newest_first_and_bounded_by_time(
    store: MarketDataStore, connection: happybase.Connection, instrument: str
) -> None:
    t = now_us()
    times = [t - 3_000_000, t - 2_000_000, t - 1_000_000, t]
    store.write([event(instrument, at, mid=float(i)) for i, at in enumerate(times)])
    store.write([event(f"{instrument}X", t, mid=99.0)])  # a neighbour whose id extends this one
    records = store.history(instrument)
    assert [r["event_time"] for r in records] == times[::-1]
    assert [r["mid"] for r in records] == [3.0, 2.0, 1.0, 0.0]
    assert records[0] == event(instrument, t, mid=3.0)  # every field back, with its type (times as µs)
    assert [r["event_time"] for r in store.history(instrument, since_us=times[1], until_us=times[2])] == [
        times[2],
        times[1],
    ]
    assert [r["event_time"] for r in store.history(instrument, limit=1)] == [t]
    raw = connection.table(HISTORY).row(history_row_key(instrument, t), include_timestamp=True)
    assert raw == {HISTORY_COLUMN: (store.framed(event(instrument, t, mid=3.0)), t // 1000)}
    assert raw[HISTORY_COLUMN][0][0] == 0  # the Confluent magic byte, then the registry's schema id


def test_the_cli_lists_the_tables(hbase_stack: Settings) -> None:
    from tests.support.stack import tickflow

    result = tickflow("hbase", "tables", check=False)
    assert result.returncode == 0, result.stderr
    assert "md:history" in result.stdout and "md:latest" in result.stdout
