"""The bytes of the HBase layout, pinned: the Java sink and every reader depend on them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.hbase.layout import (
    CLEARED,
    CellType,
    EventLayout,
    UndecodableCell,
    decode,
    encode,
    event_layout,
    history_cells,
    history_row_key,
    parse_history_row_key,
    table_specs,
)
from tickflow.schemas import load
from tickflow.settings import Settings

T0 = 1_764_000_000_123_456  # µs since the epoch
SCHEMA_ID = 7


@pytest.fixture(scope="module")
def layout() -> EventLayout:
    return event_layout(Settings())


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return load("tickflow.md.EnrichedEvent", Settings().schemas_dir).definition


def writer_schemas(*known: tuple[int, dict[str, Any]]) -> Any:
    """An in-memory registry: schema id -> parsed writer schema, UndecodableCell for any other id."""
    parsed = {schema_id: fastavro.parse_schema(definition) for schema_id, definition in known}

    def lookup(schema_id: int) -> Any:
        if schema_id not in parsed:
            raise UndecodableCell(f"schema id {schema_id} is unknown")
        return parsed[schema_id]

    return lookup


def full_event(**fields: Any) -> dict[str, Any]:
    """An EnrichedEvent with its required fields, a filled quote, an enum, an int and some nulls."""
    return {
        "instrument_id": "XNYS:IBM", "event_time": T0, "event_count": 2, "enriched": True,
        "bid_price": 101.25, "bid_price_as_of": T0 - 5_000, "bid_size": 300, "bid_size_as_of": T0 - 5_000,
        "ask_price": None, "trade_side": "sell", "trade_side_as_of": T0 - 1, "symbol": "IBM", "sector": None,
        "ingest_time": T0 + 1_000, "processed_time": T0 + 2_000, "batch_id": 42, **fields,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "value", "raw"),
    [
        (CellType.DOUBLE, 101.25, bytes.fromhex("4059500000000000")),
        (CellType.DOUBLE, -0.5, bytes.fromhex("bfe0000000000000")),
        (CellType.LONG, 300, bytes.fromhex("000000000000012c")),
        (CellType.LONG, -1, bytes.fromhex("ffffffffffffffff")),
        (CellType.TIMESTAMP, T0, bytes.fromhex("0006445941642240")),
        (CellType.BOOLEAN, True, b"\xff"),
        (CellType.BOOLEAN, False, b"\x00"),
        (CellType.STRING, "XNYS:ÄB", b"XNYS:\xc3\x84B"),
    ],
)
def test_cells_encode_as_hbase_bytes_does_and_decode_back(kind: CellType, value: object, raw: bytes) -> None:
    assert encode(kind, value) == raw
    assert decode(kind, raw) == value


def test_a_timestamp_may_be_given_as_fastavros_datetime() -> None:
    as_datetime = datetime(2025, 11, 24, 16, 0, 0, 123_456, tzinfo=UTC)
    assert encode(CellType.TIMESTAMP, as_datetime) == encode(CellType.TIMESTAMP, 1_764_000_000_123_456)


def test_history_row_key_is_id_nul_reversed_time() -> None:
    key = history_row_key("XNYS:IBM", T0)
    assert key == b"XNYS:IBM\x00" + (2**63 - 1 - T0).to_bytes(8, "big")
    assert key.hex() == "584e59533a49424d007ff9bba6be9bddbf"
    assert parse_history_row_key(key) == ("XNYS:IBM", T0)


def test_newer_history_rows_sort_first_and_instruments_do_not_interleave() -> None:
    keys = [history_row_key(i, t) for i in ("XNYS:A", "XNYS:AB") for t in (T0, T0 + 1, 0)]
    assert sorted(keys) == [
        history_row_key("XNYS:A", T0 + 1),
        history_row_key("XNYS:A", T0),
        history_row_key("XNYS:A", 0),
        history_row_key("XNYS:AB", T0 + 1),
        history_row_key("XNYS:AB", T0),
        history_row_key("XNYS:AB", 0),
    ]


def test_an_instrument_id_with_nul_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot contain NUL"):
        history_row_key("bad\x00id", T0)


def test_filled_fields_are_those_with_an_as_of_sibling(layout: EventLayout) -> None:
    assert layout.filled == ("bid_price", "bid_size", "ask_price", "ask_size", "last_price", "close_price",
                             "reference_price", "trade_id", "trade_price", "trade_size", "trade_side",
                             "cancelled_trade_id")  # fmt: skip
    assert layout.types["trade_side"] is CellType.STRING  # an enum
    assert layout.types["event_count"] is CellType.LONG  # an int, widened
    assert layout.types["ingest_time"] is CellType.TIMESTAMP
    assert not any(name.endswith("_as_of") for name in layout.extra)


def test_latest_cells_carry_each_filled_fields_as_of_time_and_skip_nulls(layout: EventLayout) -> None:
    event = {
        "instrument_id": "XNYS:IBM",
        "event_time": T0,
        "event_count": 2,
        "bid_price": 101.25,
        "bid_price_as_of": T0 - 5_000,
        "ask_price": None,  # never set: no cell, and no delete either
        "trade_side": "buy",
        "trade_side_as_of": T0,
        "enriched": True,
        "sector": None,
    }
    assert layout.latest_cells(event) == {
        (T0 - 5_000) // 1000: {b"f:bid_price": bytes.fromhex("4059500000000000")},
        T0 // 1000: {
            b"f:trade_side": b"buy",
            b"e:instrument_id": b"XNYS:IBM",
            b"e:event_time": bytes.fromhex("0006445941642240"),
            b"e:event_count": bytes.fromhex("0000000000000002"),
            b"e:enriched": b"\xff",
        },
    }


TRADE = ("trade_id", "trade_price", "trade_size", "trade_side")


def cancel_event(at: int, trade_id: str = "T1", **fields: Any) -> dict[str, Any]:
    """The record of a cancel of the trade the registers held: trade fields null as of the cancel."""
    cleared = {name: None for name in TRADE} | {f"{name}_as_of": at for name in TRADE}
    return full_event(event_time=at, cancelled_trade_id=trade_id, cancelled_trade_id_as_of=at, **cleared, **fields)


def test_a_cleared_register_is_an_empty_cell_at_its_as_of_and_a_never_set_one_no_cell(layout: EventLayout) -> None:
    cells = layout.latest_cells(cancel_event(T0 + 2_000))
    at = (T0 + 2_000) // 1000
    assert {column: raw for column, raw in cells[at].items() if column.startswith(b"f:")} == {
        b"f:trade_id": b"", b"f:trade_price": b"", b"f:trade_size": b"", b"f:trade_side": b"",
        b"f:cancelled_trade_id": b"T1",
    }  # fmt: skip
    every = {column for by_time in cells.values() for column in by_time}
    assert b"f:ask_price" not in every, "value and as-of null: never set, nothing written"
    assert b"e:sector" not in every, "family e: a null writes nothing"
    assert CLEARED == b""


def test_a_cleared_register_round_trips_as_none_with_its_as_of(layout: EventLayout) -> None:
    cells = layout.latest_cells(cancel_event(T0 + 2_000))
    flat = {column: raw for by_time in cells.values() for column, raw in by_time.items()}
    values = layout.decode_cells(flat)
    assert {name: values[name] for name in TRADE} == dict.fromkeys(TRADE)
    assert values["cancelled_trade_id"] == "T1"
    assert values["bid_price"] == 101.25
    assert "ask_price" not in values
    stamps = {column.decode()[2:]: at for at, by_time in cells.items() for column in by_time if column[:2] == b"f:"}
    assert stamps["trade_price"] == (T0 + 2_000) // 1000  # the as-of the reader knows from the cell timestamp


def test_only_an_empty_f_cell_is_null(layout: EventLayout) -> None:
    assert layout.decode_cells({b"f:trade_price": b"", b"f:trade_side": b"", b"e:sector": b""}) == {
        "trade_price": None, "trade_side": None, "sector": ""
    }  # fmt: skip


def test_a_v1_record_without_the_cancel_fields_gives_the_cells_it_always_did(layout: EventLayout) -> None:
    v1 = full_event(trade_id="T1", trade_id_as_of=T0 - 1, trade_price=9.5, trade_price_as_of=T0 - 1)
    cells = layout.latest_cells(v1)
    assert cells[(T0 - 1) // 1000][b"f:trade_price"] == encode(CellType.DOUBLE, 9.5)
    every = {column for by_time in cells.values() for column in by_time}
    assert not any(column.startswith(b"f:cancelled") for column in every)
    assert all(raw != CLEARED for by_time in cells.values() for raw in by_time.values()), "v1 clears nothing"


def test_history_is_one_cell_holding_the_framed_record_as_it_is_at_event_time(definition: dict[str, Any]) -> None:
    value = compile_encoder(definition, prefix=confluent_prefix(SCHEMA_ID))(full_event())
    row, cells, timestamp = history_cells(full_event(), value)
    assert row == history_row_key("XNYS:IBM", T0)
    assert timestamp == T0 // 1000
    assert cells == {b"h:r": value}
    assert value[:5] == b"\x00\x00\x00\x00\x07"  # magic byte 0, schema id 7, then the Avro body
    # whatever bytes the record came as are the ones stored: nothing is re-encoded
    assert history_cells(full_event(), b"\x00anything")[1] == {b"h:r": b"\x00anything"}


def test_a_history_cell_decodes_to_what_the_per_field_cells_gave(
    layout: EventLayout, definition: dict[str, Any]
) -> None:
    event = full_event()
    value = compile_encoder(definition, ("instrument_id",), confluent_prefix(SCHEMA_ID))(event)
    values = layout.history_values(value, writer_schemas((SCHEMA_ID, definition)))
    assert values == {name: v for name, v in event.items() if v is not None}
    assert values["bid_price_as_of"] == T0 - 5_000  # a timestamp as µs (fastavro reads a datetime)
    # the same values and types as the cells of the layout before (one per field, HBase Bytes) decoded to
    per_field = layout.decode_cells(
        {f"h:{name}".encode(): encode(layout.types[name], v) for name, v in event.items() if v is not None}
    )
    assert values == per_field
    assert {name: type(v) for name, v in values.items()} == {name: type(v) for name, v in per_field.items()}


def test_a_history_cell_of_a_newer_writer_schema_keeps_the_fields_the_layout_knows(
    layout: EventLayout, definition: dict[str, Any]
) -> None:
    venue = {"name": "venue", "type": ["null", "string"], "default": None}
    newer = {**definition, "fields": [*definition["fields"], venue]}
    value = compile_encoder(newer, prefix=confluent_prefix(8))(full_event(venue="XNYS-1"))
    values = layout.history_values(value, writer_schemas((SCHEMA_ID, definition), (8, newer)))
    assert "venue" not in values
    assert values["bid_price"] == 101.25


def test_history_of_a_cancel_and_of_a_v1_record(layout: EventLayout, definition: dict[str, Any]) -> None:
    value = compile_encoder(definition, prefix=confluent_prefix(SCHEMA_ID))(cancel_event(T0))
    values = layout.history_values(value, writer_schemas((SCHEMA_ID, definition)))
    assert values["cancelled_trade_id"] == "T1"
    assert values["cancelled_trade_id_as_of"] == values["event_time"] == T0  # the record of the cancel itself
    assert "trade_price" not in values and values["trade_price_as_of"] == T0  # cleared: the as-of, no value

    v2_only = {"cancelled_trade_id", "cancelled_trade_id_as_of"}
    v1 = {**definition, "fields": [f for f in definition["fields"] if f["name"] not in v2_only]}
    old = compile_encoder(v1, prefix=confluent_prefix(3))(full_event())
    values = layout.history_values(old, writer_schemas((3, v1), (SCHEMA_ID, definition)))
    assert values == {name: v for name, v in full_event().items() if v is not None}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "not Confluent-framed"),
        (b"\x00\x00\x00", "not Confluent-framed"),
        (b"\x01\x00\x00\x00\x07\x02", "not Confluent-framed"),
        (confluent_prefix(99) + b"\x02", "schema id 99 is unknown"),
        (confluent_prefix(SCHEMA_ID) + b"\x10XNYS", "does not decode with schema id 7"),
        (confluent_prefix(SCHEMA_ID), "does not decode with schema id 7"),
    ],
)
def test_bytes_that_are_not_a_framed_record_are_refused_with_the_reason(
    layout: EventLayout, definition: dict[str, Any], value: bytes, reason: str
) -> None:
    with pytest.raises(UndecodableCell, match=reason):
        layout.history_values(value, writer_schemas((SCHEMA_ID, definition)))


def test_bytes_left_over_after_the_record_are_refused(layout: EventLayout, definition: dict[str, Any]) -> None:
    value = compile_encoder(definition, prefix=confluent_prefix(SCHEMA_ID))(full_event())
    with pytest.raises(UndecodableCell, match="3 bytes left over"):
        layout.history_values(value + b"\x00\x00\x00", writer_schemas((SCHEMA_ID, definition)))


def test_tables_are_as_the_contract_says() -> None:
    latest, history = table_specs(Settings(hbase_history_ttl_s=3600))
    assert latest.name == "md:latest"
    assert [
        (f.name, f.max_versions, f.ttl_s, f.in_memory, f.bloom, f.in_memory_compaction) for f in latest.families
    ] == [
        ("f", 1, None, True, "ROW", "EAGER"),
        ("e", 1, None, True, "ROW", "EAGER"),
    ]
    (family,) = history.families
    assert history.name == "md:history"
    assert (family.name, family.max_versions, family.ttl_s, family.block_encoding, family.bloom) == (
        "h", 1, 3600, "FAST_DIFF", "ROW"
    )  # fmt: skip
    assert family.compression == "LZ4"
