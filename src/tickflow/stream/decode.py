"""Decoding the Confluent wire format and validating market events (DESIGN §6).

Every message either decodes into the latest reader schema of ``MarketEvent`` (records
of any registered version resolve into it, Avro schema resolution) and passes
validation, or it is rejected with a reason that goes to the dead-letter topic along
with the original bytes. Nothing here raises on bad input.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from tickflow.avro_codec import to_micros

MAGIC = 0


@dataclass(frozen=True)
class Limits:
    """Validation settings: how far in the future an event may be, how crossed a quote."""

    max_future_us: int = 60_000_000
    crossed_tolerance: float = 0.0  # bid may exceed ask by this fraction of ask


class Rejected(ValueError):
    """A message that cannot become an event; ``str`` is the reason recorded in the DLQ."""


class Decoder:
    """Confluent-framed Avro -> dict in the reader schema; writer schemas fetched once per id."""

    def __init__(self, reader_schema: dict[str, Any], fetch_writer: Callable[[int], str | None]) -> None:
        self.reader = fastavro.parse_schema(reader_schema)
        self.reader_form = to_parsing_canonical_form(self.reader)
        self.fetch_writer = fetch_writer
        self.writers: dict[int, tuple[Any, Any] | None] = {}

    def writer(self, schema_id: int) -> tuple[Any, Any] | None:
        """(writer schema, reader schema or None when no resolution is needed), None if unknown."""
        if schema_id not in self.writers:
            text = self.fetch_writer(schema_id)
            if text is None:
                self.writers[schema_id] = None
            else:
                writer = fastavro.parse_schema(json.loads(text))
                # Same schema as the reader: skip Avro schema resolution, about twice as fast.
                same = to_parsing_canonical_form(writer) == self.reader_form
                self.writers[schema_id] = (writer, None if same else self.reader)
        return self.writers[schema_id]

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value or len(value) < 6 or value[0] != MAGIC:
            raise Rejected("not in the Confluent wire format (no magic byte 0 and schema id)")
        schema_id = int.from_bytes(value[1:5], "big")
        schemas = self.writer(schema_id)
        if schemas is None:
            raise Rejected(f"unknown schema id {schema_id}")
        body = io.BytesIO(value)
        body.seek(5)
        try:
            record = fastavro.schemaless_reader(body, *schemas)
        except Exception as error:  # noqa: BLE001 - fastavro raises many kinds on bad bytes
            raise Rejected(f"undecodable Avro body for schema id {schema_id}: {type(error).__name__}") from None
        if body.tell() != len(value):
            raise Rejected(f"{len(value) - body.tell()} bytes left over after the record (schema id {schema_id})")
        if not isinstance(record, dict):
            raise Rejected(f"schema id {schema_id} is not a record schema")
        return record


def registry_fetcher(registry_url: str) -> Callable[[int], str | None]:
    """Look a schema id up in the registry; None when the registry does not know it."""

    def fetch(schema_id: int) -> str | None:
        import httpx

        response = httpx.get(f"{registry_url}/schemas/ids/{schema_id}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        schema: str = response.json()["schema"]
        return schema

    return fetch


def validate(record: dict[str, Any], key: str | None, now_us: int, limits: Limits) -> None:
    """Raise :class:`Rejected` for an event the platform must not fill."""
    instrument_id = record.get("instrument_id")
    if not instrument_id or not str(instrument_id).strip():
        raise Rejected("missing instrument_id")
    if not record.get("event_id"):
        raise Rejected("missing event_id")
    if key != instrument_id:
        raise Rejected(f"message key {key!r} is not the instrument_id {instrument_id!r}")
    event_time = to_micros(record["event_time"])
    if event_time > now_us + limits.max_future_us:
        raise Rejected(f"event_time {(event_time - now_us) / 1e6:.0f}s in the future")
    for name in ("bid_price", "ask_price", "last_price", "close_price", "reference_price", "trade_price"):
        value = record.get(name)
        if value is not None and not value > 0:  # also catches NaN
            raise Rejected(f"{name} {value} is not positive")
    for name in ("bid_size", "ask_size", "trade_size"):
        value = record.get(name)
        if value is not None and value < 0:
            raise Rejected(f"{name} {value} is negative")
    bid, ask = record.get("bid_price"), record.get("ask_price")
    if bid is not None and ask is not None and bid > ask * (1 + limits.crossed_tolerance):
        raise Rejected(f"bid {bid} above ask {ask} beyond the {limits.crossed_tolerance:.2%} tolerance")
