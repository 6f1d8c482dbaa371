"""Decoding and validation: every bad message gets a reason, evolution resolves into the reader schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.stream.decode import Decoder, Limits, Rejected, validate

ROOT = Path(__file__).parents[2]
V1 = json.loads((ROOT / "schemas" / "tickflow.md.MarketEvent.avsc").read_text())
V2 = json.loads((ROOT / "tests" / "fixtures" / "schemas" / "tickflow.md.MarketEvent.v2.avsc").read_text())
NOW = 1_795_793_405_000_000
QUOTE = {"event_id": "Q1-1", "instrument_id": "XNAS:AAPL", "source": "quotes", "event_time": NOW, "sequence": 1,
         "bid_price": 100.0, "bid_size": 5, "ask_price": 100.5, "ask_size": 7}  # fmt: skip


def decoder(reader: dict[str, Any] = V2) -> Decoder:
    registry = {1: json.dumps(V1), 2: json.dumps(V2)}
    return Decoder(reader, registry.get)


def framed(schema: dict[str, Any], schema_id: int, record: dict[str, Any]) -> bytes:
    return compile_encoder(schema, prefix=confluent_prefix(schema_id))(record)


def test_v1_and_v2_records_decode_into_the_latest_reader_schema() -> None:
    old = decoder().decode(framed(V1, 1, QUOTE))
    new = decoder().decode(framed(V2, 2, {**QUOTE, "venue": "XBOS"}))
    assert old["venue"] is None and new["venue"] == "XBOS"
    assert old["bid_price"] == 100.0 and old["trade_id"] is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "not in the Confluent wire format"),
        (b"\xff" + b"x" * 30, "not in the Confluent wire format"),
        (confluent_prefix(77) + b"\x00" * 20, "unknown schema id 77"),
        (framed(V1, 1, QUOTE)[:20], "undecodable Avro body for schema id 1"),
        (framed(V1, 1, QUOTE) + b"\x00\x00", "2 bytes left over"),
    ],
)
def test_bad_bytes_are_rejected_with_a_reason(value: bytes, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        decoder().decode(value)


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"instrument_id": ""}, "", "missing instrument_id"),
        ({"event_id": ""}, "XNAS:AAPL", "missing event_id"),
        ({}, "XNAS:MSFT", "is not the instrument_id"),
        ({}, None, "is not the instrument_id"),
        ({"bid_size": -1}, "XNAS:AAPL", "bid_size -1 is negative"),
        ({"ask_price": -3.0, "bid_price": None}, "XNAS:AAPL", "ask_price -3.0 is not positive"),
        ({"bid_price": 101.0}, "XNAS:AAPL", "above ask"),
        ({"event_time": NOW + 3_600_000_000}, "XNAS:AAPL", "3600s in the future"),
    ],
)
def test_impossible_events_are_rejected_with_a_reason(change: dict[str, Any], key: str | None, reason: str) -> None:
    record = decoder().decode(framed(V1, 1, {**QUOTE, **change}))
    with pytest.raises(Rejected, match=reason):
        validate(record, key, NOW, Limits())


def test_a_valid_event_passes_and_crossed_tolerance_is_a_setting() -> None:
    record = decoder().decode(framed(V1, 1, QUOTE))
    validate(record, "XNAS:AAPL", NOW, Limits())
    crossed = decoder().decode(framed(V1, 1, {**QUOTE, "bid_price": 100.6}))
    validate(crossed, "XNAS:AAPL", NOW, Limits(crossed_tolerance=0.01))
