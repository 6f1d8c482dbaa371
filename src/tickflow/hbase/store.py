"""Reads and writes of ``md:latest`` and ``md:history`` through HBase's Thrift server (happybase).

Used by the serving API, the reconciliation DAG and the tests; the production writer is the Kafka
Connect sink, and ``write`` here produces the same cells (tickflow.hbase.layout). Every call retries
while HBase boots or its Thrift server restarts (refused connections, "server not running yet"), up
to ``retry_s``, then fails with one sentence.

History needs the schema registry too: ``write`` frames each record with the id EnrichedEvent is
registered under, as the stream's records are, and ``history`` reads each cell with the writer schema
its id names (fetched once per id). Unit tests pass their own ``EventSchemas`` instead.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import fastavro
import happybase
import httpx
from thriftpy2.thrift import TApplicationException
from thriftpy2.transport import TTransportException

from tickflow.avro_codec import Encoder, compile_encoder, confluent_prefix
from tickflow.errors import TickflowError
from tickflow.hbase.layout import (
    EVENT_SCHEMA,
    EXTRA_FAMILY,
    FILLED_FAMILY,
    HISTORY,
    HISTORY_COLUMN,
    LATEST,
    EventLayout,
    UndecodableCell,
    WriterSchema,
    event_layout,
    history_cells,
    history_prefix,
    history_row_key,
    parse_history_row_key,
)
from tickflow.retry import wait_for
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.topics import ENRICHED

T = TypeVar("T")
log = logging.getLogger(__name__)
# Region servers answer these while they start or move regions; a retry a moment later succeeds.
BOOTING = ("ServerNotRunningYet", "PleaseHold", "NotServingRegion", "RegionOpening", "master is initializing")


class HBaseUnavailable(TickflowError):
    """HBase's Thrift server did not answer in time."""


class SchemaRegistryUnavailable(TickflowError):
    """The schema registry did not answer: history cells can be neither framed nor read without it."""


class EventSchemas(Protocol):
    """Where the store gets schema ids and writer schemas: the registry (``RegistrySchemas``), or a dict in tests."""

    def event_schema_id(self) -> int:
        """The id of the EnrichedEvent schema file, the one ``write`` frames records with."""
        ...

    def writer_schema(self, schema_id: int) -> Any:
        """fastavro's parsed schema with that id; raises UndecodableCell when there is none."""
        ...


class RegistrySchemas:
    """Schema ids and writer schemas from the schema registry, each parsed once and kept (an id never changes
    meaning); ids the registry does not know are asked again next time."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self._client = client  # a SchemaRegistryClient; made at first use when None
        self._event_schema_id: int | None = None
        self._parsed: dict[int, Any] = {}

    def _registry(self) -> Any:
        if self._client is None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            self._client = SchemaRegistryClient(self.settings.registry_client_config)
        return self._client

    def _unavailable(self, error: Exception) -> SchemaRegistryUnavailable:
        return SchemaRegistryUnavailable(
            f"The schema registry at {self.settings.registry_url} did not answer ({error}): md:history cells are "
            "Avro records framed with its schema ids; start it with `tickflow stack up registry`."
        )

    def event_schema_id(self) -> int:
        """Registers EnrichedEvent under the enriched topic's subject, as the stream does (idempotent)."""
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if self._event_schema_id is None:
            schema = load(EVENT_SCHEMA, self.settings.schemas_dir)
            try:
                found = self._registry().register_schema(f"{ENRICHED.name}-value", Schema(schema.text, "AVRO"))
            except (SchemaRegistryError, httpx.HTTPError) as error:
                raise self._unavailable(error) from error
            self._event_schema_id = int(found)
        return self._event_schema_id

    def writer_schema(self, schema_id: int) -> Any:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if schema_id not in self._parsed:
            try:
                text = self._registry().get_schema(schema_id).schema_str
            except SchemaRegistryError as error:
                if error.http_status_code == 404:
                    raise UndecodableCell(f"schema id {schema_id} is unknown to the schema registry") from error
                raise self._unavailable(error) from error
            except httpx.HTTPError as error:
                raise self._unavailable(error) from error
            try:
                self._parsed[schema_id] = fastavro.parse_schema(json.loads(text))
            except (ValueError, fastavro.schema.SchemaParseException) as error:
                raise UndecodableCell(f"schema id {schema_id} is not an Avro schema: {error}") from error
        return self._parsed[schema_id]


def remembering_unknown(writer_schema: WriterSchema) -> WriterSchema:
    """The lookup, asking about an unknown id only once (a range of bad cells is one registry request)."""
    unknown: dict[int, str] = {}

    def lookup(schema_id: int) -> Any:
        if schema_id in unknown:
            raise UndecodableCell(unknown[schema_id])
        try:
            return writer_schema(schema_id)
        except UndecodableCell as error:
            unknown[schema_id] = str(error)
            raise

    return lookup


