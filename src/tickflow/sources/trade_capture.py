"""Trade capture: a booking system that keeps its trades in PostgreSQL and does not speak Kafka.

Debezium reads the table's changes from a logical replication slot and Kafka Connect brings them into
``md.events`` (``tickflow.sources.trades_connector``). This module owns the PostgreSQL side:

- the objects, in database ``trades``: schema ``trade_capture``, table ``trades``, the publication and
  the slot, each created only when missing (``prepare``), the publication **before** the slot, since
  pgoutput resolves the publication as of the WAL position it decodes;
- ``book``: trades booked at a chosen rate, from the same universe and price paths as the simulators'
  trades source, in short transactions, with optional corrections (UPDATE) and cancels (DELETE).

``change_seq`` comes from a sequence, set by a trigger on every insert **and** every update, so a
correction has a sequence number of its own (MarketEvent's ``sequence``). The table has
``REPLICA IDENTITY FULL``: an update then carries the whole old row (an update that changes no market
field can be recognised) and a delete carries the instrument id, not only the key.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tickflow.errors import TickflowError
from tickflow.runtime.postgres import check_wal_level, connect
from tickflow.settings import Settings
from tickflow.sources.simulator import Event, Source, SourceGenerator, generators
from tickflow.sources.universe import build_universe

DATABASE = "trades"
SCHEMA = "trade_capture"
TABLE = f"{SCHEMA}.trades"
PUBLICATION = "tickflow_trades"
SLOT = "tickflow_trades"
DECODER = "pgoutput"  # built into PostgreSQL 10+; Debezium's default (decoderbufs) is not in Debian's package

DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE SEQUENCE IF NOT EXISTS {SCHEMA}.change_seq",
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
  trade_id TEXT PRIMARY KEY,
  instrument_id TEXT NOT NULL,
  booked_at TIMESTAMPTZ NOT NULL,
  price DOUBLE PRECISION NOT NULL,
  size BIGINT NOT NULL,
  side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
  version INTEGER NOT NULL DEFAULT 1,
  change_seq BIGINT NOT NULL
)""",
    f"ALTER SEQUENCE {SCHEMA}.change_seq OWNED BY {TABLE}.change_seq",
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.next_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.change_seq := nextval('{SCHEMA}.change_seq');
  RETURN NEW;
END
$$""",
    f"""CREATE OR REPLACE TRIGGER trades_change_seq BEFORE INSERT OR UPDATE ON {TABLE}
FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.next_change_seq()""",
    f"ALTER TABLE {TABLE} REPLICA IDENTITY FULL",
)
COLUMNS = ("trade_id", "instrument_id", "booked_at", "price", "size", "side")
COPY_SQL = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
CORRECT_SQL = f"""UPDATE {TABLE} AS t SET price = c.price, size = c.size, version = t.version + 1
FROM unnest(%s::text[], %s::float8[], %s::int8[]) AS c(trade_id, price, size) WHERE t.trade_id = c.trade_id"""
CANCEL_SQL = f"DELETE FROM {TABLE} WHERE trade_id = ANY(%s)"


def trades_connection(settings: Settings) -> Any:
    return connect(settings, DATABASE, "The trade capture database")


def create_schema(connection: Any) -> bool:
    """Schema, table, trigger and publication, each only if missing; True if the publication was created."""
    with connection.transaction():
        for statement in DDL:
            connection.execute(statement)
        if connection.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (PUBLICATION,)).fetchone():
            return False
        connection.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {TABLE}")
    return True


def create_slot(connection: Any) -> bool:
    """The logical slot Debezium streams from, if missing; True if created.

    Created by tickflow rather than the connector so that WAL is kept from now on, before the connector
    is deployed: with ``snapshot.mode=no_data`` nothing booked in between is lost and nothing is re-read.
    """
    check_wal_level(connection)
    found = connection.execute(
        "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)
    ).fetchone()
    if found:
        if tuple(found) != (DECODER, DATABASE):
            raise TickflowError(
                f"PostgreSQL has a replication slot {SLOT} for plugin {found[0]} in database {found[1]}, not "
                f"{DECODER} in {DATABASE}: drop it (`SELECT pg_drop_replication_slot('{SLOT}')`) and run the "
                "command again."
            )
        return False
    connection.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (SLOT, DECODER))
    return True


@dataclass(frozen=True)
class Prepared:
    publication_created: bool
    slot_created: bool


def prepare(settings: Settings) -> Prepared:
    """Everything Debezium needs in PostgreSQL, idempotently: the objects, then the slot."""
    with trades_connection(settings) as connection:
        publication = create_schema(connection)
        slot = create_slot(connection)
    return Prepared(publication, slot)


@dataclass(frozen=True)
class SlotState:
    """The slot as PostgreSQL sees it: the database side of the connector's health.

    ``lag_bytes`` is WAL written since the position the connector confirmed (what the slot keeps);
    ``wal_status`` is ``lost`` once ``max_slot_wal_keep_size`` was exceeded and the slot is useless.
    """

    exists: bool
    active: bool = False
    lag_bytes: int | None = None
    wal_status: str | None = None

    @property
    def healthy(self) -> bool:
        return self.exists and self.active and self.wal_status != "lost"

    def line(self) -> str:
        if not self.exists:
            return f"slot {SLOT}: missing (`tickflow trades prepare` creates it)"
        lag = "?" if self.lag_bytes is None else f"{self.lag_bytes / 1_048_576:,.1f} MB"
        reader = "streaming to the connector" if self.active else "no reader (is the connector deployed and running?)"
        return f"slot {SLOT}: {reader}; {lag} of WAL behind; WAL {self.wal_status or '?'}"


def slot_state(settings: Settings) -> SlotState:
    with trades_connection(settings) as connection:
        row = connection.execute(
            "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, wal_status "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (SLOT,),
        ).fetchone()
    return SlotState(False) if row is None else SlotState(True, bool(row[0]), row[1], row[2])


@dataclass(frozen=True)
class BookingConfig:
    """What to book; every knob of ``tickflow trades book``."""

    rate: float = 5_000.0
    count: int | None = None
    duration_s: float | None = None
    corrections: float = 0.0
    cancels: float = 0.0
    seed: int = 7
    instruments: int = 500
    start_us: int | None = None
    slice_s: float = 0.01
    max_batch: int = 20_000
    recent: int = 10_000

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise TickflowError(f"--rate must be positive, got {self.rate}.")
        if self.instruments < 1:
            raise TickflowError(f"--instruments must be at least 1, got {self.instruments}.")
        for name, limit in (("duration", self.duration_s), ("count", self.count)):
            if limit is not None and limit < 0:
                raise TickflowError(f"--{name} must not be negative, got {limit}.")
        for name in ("corrections", "cancels"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise TickflowError(f"--{name} is a fraction of the booked trades between 0 and 1, got "
                                    f"{getattr(self, name)}.")  # fmt: skip


@dataclass
class BookingStats:
    booked: int = 0
    corrected: int = 0
    cancelled: int = 0
    transactions: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Trades booked per second (inserts only)."""
        return self.booked / self.seconds if self.seconds else 0.0


@dataclass
class Booked:
    """A trade that may still be corrected or cancelled."""

    trade_id: str
    who: int
    price: float
    size: int
    cancelled: bool = False


