"""Reads and writes of ``md:latest`` and ``md:history`` through HBase's Thrift server (happybase).

Used by the serving API, the reconciliation DAG and the tests; the production writer is the Kafka
Connect sink, and ``write`` here produces the same cells (tickflow.hbase.layout). Every call retries
while HBase boots or its Thrift server restarts (refused connections, "server not running yet"), up
to ``retry_s``, then fails with one sentence.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import happybase
from thriftpy2.thrift import TApplicationException
from thriftpy2.transport import TTransportException

from tickflow.errors import TickflowError
from tickflow.hbase.layout import (
    EXTRA_FAMILY,
    FILLED_FAMILY,
    HISTORY,
    LATEST,
    EventLayout,
    event_layout,
    history_prefix,
    history_row_key,
    parse_history_row_key,
)
from tickflow.settings import Settings

T = TypeVar("T")
# Region servers answer these while they start or move regions; a retry a moment later succeeds.
BOOTING = ("ServerNotRunningYet", "PleaseHold", "NotServingRegion", "RegionOpening", "master is initializing")


class HBaseUnavailable(TickflowError):
    """HBase's Thrift server did not answer in time."""


@dataclass(frozen=True)
class Latest:
    """The newest state of one instrument: every field's value, and each filled field's as-of time."""

    instrument_id: str
    values: dict[str, Any]
    as_of_ms: dict[str, int] = field(default_factory=dict)  # filled field -> cell timestamp (ms)


def _transient(error: Exception) -> bool:
    if isinstance(error, TTransportException | TApplicationException | OSError | socket.timeout):
        return True
    return any(marker in str(getattr(error, "message", error)) for marker in BOOTING)


class MarketDataStore:
    """One pool of Thrift connections to HBase, for many threads (a web server's workers)."""

    def __init__(self, settings: Settings, pool_size: int = 4, retry_s: float = 60.0) -> None:
        logging.getLogger("thriftpy2").setLevel(logging.CRITICAL)  # refused connections while HBase boots
        host, port = settings.hbase_thrift_address
        self.address = f"{host}:{port}"
        self.layout: EventLayout = event_layout(settings)
        self.retry_s = retry_s
        self._pool_args: dict[str, Any] = {"size": pool_size, "host": host, "port": port, "timeout": 30_000}
        self._pool: happybase.ConnectionPool | None = None  # made at first use: making it connects

    def _call(self, action: Callable[[happybase.Connection], T]) -> T:
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                if self._pool is None:
                    self._pool = happybase.ConnectionPool(**self._pool_args)
                with self._pool.connection() as connection:
                    return action(connection)
            except Exception as error:
                if not _transient(error):
                    raise
                if time.monotonic() > deadline:
                    raise HBaseUnavailable(
                        f"HBase's Thrift server at {self.address} did not answer within {self.retry_s:.0f}s "
                        f"({type(error).__name__}): start it with `tickflow stack up hbase-thrift`."
                    ) from error
                time.sleep(1.0)

    def write(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Write events as the sink does: newest-wins cells in md:latest, one row each in md:history."""
        events = list(events)

        def put(connection: happybase.Connection) -> None:
            latest, history = connection.table(LATEST), connection.table(HISTORY)
            for event in events:
                row = str(event["instrument_id"]).encode()
                for timestamp, cells in self.layout.latest_cells(event).items():
                    latest.put(row, cells, timestamp=timestamp)
                key, cells, timestamp = self.layout.history_cells(event)
                history.put(key, cells, timestamp=timestamp)

        self._call(put)

    def latest(self, instrument_ids: Sequence[str]) -> dict[str, Latest]:
        """The newest state of each instrument that has one (unknown ids are left out)."""

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
        """One instrument's records with ``since_us <= event_time <= until_us``, newest first."""
        prefix = history_prefix(instrument_id)
        start = history_row_key(instrument_id, until_us) if until_us is not None else prefix
        # Row keys hold the reversed time, so the oldest wanted record has the greatest key: stop just past it.
        if since_us is not None and since_us > 0:
            stop = history_row_key(instrument_id, since_us - 1)
        else:
            stop = prefix[:-1] + b"\x01"  # the end of this instrument's rows

        def read(connection: happybase.Connection) -> list[tuple[bytes, dict[bytes, bytes]]]:
            scan = connection.table(HISTORY).scan(row_start=start, row_stop=stop, limit=limit)
            return list(scan)

        records = []
        for row, cells in self._call(read):
            values = self.layout.decode_cells(cells)
            values["instrument_id"], values["event_time"] = parse_history_row_key(row)
            records.append(values)
        return records

    def ping(self) -> None:
        """A round trip through the Thrift server to the master (raises HBaseUnavailable when it fails)."""
        self._call(lambda connection: connection.tables())

    def scan_latest(self, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Every instrument in md:latest with those of ``fields`` it has: for listings (hundreds of rows),
        not for hot paths."""
        columns = [f"{FILLED_FAMILY if f in self.layout.filled else EXTRA_FAMILY}:{f}".encode() for f in fields]

        def read(connection: happybase.Connection) -> list[tuple[bytes, dict[bytes, bytes]]]:
            return list(connection.table(LATEST).scan(columns=columns or None))

        return {row.decode(): self.layout.decode_cells(cells) for row, cells in self._call(read)}
