"""MarketDataStore's md:history on an in-memory HBase and registry: what ``write`` puts, what ``history``
gives back, and a cell that does not decode. The real Thrift server and registry: tests/integration."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tickflow.hbase.layout import HISTORY, LATEST, UndecodableCell, history_row_key
from tickflow.hbase.store import MarketDataStore, RegistrySchemas, SchemaRegistryUnavailable
from tickflow.schemas import load
from tickflow.settings import Settings

T = TypeVar("T")
T0 = 1_764_000_000_123_456  # µs since the epoch
SCHEMA_ID = 7


class Table:
    """The part of a happybase table the store uses; cells keep their timestamp, one version each, the newest
    (at the same timestamp, the later put), as HBase keeps them with VERSIONS=1."""

    def __init__(self) -> None:
        self.cells: dict[bytes, dict[bytes, tuple[bytes, int | None]]] = {}

    def put(self, row: bytes, data: dict[bytes, bytes], timestamp: int | None = None) -> None:
        cells = self.cells.setdefault(row, {})
        for column, value in data.items():
            kept = cells.get(column)
            if kept is None or timestamp is None or kept[1] is None or timestamp >= kept[1]:
                cells[column] = (value, timestamp)

    def rows(self, rows: list[bytes], include_timestamp: bool = False) -> list[tuple[bytes, dict[bytes, Any]]]:
        found = [(row, self.cells[row]) for row in rows if self.cells.get(row)]
        return [
            (row, dict(cells) if include_timestamp else {c: v for c, (v, _) in cells.items()}) for row, cells in found
        ]

    def scan(
        self,
        row_start: bytes = b"",
        row_stop: bytes | None = None,
        limit: int | None = None,
        columns: list[bytes] | None = None,
    ) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
        found = []
        for row in sorted(self.cells):
            if row < row_start or (row_stop is not None and row >= row_stop):
                continue
            cells = {c: value for c, (value, _) in self.cells[row].items() if columns is None or c in columns}
            if cells:  # as HBase: a row without any of the columns asked for is not returned
                found.append((row, cells))
        return iter(found[:limit])


class Connection:
    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}

    def table(self, name: str) -> Table:
        return self.tables.setdefault(name, Table())


class Schemas:
    """An in-memory registry holding the EnrichedEvent schema file under SCHEMA_ID."""

    def __init__(self) -> None:
        self.parsed = {SCHEMA_ID: load("tickflow.md.EnrichedEvent", Settings().schemas_dir).parsed}
        self.lookups: list[int] = []

    def event_schema_id(self) -> int:
        return SCHEMA_ID

    def writer_schema(self, schema_id: int) -> Any:
        self.lookups.append(schema_id)
        if schema_id not in self.parsed:
            raise UndecodableCell(f"schema id {schema_id} is unknown")
        return self.parsed[schema_id]


class InMemoryStore(MarketDataStore):
    def __init__(self) -> None:
        self.fake_schemas = Schemas()
        super().__init__(Settings(), schemas=self.fake_schemas)
        self.connection = Connection()

    def _call(self, action: Callable[[Any], T]) -> T:
        return action(self.connection)

    @property
    def history_table(self) -> Table:
        return self.connection.table(HISTORY)

    @property
    def latest_table(self) -> Table:
        return self.connection.table(LATEST)


def event(at: int, **fields: Any) -> dict[str, Any]:
    return {"instrument_id": "XNYS:IBM", "event_time": at, "event_count": 1, "enriched": True,
            "ingest_time": at + 1_000, "processed_time": at + 2_000, "batch_id": 3, **fields}  # fmt: skip


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The store's warnings (a handler of its own: works with and without pytest's logging plugin)."""
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("tickflow.hbase.store")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_write_puts_one_history_cell_per_record_the_framed_record_at_event_time(store: InMemoryStore) -> None:
    first, second = event(T0, bid_price=101.25, bid_price_as_of=T0), event(T0 + 1_500, trade_side="buy")
    store.write([first, second])
    assert store.history_table.cells == {
        history_row_key("XNYS:IBM", T0): {b"h:r": (store.framed(first), T0 // 1000)},
        history_row_key("XNYS:IBM", T0 + 1_500): {b"h:r": (store.framed(second), (T0 + 1_500) // 1000)},
    }
    assert store.framed(first)[:5] == b"\x00\x00\x00\x00\x07"


def test_history_gives_back_what_was_written_newest_first(store: InMemoryStore) -> None:
    written = [event(T0 + n * 1_000_000, mid=100.0 + n, bid_size=n, bid_size_as_of=T0, sector=None) for n in range(3)]
    store.write(written)
    records = store.history("XNYS:IBM")
    assert records == [{k: v for k, v in e.items() if v is not None} for e in reversed(written)]
    assert [type(r["bid_size_as_of"]) for r in records] == [int, int, int]  # µs, as before
    assert [r["event_time"] for r in store.history("XNYS:IBM", since_us=T0 + 1, limit=1)] == [T0 + 2_000_000]
    assert store.fake_schemas.lookups == [SCHEMA_ID] * 4  # the real lookup caches; this one counts


def test_a_cell_that_does_not_decode_is_skipped_with_one_warning(store: InMemoryStore, warnings: list[str]) -> None:
    store.write([event(T0), event(T0 + 3)])
    table = store.history_table
    table.put(history_row_key("XNYS:IBM", T0 + 5), {b"h:mid": b"\x00" * 8})  # no h:r: not a record row
    table.put(history_row_key("XNYS:IBM", T0 + 4), {b"h:r": b"not a record"})
    table.put(history_row_key("XNYS:IBM", T0 + 2), {b"h:r": b"\x00\x00\x00\x00\x63\x02"})  # schema id 99
    table.put(history_row_key("XNYS:IBM", T0 + 1), {b"h:r": b"\x00\x00\x00\x00\x63\x04"})

    assert [r["event_time"] for r in store.history("XNYS:IBM")] == [T0 + 3, T0]
    assert store.fake_schemas.lookups.count(99) == 1, "an unknown id is asked about once per request"
    (line,) = warnings
    assert "md:history of XNYS:IBM: skipped 3 of 5 cells that do not decode" in line
    assert "not Confluent-framed" in line


TRADE = ("trade_id", "trade_price", "trade_size", "trade_side")


def trade(at: int, trade_id: str, price: float) -> dict[str, Any]:
    fields = {"trade_id": trade_id, "trade_price": price, "trade_size": 10, "trade_side": "buy"}
    return event(at, **fields, **{f"{name}_as_of": at for name in TRADE})


def cancel(at: int, trade_id: str) -> dict[str, Any]:
    """The record of the cancel of the trade the registers held: the trade fields null as of the cancel."""
    cleared = {name: None for name in TRADE} | {f"{name}_as_of": at for name in TRADE}
    return event(at, cancelled_trade_id=trade_id, cancelled_trade_id_as_of=at, **cleared)


def test_a_cancel_clears_the_trade_in_latest_and_reads_back_as_none_with_its_as_of(store: InMemoryStore) -> None:
    store.write([trade(T0, "T1", 101.5), cancel(T0 + 7_000, "T1")])
    state = store.latest(["XNYS:IBM"])["XNYS:IBM"]
    assert {name: state.values[name] for name in TRADE} == dict.fromkeys(TRADE)
    assert {name: state.as_of_ms[name] for name in TRADE} == dict.fromkeys(TRADE, (T0 + 7_000) // 1000)
    assert (state.values["cancelled_trade_id"], state.as_of_ms["cancelled_trade_id"]) == ("T1", (T0 + 7_000) // 1000)
    assert store.latest_table.cells[b"XNYS:IBM"][b"f:trade_price"] == (b"", (T0 + 7_000) // 1000)

    store.write([trade(T0 - 3_000, "T0", 99.0)])  # late and older than the cancel: loses
    assert store.latest(["XNYS:IBM"])["XNYS:IBM"].values["trade_price"] is None
    store.write([trade(T0 + 9_000, "T2", 102.0)])  # newer: replaces the empty cell
    state = store.latest(["XNYS:IBM"])["XNYS:IBM"]
    assert (state.values["trade_id"], state.values["trade_price"]) == ("T2", 102.0)
    assert state.values["cancelled_trade_id"] == "T1"  # the last cancel, filled forward


def test_an_empty_f_cell_reads_as_none_with_its_timestamp_and_scans_alike(store: InMemoryStore) -> None:
    store.latest_table.put(b"X:A", {b"f:trade_price": b"", b"f:bid_price": bytes(8), b"e:sector": b""}, timestamp=5)
    state = store.latest(["X:A"])["X:A"]
    assert state.values == {"trade_price": None, "bid_price": 0.0, "sector": ""}
    assert state.as_of_ms == {"trade_price": 5, "bid_price": 5}
    assert store.scan_latest(["trade_price", "sector"]) == {"X:A": {"trade_price": None, "sector": ""}}


def test_an_incomplete_event_is_refused_in_one_sentence(store: InMemoryStore) -> None:
    incomplete = {"instrument_id": "XNYS:IBM", "event_time": T0, "event_count": 1, "enriched": True}
    with pytest.raises(ValueError, match=r"not a whole EnrichedEvent .*ingest_time"):
        store.write([incomplete])
    assert store.history_table.cells == {}


class Registry:
    """The two calls of confluent-kafka's SchemaRegistryClient that RegistrySchemas makes."""

    def __init__(self, answer: Callable[[int], str]) -> None:
        self.answer = answer
        self.asked: list[int] = []

    def get_schema(self, schema_id: int) -> Any:
        self.asked.append(schema_id)
        return Schema(self.answer(schema_id), "AVRO")

    def register_schema(self, subject: str, schema: Any) -> int:
        self.asked.append(-1)
        return SCHEMA_ID


def test_the_registry_lookup_parses_a_schema_once_and_tells_unknown_ids_from_an_outage() -> None:
    text = load("tickflow.md.EnrichedEvent", Settings().schemas_dir).text

    def answer(schema_id: int) -> str:
        if schema_id == SCHEMA_ID:
            return text
        if schema_id == 99:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        raise httpx.ConnectError("Connection refused")

    registry = Registry(answer)
    schemas = RegistrySchemas(Settings(), client=registry)
    assert schemas.writer_schema(SCHEMA_ID) is schemas.writer_schema(SCHEMA_ID)
    assert schemas.event_schema_id() == schemas.event_schema_id() == SCHEMA_ID
    assert registry.asked == [SCHEMA_ID, -1]
    with pytest.raises(UndecodableCell, match="schema id 99 is unknown to the schema registry"):
        schemas.writer_schema(99)
    with pytest.raises(SchemaRegistryUnavailable, match=r"did not answer .*`tickflow stack up registry`"):
        schemas.writer_schema(5)
