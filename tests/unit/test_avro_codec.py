"""The compiled encoder writes exactly the bytes fastavro writes; the wire format is pinned."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from tickflow.avro_codec import UnsupportedSchema, compile_encoder, confluent_prefix, zigzag_varint
from tickflow.sources.simulator import Source, generators
from tickflow.sources.universe import build_universe

SCHEMAS = Path(__file__).parents[2] / "schemas"


def definition(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.avsc").read_text())


def fastavro_bytes(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


KNOWN_QUOTE = {
    "event_id": "Q7-42",
    "instrument_id": "XNAS:AAPL",
    "source": "quotes",
    "event_time": 1_795_793_405_754_602,
    "sequence": 42,
    "bid_price": 187.21,
    "bid_size": 300,
    "ask_price": 187.23,
    "ask_size": 500,
}


def test_known_event_encodes_to_pinned_confluent_bytes() -> None:
    encode = compile_encoder(definition("tickflow.md.MarketEvent"), ("instrument_id",), confluent_prefix(8))
    expected = bytes.fromhex(
        "00" "00000008"  # magic byte, schema id 8 (big-endian)
        "0a" "51372d3432"  # event_id: length 5 (zig-zag 10), "Q7-42"
        "12" "584e41533a4141504c"  # instrument_id: length 9, "XNAS:AAPL"
        "00"  # source: enum index 0 (quotes)
        "d4f3d1c0f7d0b006"  # event_time: zig-zag varint of the microseconds
        "54"  # sequence 42
        "02" "1f85eb51b8666740"  # bid_price: union branch 1, little-endian double
        "02" "d804"  # bid_size: 300
        "02" "8fc2f5285c676740"  # ask_price
        "02" "e807"  # ask_size: 500
        "0000000000000000"  # last/close/reference price, trade id/price/size/side, cancelled trade id: null
    )  # fmt: skip
    assert encode(KNOWN_QUOTE) == expected
    assert expected[5:] == fastavro_bytes(definition("tickflow.md.MarketEvent"), KNOWN_QUOTE)


@pytest.mark.parametrize("source", list(Source))
def test_simulated_events_encode_like_fastavro(source: Source) -> None:
    schema = definition("tickflow.md.MarketEvent")
    encode = compile_encoder(schema, ("instrument_id",))
    (generator,) = generators(build_universe(50, 3), {source: 1000.0}, 1_795_793_405_000_000, 3)
    for event in generator.batch(2000):
        assert encode(event) == fastavro_bytes(schema, event)


def test_enriched_events_with_random_nulls_encode_like_fastavro() -> None:
    schema = definition("tickflow.md.EnrichedEvent")
    encode = compile_encoder(schema)
    rng = random.Random(5)
    samples = {"double": lambda: rng.uniform(-1e6, 1e6), "long": lambda: rng.randint(-(2**62), 2**62),
               "string": lambda: "é" * rng.randint(0, 70), "boolean": lambda: rng.random() < 0.5,
               "int": lambda: rng.randint(-(2**31), 2**31 - 1)}  # fmt: skip
    for _ in range(500):
        record: dict[str, Any] = {}
        for field in schema["fields"]:
            kind = field["type"]
            if isinstance(kind, list):
                if rng.random() < 0.4:
                    record[field["name"]] = None
                    continue
                kind = kind[1]
            base = kind["type"] if isinstance(kind, dict) else kind
            if base == "enum":
                record[field["name"]] = rng.choice(kind["symbols"])
            else:
                record[field["name"]] = samples[base]()
        assert encode(record) == fastavro_bytes(schema, record)


def test_timestamps_may_be_datetimes() -> None:
    schema = definition("tickflow.md.MarketEvent")
    when = datetime(2026, 11, 27, 15, 30, 5, 123456, tzinfo=UTC)
    event = {**KNOWN_QUOTE, "event_time": when}
    assert compile_encoder(schema)(event) == fastavro_bytes(schema, event)


@pytest.mark.parametrize("value", [0, -1, 1, 63, -64, 64, 8191, 8192, -8193, 2**31, -(2**63), 2**63 - 1])
def test_varint_matches_avro_spec(value: int) -> None:
    assert zigzag_varint(value) == fastavro_bytes("long", value)  # type: ignore[arg-type]


def test_missing_required_field_is_an_error_not_garbage() -> None:
    encode = compile_encoder(definition("tickflow.md.MarketEvent"))
    with pytest.raises(KeyError):
        encode({k: v for k, v in KNOWN_QUOTE.items() if k != "event_time"})


def test_unsupported_types_are_refused_when_compiling() -> None:
    nested = {
        "type": "record",
        "name": "N",
        "fields": [{"name": "xs", "type": {"type": "array", "items": "long"}}],
    }
    with pytest.raises(UnsupportedSchema):
        compile_encoder(nested)