@dataclass
class Booker:
    """Turns the simulators' trade events into rows and picks the trades to correct or cancel.

    The simulator's trade ids (``<MIC>-<sequence>``) repeat in every run of a seed, which a booking
    system's primary key cannot take: the run's start (ms) is put in between, as it is in the
    simulator's event ids. Instrument, price, size and side are the simulator's.
    """

    generator: SourceGenerator
    config: BookingConfig
    run: int = field(init=False)
    index: dict[str, int] = field(init=False)
    recent: list[Booked] = field(default_factory=list)
    rng: random.Random = field(init=False)
    draws: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.run = self.generator.start_us // 1000
        self.index = {instrument_id: i for i, instrument_id in enumerate(self.generator.ids)}
        self.rng = random.Random(self.config.seed * 7919 + 2)
        self.draws = np.random.default_rng([self.config.seed, 7919])

    def trade_id(self, simulated: str) -> str:
        mic, sequence = simulated.rsplit("-", 1)
        return f"{mic}-{self.run}-{sequence}"

    def copy_text(self, events: Sequence[Event]) -> tuple[str, list[Booked]]:
        """COPY's text format for the events, and the trades they book."""
        times = np.datetime_as_string(np.array([e["event_time"] for e in events], dtype="datetime64[us]"), unit="us")
        lines, booked = [], []
        index, trade_id = self.index, self.trade_id
        for event, at in zip(events, times.tolist(), strict=True):
            tid = trade_id(event["trade_id"])
            price, size = event["trade_price"], event["trade_size"]
            lines.append(f"{tid}\t{event['instrument_id']}\t{at}+00\t{price!r}\t{size}\t{event['trade_side']}\n")
            booked.append(Booked(tid, index[event["instrument_id"]], price, size))
        return "".join(lines), booked

    def _pick(self, fraction: float, count: int) -> list[Booked]:
        """About ``fraction`` of ``count`` distinct recent trades not cancelled yet."""
        wanted = int(self.draws.binomial(count, fraction)) if fraction else 0
        live = len(self.recent)
        picked = [self.recent[i] for i in self.rng.sample(range(live), min(wanted, live))]
        return [t for t in picked if not t.cancelled]

    def cancels(self, count: int) -> list[Booked]:
        chosen = self._pick(self.config.cancels, count)
        for trade in chosen:
            trade.cancelled = True
        return chosen

    def corrections(self, count: int) -> list[Booked]:
        """Trades re-booked one tick and one lot away (never below one of each)."""
        chosen = self._pick(self.config.corrections, count)
        ticks, lots = self.generator.market.ticks, self.generator.lots
        for trade in chosen:
            tick, lot = float(ticks[trade.who]), int(lots[trade.who])
            trade.price = round(max(tick, trade.price + self.rng.choice((-tick, tick))), 6)
            trade.size = max(lot, trade.size + self.rng.choice((-lot, lot)))
        return chosen

    def remember(self, booked: list[Booked]) -> None:
        self.recent.extend(booked)
        if len(self.recent) > 2 * self.config.recent:
            self.recent = [t for t in self.recent[-self.config.recent :] if not t.cancelled]


def book(
    settings: Settings,
    config: BookingConfig,
    report: Callable[[BookingStats, float], None] | None = None,
    report_every_s: float = 1.0,
) -> BookingStats:
    """Book trades until ``count`` or ``duration_s`` (or forever), paced to ``rate``.

    One transaction per ~10 ms slice: a COPY of the slice's trades, then its corrections and cancels of
    trades booked in earlier slices. When the database falls behind, the next transaction takes all
    that is due (up to ``max_batch``), so commits get fewer and larger instead of the rate dropping.
    """
    start_us = config.start_us if config.start_us is not None else time.time_ns() // 1000
    universe = build_universe(config.instruments, config.seed)
    (generator,) = generators(universe, {Source.TRADES: config.rate}, start_us, config.seed)
    booker = Booker(generator, config)
    stats = BookingStats()
    with trades_connection(settings) as connection:
        create_schema(connection)
        started = time.monotonic()
        next_report = started + report_every_s
        ticks = 0
        while True:
            now = time.monotonic()
            due = int(config.rate * (now - started)) - stats.booked
            if config.count is not None:
                due = min(due, config.count - stats.booked)
            due = min(due, config.max_batch)
            if due > 0:
                events = generator.batch(due)
                text, booked = booker.copy_text(events)
                cancels, corrections = booker.cancels(due), booker.corrections(due)
                with connection.transaction(), connection.cursor() as cursor:
                    with cursor.copy(COPY_SQL) as copy:
                        copy.write(text)
                    if corrections:
                        cursor.execute(CORRECT_SQL, ([t.trade_id for t in corrections], [t.price for t in corrections],
                                                     [t.size for t in corrections]))  # fmt: skip
                    if cancels:
                        cursor.execute(CANCEL_SQL, ([t.trade_id for t in cancels],))
                booker.remember(booked)
                stats.booked += due
                stats.corrected += len(corrections)
                stats.cancelled += len(cancels)
                stats.transactions += 1
            now = time.monotonic()
            stats.seconds = now - started
            if report and now >= next_report:
                report(stats, config.rate)
                next_report = now + report_every_s
            if config.count is not None and stats.booked >= config.count:
                break
            if config.duration_s is not None and stats.seconds >= config.duration_s:
                break
            ticks += 1
            ahead = started + ticks * config.slice_s - now
            if ahead > 0:
                time.sleep(ahead)
            else:
                ticks = int((now - started) / config.slice_s)
    stats.seconds = time.monotonic() - started
    if report:
        report(stats, config.rate)
    return stats
