"""The HBase layout of enriched events: tables, column families and the bytes of every cell.

``md:latest`` (row = instrument id) holds the newest state of each instrument:
family ``f`` one column per filled field (qualifier = field name) whose cell timestamp is the
field's as-of time in ms, family ``e`` every other non-null field (reference attributes, derived
values, record metadata; not the ``*_as_of`` fields, which ``f``'s timestamps carry) at the
record's event time in ms. Both families keep one version, so HBase itself keeps the value with the
newest timestamp per cell: a late or replayed record never overwrites a newer value, whatever the
arrival order. Nothing is ever deleted (a delete marker would mask later puts at or before its time).

A null is written by the rule of its family. A filled field that was never set (value and as-of
both null) writes nothing. A filled field whose value is null while its as-of is set is a *cleared
register*, "as of this time there is no value" (the trade fields after a cancel of the trade they
held: EnrichedEvent's ``cancelled_trade_id``): it is written as an EMPTY cell (zero bytes) at the
as-of, and readers take an empty ``f`` cell as null with a known as-of. Being an ordinary cell, it
competes by timestamp like a value: it replaces the cancelled value (which a cell left unwritten
would not), a later trade (newer as-of) replaces it, a late older trade does not. An empty string is
the same zero bytes, so a filled string field cannot hold "" (none does: ids and sides never are
empty). In ``e`` a null writes nothing, so each ``e`` column holds its last non-null value: a
derived value of a cleared trade (``trade_notional``) is still the cancelled trade's there.

``md:history`` (row = instrument id, 0x00, 8-byte big-endian ``2**63-1 - event_time_micros``) holds
one row per record, newest first in a prefix scan, expired by a TTL: ONE cell, ``h:r`` ("record"), at
the event time in ms, whose value is the record exactly as it was on Kafka, in the Confluent wire
format (magic byte 0, 4-byte big-endian schema id, Avro binary body). The sink stores the bytes it
received without re-encoding them, and one cell per record instead of one per non-null field (~46)
is most of what HBase spends per record (WAL and memstore work are per cell). The price: reading a
history cell takes its writer schema, fetched from the schema registry by the id in its framing
(``EventLayout.history_values`` with a ``WriterSchema`` lookup), and HBase can no longer filter
history by field (a column filter sees one opaque value).

``md:latest`` cell values follow the schema's types the way HBase's own ``Bytes`` utility writes them,
so Java readers use ``Bytes.toDouble/toLong/toBoolean/toString``: double as 8-byte IEEE-754
big-endian, int/long/timestamp-micros as 8-byte big-endian signed long (an int widened, so a schema
that widens int to long reads old cells), boolean one byte 0xFF/0x00, string and enum UTF-8; a cleared
register of family ``f``, whatever its type, zero bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro

from tickflow.schemas import AvroSchema, load
from tickflow.settings import Settings

EVENT_SCHEMA = "tickflow.md.EnrichedEvent"
NAMESPACE = "md"
LATEST = f"{NAMESPACE}:latest"
HISTORY = f"{NAMESPACE}:history"
FILLED_FAMILY = "f"
EXTRA_FAMILY = "e"
HISTORY_FAMILY = "h"
HISTORY_QUALIFIER = "r"  # the record
HISTORY_COLUMN = f"{HISTORY_FAMILY}:{HISTORY_QUALIFIER}".encode()
CONFLUENT_HEADER = 5  # magic byte 0, then the 4-byte big-endian schema id
CLEARED = b""  # a family-f cell of a cleared register: no value, as of the cell's timestamp
AS_OF_SUFFIX = "_as_of"
MAX_LONG = 2**63 - 1
_LONG = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Family:
    """A column family as the tables need it; names of compression etc. as HBase spells them."""

    name: str
    max_versions: int = 1
    ttl_s: int | None = None  # None: cells never expire
    compression: str = "NONE"
    block_encoding: str = "NONE"
    bloom: str = "ROW"
    in_memory: bool = False  # kept in the block cache's in-memory tier
    in_memory_compaction: str = "NONE"  # of the memstore: NONE, BASIC, EAGER or ADAPTIVE


@dataclass(frozen=True)
class TableSpec:
    name: str
    families: tuple[Family, ...]


def table_specs(settings: Settings) -> tuple[TableSpec, ...]:
    """The tables the stack creates (and keeps as specified) after each ``stack up``."""
    return (
        # Small (one row per instrument) and read on every page view: kept in the block cache's in-memory
        # tier; not compressed, so a hot read never pays for decompression. Rewritten all the time (a row of
        # ~46 cells per active instrument every conflation interval, most of HBase's cells at live rates):
        # EAGER in-memory compaction drops the replaced versions in the memstore itself, instead of flushing
        # them to files and compacting those (a quarter less of HBase's CPU at 5k events/s,
        # docs/performance.md).
        TableSpec(
            LATEST,
            tuple(Family(name, in_memory=True, in_memory_compaction="EAGER") for name in (FILLED_FAMILY, EXTRA_FAMILY)),
        ),
        # Large, written once and read in ranges: compressed (pure-Java codec, see tickflow.stack.hbase),
        # FAST_DIFF shares the long common prefix of neighbouring keys (same instrument, same qualifiers).
        TableSpec(
            HISTORY,
            (
                Family(
                    HISTORY_FAMILY,
                    ttl_s=settings.hbase_history_ttl_s,
                    compression=settings.hbase_history_compression,
                    block_encoding="FAST_DIFF",
                ),
            ),
        ),
    )


class CellType(StrEnum):
    DOUBLE = "double"
    LONG = "long"
    TIMESTAMP = "timestamp-micros"
    BOOLEAN = "boolean"
    STRING = "string"


def _cell_type(avro_type: Any) -> CellType:
    if isinstance(avro_type, list):
        (branch,) = [t for t in avro_type if t != "null"]
        return _cell_type(branch)
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-micros":
            return CellType.TIMESTAMP
        if avro_type["type"] == "enum":
            return CellType.STRING
        return _cell_type(avro_type["type"])
    kinds = {"double": CellType.DOUBLE, "float": CellType.DOUBLE, "int": CellType.LONG, "long": CellType.LONG,
             "boolean": CellType.BOOLEAN, "string": CellType.STRING}  # fmt: skip
    if avro_type not in kinds:
        raise ValueError(f"no HBase cell encoding for Avro type {avro_type!r}")
    return kinds[avro_type]


def micros(value: int | datetime) -> int:
    """A timestamp-micros value as µs since the epoch (fastavro reads them as aware datetimes)."""
    if isinstance(value, datetime):
        delta = value - _EPOCH if value.tzinfo else value.replace(tzinfo=UTC) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(value)


def encode(kind: CellType, value: Any) -> bytes:
    if kind is CellType.DOUBLE:
        return _DOUBLE.pack(float(value))
    if kind is CellType.LONG:
        return _LONG.pack(int(value))
    if kind is CellType.TIMESTAMP:
        return _LONG.pack(micros(value))
    if kind is CellType.BOOLEAN:
        return b"\xff" if value else b"\x00"
    return str(value).encode()


def decode(kind: CellType, raw: bytes) -> Any:
    """The cell's value; timestamps as µs since the epoch (an int, exact)."""
    if kind is CellType.DOUBLE:
        return _DOUBLE.unpack(raw)[0]
    if kind in (CellType.LONG, CellType.TIMESTAMP):
        return _LONG.unpack(raw)[0]
    if kind is CellType.BOOLEAN:
        return raw != b"\x00"
    return raw.decode()


