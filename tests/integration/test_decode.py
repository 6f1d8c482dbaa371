"""Decoding and validation in the JVM: every bad record gets its reason, evolution resolves into the reader."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tickflow.avro_codec import compile_encoder, confluent_prefix, zigzag_varint
from tickflow.stream.decode import Limits, decoded_events, decoded_events_jvm

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
V1 = json.loads((ROOT / "schemas" / "tickflow.md.MarketEvent.avsc").read_text())
V2 = json.loads((ROOT / "tests" / "fixtures" / "schemas" / "tickflow.md.MarketEvent.venue.avsc").read_text())
WRITERS = {1: json.dumps(V1), 2: json.dumps(V2)}
NOW = int(datetime.now(UTC).timestamp() * 1_000_000)
QUOTE = {"event_id": "Q1-1", "instrument_id": "XNAS:AAPL", "source": "quotes", "event_time": NOW, "sequence": 1,
         "bid_price": 100.0, "bid_size": 5, "ask_price": 100.5, "ask_size": 7}  # fmt: skip


@pytest.fixture(scope="module", params=[decoded_events, decoded_events_jvm], ids=["sql", "jvm"])
def decoder(request: pytest.FixtureRequest) -> Any:
    """Each implementation: Spark SQL (what the stream runs) and the JVM operator (jvm/stream)."""
    return request.param


def framed(schema: dict[str, Any], schema_id: int, record: dict[str, Any]) -> bytes:
    return compile_encoder(schema, prefix=confluent_prefix(schema_id))(record)


def kafka_records(spark: Any, records: list[tuple[bytes | None, bytes]]) -> Any:
    """Records as the Kafka source hands them over."""
    rows = [(key, value, "md.events", 0, offset, datetime.now(UTC).replace(tzinfo=None))
            for offset, (key, value) in enumerate(records)]  # fmt: skip
    return spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )


def decode(
    decoder: Any, spark: Any, records: list[tuple[str | None, bytes]], limits: Limits | None = None
) -> list[dict[str, Any]]:
    """Records with these keys through the decoder (decoded_events or decoded_events_jvm)."""
    raw = kafka_records(spark, [(key.encode() if key else None, value) for key, value in records])
    return [r.asDict() for r in decoder(raw, V2, WRITERS, limits or Limits()).orderBy("offset").collect()]


def test_v1_and_v2_records_decode_into_the_latest_reader_schema(spark, decoder) -> None:  # type: ignore[no-untyped-def]
    old, new = decode(
        decoder, spark, [("XNAS:AAPL", framed(V1, 1, QUOTE)), ("XNAS:AAPL", framed(V2, 2, {**QUOTE, "venue": "X"}))]
    )
    for row in (old, new):
        assert row["reason"] is None and row["value"] is None and row["kafka_key"] is None
        assert row["bid_price"] == 100.0 and row["trade_id"] is None and row["event_time"] == NOW
    assert old["event_key"] == new["event_key"]  # same event_id, same key: repeats are dropped by it


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "not in the Confluent wire format"),
        (b"\xff" + b"x" * 30, "not in the Confluent wire format"),
        (confluent_prefix(77) + b"\x00" * 20, "unknown schema id 77"),
        (framed(V1, 1, QUOTE)[:20], "undecodable Avro body for schema id 1"),
        (framed(V1, 1, QUOTE) + b"\x00\x00", "2 bytes left over after the record (schema id 1)"),
    ],
)
def test_bad_bytes_are_rejected_with_a_reason_and_keep_their_bytes(spark, decoder, value: bytes, reason: str) -> None:  # type: ignore[no-untyped-def]
    (row,) = decode(decoder, spark, [("XNAS:AAPL", value)])
    assert reason in row["reason"]
    assert bytes(row["value"]) == value and bytes(row["kafka_key"]) == b"XNAS:AAPL" and row["instrument_id"] is None


def test_a_corrupt_length_prefix_is_rejected_not_allocated(spark, decoder) -> None:  # type: ignore[no-untyped-def]
    """A string that claims 1.5 GB in a 9-byte body: the JVM refuses to allocate it (AVRO_LIMITS) instead of
    dying of it, and the record is rejected like any undecodable one."""
    value = confluent_prefix(1) + zigzag_varint(1_500_000_000) + b"Q1-1"
    (row,) = decode(decoder, spark, [("XNAS:AAPL", value)])
    assert row["reason"] == "undecodable Avro body for schema id 1" and bytes(row["value"]) == value


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"instrument_id": ""}, "", "missing instrument_id"),
        ({"event_id": " "}, "XNAS:AAPL", "missing event_id"),
        ({}, "XNAS:MSFT", "message key 'XNAS:MSFT' is not the instrument_id 'XNAS:AAPL'"),
        ({}, None, "message key None is not the instrument_id 'XNAS:AAPL'"),
        ({"bid_size": -1}, "XNAS:AAPL", "bid_size -1 is negative"),
        ({"ask_price": -3.0, "bid_price": None}, "XNAS:AAPL", "ask_price -3.0 is not positive"),
        ({"last_price": float("nan")}, "XNAS:AAPL", "last_price NaN is not positive"),
        ({"ask_price": float("inf")}, "XNAS:AAPL", "ask_price Infinity is not finite"),
        ({"trade_price": float("-inf")}, "XNAS:AAPL", "trade_price -Infinity is not positive"),
        ({"bid_price": 101.0}, "XNAS:AAPL", "bid 101.0 above ask 100.5 beyond the 0.00% tolerance"),
        ({"event_time": NOW + 3_600_000_000}, "XNAS:AAPL", "s in the future"),
    ],
)
def test_impossible_events_are_rejected_with_a_reason(
    spark, decoder, change: dict[str, Any], key: str | None, reason: str
) -> None:  # type: ignore[no-untyped-def]
    (row,) = decode(decoder, spark, [(key, framed(V1, 1, {**QUOTE, **change}))])
    assert row["reason"] is not None and reason in row["reason"]


def test_a_valid_event_passes_and_crossed_tolerance_is_a_setting(spark, decoder) -> None:  # type: ignore[no-untyped-def]
    crossed = framed(V1, 1, {**QUOTE, "bid_price": 100.6})
    rows = decode(
        decoder, spark, [("XNAS:AAPL", framed(V1, 1, QUOTE)), ("XNAS:AAPL", crossed)], Limits(crossed_tolerance=0.01)
    )
    assert [r["reason"] for r in rows] == [None, None]


def test_bytes_that_are_not_utf8_are_rejected_and_reach_pandas_as_they_came(spark, decoder) -> None:  # type: ignore[no-untyped-def]
    """A key or an event string that is not UTF-8 gets a reason, and every row converts from Arrow to pandas
    as the fill task converts it (a string column that is not UTF-8 fails there, and the stream with it)."""
    good = framed(V1, 1, QUOTE)
    bad_instrument = good.replace(b"XNAS:AAPL", b"XNAS:AAP\xff")
    bad_trade = framed(V1, 1, {**QUOTE, "trade_id": "T-1"}).replace(b"T-1", b"T-\xff")
    records = [(b"\xffXNAS:AAPL", good), (b"XNAS:AAP\xff", bad_instrument), (b"XNAS:AAPL", bad_trade)]
    raw = kafka_records(spark, records)
    rows = decoder(raw, V2, WRITERS, Limits()).toArrow().to_pandas().sort_values("offset")
    assert list(rows["reason"]) == [
        "message key '\ufffdXNAS:AAPL' is not the instrument_id 'XNAS:AAPL'",
        "instrument_id is not valid UTF-8",
        "trade_id is not valid UTF-8",
    ]
    assert list(zip(rows["kafka_key"], rows["value"], strict=True)) == records