@dataclass(frozen=True)
class Latest:
    """The newest state of one instrument: every field's value, and each filled field's as-of time.

    A filled field may be None with an as-of: a cleared register (an empty ``f`` cell, tickflow.hbase.layout),
    "no value as of then", as the trade fields are after a cancel of their trade. A field never set is absent
    from both."""

    instrument_id: str
    values: dict[str, Any]
    as_of_ms: dict[str, int] = field(default_factory=dict)  # filled field -> cell timestamp (ms)


def _transient(error: Exception) -> bool:
    if isinstance(error, TTransportException | TApplicationException | OSError | socket.timeout):
        return True
    return any(marker in str(getattr(error, "message", error)) for marker in BOOTING)


class MarketDataStore:
    """One pool of Thrift connections to HBase, for many threads (a web server's workers)."""

    def __init__(
        self, settings: Settings, pool_size: int = 4, retry_s: float = 60.0, schemas: EventSchemas | None = None
    ) -> None:
        logging.getLogger("thriftpy2").setLevel(logging.CRITICAL)  # refused connections while HBase boots
        host, port = settings.hbase_thrift_address
        self.address = f"{host}:{port}"
        self.layout: EventLayout = event_layout(settings)
        self.schemas: EventSchemas = schemas or RegistrySchemas(settings)
        self._event_definition = load(EVENT_SCHEMA, settings.schemas_dir).definition
        self._encode: Encoder | None = None  # made at the first write: it needs the schema id
        self.retry_s = retry_s
        self._pool_args: dict[str, Any] = {"size": pool_size, "host": host, "port": port, "timeout": 30_000}
        self._pool: happybase.ConnectionPool | None = None  # made at first use: making it connects

    def _call(self, action: Callable[[happybase.Connection], T]) -> T:
        def attempt() -> tuple[T]:
            if self._pool is None:
                self._pool = happybase.ConnectionPool(**self._pool_args)
            with self._pool.connection() as connection:
                return (action(connection),)  # in a tuple: an action may answer None or False

        def unavailable(error: Exception | None) -> Exception:
            return HBaseUnavailable(
                f"HBase's Thrift server at {self.address} did not answer within {self.retry_s:.0f}s "
                f"({type(error).__name__}): start it with `tickflow stack up hbase-thrift`."
            )

        return wait_for(attempt, self.retry_s, interval_s=1.0, retry_if=_transient, timed_out=unavailable)[0]

    def framed(self, event: Mapping[str, Any]) -> bytes:
        """The event as the stream publishes it on md.enriched: Confluent framing (EnrichedEvent's registered
        id) and Avro body; what the sink stores in md:history as it is."""
        if self._encode is None:
            prefix = confluent_prefix(self.schemas.event_schema_id())
            self._encode = compile_encoder(self._event_definition, ("instrument_id",), prefix)
        try:
            return self._encode(event)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"The event of {event.get('instrument_id')!r} is not a whole EnrichedEvent (missing or mistyped "
                f"field: {error!r}); write records as the stream publishes them, every required field set."
            ) from error

    def write(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Write events as the sink does: newest-wins cells in md:latest (an empty ``f`` cell for a cleared
        register), one row each in md:history whose one cell is the framed record."""
        self.write_framed([(event, self.framed(event)) for event in events])  # a registry outage: no write

    def write_framed(self, framed: Sequence[tuple[Mapping[str, Any], bytes]]) -> None:
        """Write records read from md.enriched, each with its value as it was on Kafka (what the sink stores in
        md:history), as the sink does: the repair of the reconciliation DAG."""

        def put(connection: happybase.Connection) -> None:
            latest, history = connection.table(LATEST), connection.table(HISTORY)
            for event, value in framed:
                row = str(event["instrument_id"]).encode()
                for timestamp, cells in self.layout.latest_cells(event).items():
                    latest.put(row, cells, timestamp=timestamp)
                key, cells, timestamp = history_cells(event, value)
                history.put(key, cells, timestamp=timestamp)

        self._call(put)

    def write_history(self, records: Iterable[tuple[str, int, bytes]]) -> int:
        """Write ``(instrument id, event time µs, framed record)`` to md:history only, the cells the sink writes
        (one per record, at the event time in ms); md:latest, the live view, is left alone. A record written
        again replaces its cell (same row, column and timestamp), so a repeated backfill changes nothing.
        Thrift batches carry one timestamp each, so records are batched by event time. Returns the count."""
        by_time: dict[int, list[tuple[bytes, bytes]]] = {}
        for instrument_id, event_us, value in records:
            by_time.setdefault(event_us // 1000, []).append((history_row_key(instrument_id, event_us), value))

        def put(connection: happybase.Connection) -> None:
            table = connection.table(HISTORY)
            for timestamp, rows in by_time.items():
                with table.batch(timestamp=timestamp, batch_size=1000) as batch:
                    for key, value in rows:
                        batch.put(key, {HISTORY_COLUMN: value})

        self._call(put)
        return sum(len(rows) for rows in by_time.values())

    def latest(self, instrument_ids: Sequence[str]) -> dict[str, Latest]:
        """The newest state of each instrument that has one (unknown ids are left out); an empty ``f`` cell
        gives its field as None with the cell's timestamp as as-of (a cleared register)."""

        def read(connection: happybase.Connection) -> list[tuple[bytes, dict[bytes, tuple[bytes, int]]]]:
            rows: list[tuple[bytes, dict[bytes, tuple[bytes, int]]]] = connection.table(LATEST).rows(
                [i.encode() for i in instrument_ids], include_timestamp=True
            )
            return rows

        found = {}
        for row, cells in self._call(read):
            values = self.layout.decode_cells({column: value for column, (value, _) in cells.items()})
            as_of = {
                column.partition(b":")[2].decode(): timestamp
                for column, (_, timestamp) in cells.items()
                if column.startswith(f"{FILLED_FAMILY}:".encode())
            }
            found[row.decode()] = Latest(row.decode(), values, as_of)
        return found

    def history(
        self,
        instrument_id: str,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """One instrument's records with ``since_us <= event_time <= until_us``, newest first: each a dict of its
        non-null fields (timestamps as µs ints), as ``EventLayout.decode_cells`` gives md:latest's.

        A cell that does not decode (bytes that are not a framed record, a schema id the registry does not
        know) is skipped with one warning for the whole request, so one bad cell never hides the others; the
        request then returns fewer records than ``limit``. Rows without an ``h:r`` cell (written in the
        per-field layout before it, until the TTL expires them) are not read at all. A registry that does not
        answer raises SchemaRegistryUnavailable.
        """
        prefix = history_prefix(instrument_id)
        start = history_row_key(instrument_id, until_us) if until_us is not None else prefix
        # Row keys hold the reversed time, so the oldest wanted record has the greatest key: stop just past it.
        if since_us is not None and since_us > 0:
            stop = history_row_key(instrument_id, since_us - 1)
        else:
            stop = prefix[:-1] + b"\x01"  # the end of this instrument's rows

        def read(connection: happybase.Connection) -> list[tuple[bytes, dict[bytes, bytes]]]:
            scan = connection.table(HISTORY).scan(row_start=start, row_stop=stop, limit=limit, columns=[HISTORY_COLUMN])
            return list(scan)

        rows = self._call(read)
        writer_schema = remembering_unknown(self.schemas.writer_schema)
        records, skipped = [], []
        for row, cells in rows:
            try:
                values = self.layout.history_values(cells[HISTORY_COLUMN], writer_schema)
            except UndecodableCell as error:
                skipped.append((row, error))
                continue
            values["instrument_id"], values["event_time"] = parse_history_row_key(row)
            records.append(values)
        if skipped:
            first_row, reason = skipped[0]
            log.warning(
                "md:history of %s: skipped %d of %d cells that do not decode (first, row %r: %s)",
                instrument_id, len(skipped), len(rows), first_row, reason,
            )  # fmt: skip
        return records

    def ping(self) -> None:
        """A round trip through the Thrift server to the master (raises HBaseUnavailable when it fails)."""
        self._call(lambda connection: connection.tables())

    def latest_cells(
        self, instrument_ids: Sequence[str] | None = None, prefix: str | None = None
    ) -> dict[str, dict[bytes, tuple[bytes, int]]]:
        """Raw md:latest rows, each cell as (value, timestamp ms): those of ``instrument_ids``, or every row
        (whose id starts with ``prefix``). For reconciliation: one row per instrument, thousands at most."""

        def read(connection: happybase.Connection) -> list[tuple[bytes, dict[bytes, tuple[bytes, int]]]]:
            table = connection.table(LATEST)
            if instrument_ids is not None:
                return list(table.rows([i.encode() for i in instrument_ids], include_timestamp=True))
            start = prefix.encode() if prefix else None
            return list(table.scan(row_prefix=start, include_timestamp=True, batch_size=1000))

        return {row.decode(): cells for row, cells in self._call(read)}

    def scan_latest(self, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Every instrument in md:latest with those of ``fields`` it has: for listings (hundreds of rows),
        not for hot paths."""
        columns = [f"{FILLED_FAMILY if f in self.layout.filled else EXTRA_FAMILY}:{f}".encode() for f in fields]

        def read(connection: happybase.Connection) -> list[tuple[bytes, dict[bytes, bytes]]]:
            return list(connection.table(LATEST).scan(columns=columns or None))

        return {row.decode(): self.layout.decode_cells(cells) for row, cells in self._call(read)}