def history_row_key(instrument_id: str, event_time_us: int) -> bytes:
    """Instrument id, 0x00, reversed event time: one instrument's rows are contiguous, newest first."""
    prefix = history_prefix(instrument_id)
    return prefix + _LONG.pack(MAX_LONG - event_time_us)


def history_prefix(instrument_id: str) -> bytes:
    encoded = instrument_id.encode()
    if b"\x00" in encoded:
        raise ValueError(f"an instrument id cannot contain NUL: {instrument_id!r}")
    return encoded + b"\x00"


def parse_history_row_key(row: bytes) -> tuple[str, int]:
    """(instrument id, event time µs) of a ``md:history`` row key."""
    if len(row) < _LONG.size + 1 or row[-_LONG.size - 1] != 0:
        raise ValueError(f"not a md:history row key: {row!r}")
    return row[: -_LONG.size - 1].decode(), MAX_LONG - _LONG.unpack(row[-_LONG.size :])[0]


Cells = dict[bytes, bytes]
# Schema id -> fastavro's parsed writer schema; raises UndecodableCell when the id is unknown.
WriterSchema = Callable[[int], Any]


class UndecodableCell(ValueError):
    """A md:history cell that is not a Confluent-framed record its writer schema reads."""


def history_cells(event: Mapping[str, Any], value: bytes) -> tuple[bytes, Cells, int]:
    """Row key, cells and cell timestamp (ms) of one record in ``md:history``: the one cell holds ``value``,
    the record's Kafka value (Confluent framing + Avro body), as it is."""
    event_us = micros(event["event_time"])
    return history_row_key(str(event["instrument_id"]), event_us), {HISTORY_COLUMN: value}, event_us // 1000


