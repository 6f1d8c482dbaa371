"""The instruments a person can search: the current reference data (``ref.instruments`` in Hive, through
HiveServer2) plus whatever else md:latest holds (instruments the stream published unenriched), kept in
memory and reloaded in the background every few minutes.

Hive being down never stops the page: the catalogue then lists the instruments found in md:latest and
says so in the log, and the next reload tries Hive again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from tickflow.hbase.store import MarketDataStore
from tickflow.serving.model import Instrument, merge_catalogue, search
from tickflow.settings import Settings

log = logging.getLogger(__name__)

REFERENCE_QUERY = "SELECT instrument_id, symbol, name, exchange, currency, asset_class, sector FROM ref.instruments"
SEEN_FIELDS = ("event_time", "symbol", "instrument_name", "exchange", "currency", "asset_class", "sector")


def instruments_from_hive(settings: Settings) -> list[Instrument]:
    from tickflow.warehouse import run_statements

    logging.getLogger("pyhive").setLevel(logging.WARNING)  # it logs every statement at INFO
    rows = run_statements(settings, [REFERENCE_QUERY])
    return [Instrument(*(None if v is None else str(v) for v in row)) for row in rows]  # type: ignore[arg-type]


def instruments_from_hbase(store: MarketDataStore) -> list[Instrument]:
    return [Instrument.seen(instrument_id, values) for instrument_id, values in store.scan_latest(SEEN_FIELDS).items()]


class Catalogue:
    """The searchable instruments; thread-safe, replaced whole on each reload."""

    def __init__(
        self,
        load_reference: Callable[[], Sequence[Instrument]] | None,
        load_seen: Callable[[], Sequence[Instrument]],
    ) -> None:
        self._load_reference = load_reference
        self._load_seen = load_seen
        self._instruments: dict[str, Instrument] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.source = "none"

    def reload(self, with_reference: bool = True) -> None:
        """Load both sources; a failing one is logged and left out (a failing HBase keeps the last list)."""
        reference: Sequence[Instrument] = []
        source = "md:latest"
        if self._load_reference is not None and with_reference:
            try:
                reference = self._load_reference()
                source = "ref.instruments + md:latest"
            except Exception as error:  # noqa: BLE001 - any Hive failure means: serve without it, say so
                log.warning(
                    "Hive's ref.instruments could not be read (%s): listing the instruments found in md:latest "
                    "only; the next reload tries again.",
                    str(error).splitlines()[0][:200] if str(error) else type(error).__name__,
                )
        try:
            seen = self._load_seen()
        except Exception as error:  # noqa: BLE001 - the last good list stays; the API reports HBase itself
            log.warning("md:latest could not be scanned for instruments (%s); keeping the last list.", error)
            if not reference:
                return
            seen = []
        merged = merge_catalogue(reference, seen)
        with self._lock:
            self._instruments, self.source = merged, source
        log.info("instrument catalogue: %d instruments from %s", len(merged), source)

    def start(self, every_s: float) -> None:
        """List md:latest's instruments now (a scan, fast), then load the reference data in a daemon thread
        (a Spark SQL query through HiveServer2 takes seconds to tens of seconds) and reload every ``every_s``."""
        self.reload(with_reference=False)
        if self._load_reference is None:
            return

        def loop() -> None:
            self.reload()
            while not self._stop.wait(every_s):
                self.reload()

        self._thread = threading.Thread(target=loop, name="tickflow-catalogue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def add(self, instruments: Sequence[Instrument]) -> None:
        """Instruments found in md:latest since the last reload (a lookup met them)."""
        with self._lock:
            self._instruments = merge_catalogue(list(self._instruments.values()), instruments)

    def get(self, instrument_id: str) -> Instrument | None:
        return self._instruments.get(instrument_id)

    def search(self, query: str, limit: int) -> list[Instrument]:
        return search(list(self._instruments.values()), query, limit)

    def __len__(self) -> int:
        return len(self._instruments)