def read_framed(value: bytes, writer_schema: WriterSchema) -> dict[str, Any]:
    """The record in a Confluent-framed value, read with the writer schema its id names (every field, nulls
    included, timestamps as fastavro gives them: aware datetimes)."""
    if len(value) < CONFLUENT_HEADER or value[0] != 0:
        raise UndecodableCell(f"not Confluent-framed: {len(value)} bytes, starting {value[:5].hex()!r}")
    schema_id = int.from_bytes(value[1:CONFLUENT_HEADER], "big")
    schema = writer_schema(schema_id)
    body = BytesIO(value)
    body.seek(CONFLUENT_HEADER)
    try:
        record = fastavro.schemaless_reader(body, schema, None)
    except Exception as error:  # bytes that are not this schema's fail in many ways: EOF, union index, UTF-8, ...
        raise UndecodableCell(f"the Avro body does not decode with schema id {schema_id}: {error!r}") from error
    if body.tell() != len(value):
        raise UndecodableCell(f"{len(value) - body.tell()} bytes left over after the record (schema id {schema_id})")
    if not isinstance(record, dict):
        raise UndecodableCell(f"schema id {schema_id} is not a record schema")
    return record


@dataclass(frozen=True)
class EventLayout:
    """Where each field of an enriched event goes, derived from the EnrichedEvent schema file."""

    types: Mapping[str, CellType]
    filled: tuple[str, ...]  # the fields with a "<name>_as_of" sibling

    @classmethod
    def from_schema(cls, schema: AvroSchema) -> EventLayout:
        types = {f["name"]: _cell_type(f["type"]) for f in schema.definition["fields"]}
        filled = tuple(name for name in types if f"{name}{AS_OF_SUFFIX}" in types)
        return cls(types, filled)

    @property
    def extra(self) -> tuple[str, ...]:
        """Fields of family ``e``: all but the filled ones and their as-of times."""
        as_of = {f"{name}{AS_OF_SUFFIX}" for name in self.filled}
        return tuple(name for name in self.types if name not in self.filled and name not in as_of)

    def latest_cells(self, event: Mapping[str, Any]) -> dict[int, Cells]:
        """The ``md:latest`` cells of one event, grouped by cell timestamp (ms): a filled value at its as-of
        (the event time when the record has none), a cleared register (value null, as-of set) as an empty cell
        at its as-of, and the non-null fields of family ``e`` at the event time. A record of an older schema
        version simply lacks the fields it does not have."""
        event_ms = micros(event["event_time"]) // 1000
        by_time: dict[int, Cells] = {}
        for name in self.filled:
            value, as_of = event.get(name), event.get(f"{name}{AS_OF_SUFFIX}")
            if value is not None:
                at = micros(as_of) // 1000 if as_of is not None else event_ms
                by_time.setdefault(at, {})[f"{FILLED_FAMILY}:{name}".encode()] = encode(self.types[name], value)
            elif as_of is not None:  # cleared: it must replace the value it clears, so it is written
                by_time.setdefault(micros(as_of) // 1000, {})[f"{FILLED_FAMILY}:{name}".encode()] = CLEARED
        for name in self.extra:
            if (value := event.get(name)) is not None:
                by_time.setdefault(event_ms, {})[f"{EXTRA_FAMILY}:{name}".encode()] = encode(self.types[name], value)
        return by_time

    def decode_cells(self, cells: Mapping[bytes, bytes]) -> dict[str, Any]:
        """Field values of a ``md:latest`` row's cells (qualifiers unknown to the schema are skipped); an empty
        ``f`` cell, a cleared register, is None (its as-of is the cell's timestamp, which the caller has)."""
        values = {}
        filled = FILLED_FAMILY.encode()
        for column, raw in cells.items():
            family, _, qualifier = column.partition(b":")
            name = qualifier.decode()
            if name in self.types:
                values[name] = None if raw == CLEARED and family == filled else decode(self.types[name], raw)
        return values

    def history_values(self, value: bytes, writer_schema: WriterSchema) -> dict[str, Any]:
        """The fields of a ``md:history`` cell as ``decode_cells`` gives those of ``md:latest``: non-null
        values of the fields this layout knows (others, say of a newer writer schema, are skipped; those an
        older one lacks are absent), timestamps as µs since the epoch (ints). A cleared register shows as its
        ``_as_of`` without its value."""
        return {
            name: micros(field) if isinstance(field, datetime) else field
            for name, field in read_framed(value, writer_schema).items()
            if field is not None and name in self.types
        }


@cache
def _layout(schemas_dir: Path) -> EventLayout:
    return EventLayout.from_schema(load(EVENT_SCHEMA, schemas_dir))


def event_layout(settings: Settings) -> EventLayout:
    return _layout(settings.schemas_dir)
