"""Live = replay: what the stream published on md.enriched, against what the backfill recomputes for the same range.

The backfill runs the stream's own transform over md.events with the SCD2 reference as of each event's time; this
check runs it for a range and a set of instruments (``target=check``) and compares its rows with the live topic's,
field by field, as-of times included, per (instrument, event time): the last record of each on either side (an
event time can be published again by a later micro-batch, when more events of that time arrive).

Some differences are legitimate, and the report counts them apart from the real ones:

- **reference**: the live stream enriched with the reference load current when it ran, the replay with the one in
  force at the event's time (the SCD2 history). A refresh between the two (a late correction, a load of the day
  before) changes the enrichment's fields, and ``reference_version`` says so. Only the reference's fields and what
  is computed from them differ.
- **batching**: a row is the instrument's registers after every event of its batch at or before its time, so which
  late events a row saw, and which events of one time it merged, depend on where the batches were cut; the stream's
  micro-batches and the backfill's chunks are cut at other offsets. Such a row shows, for every fill field that
  differs, another register on each side (another as-of time: another event's value), or differs only in
  ``event_count`` / ``ingest_time`` (the events the record merged). The same as-of time with another value is never
  explained: it is one event's value, read two ways.

Everything else is **different**: the same inputs gave other values, a real fault, which the run reports with
examples and fails on. Rows on one side only are **missing in live** or **missing in replay**.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tickflow.fill.semantics import FILL_FIELDS

REPORT_TABLE = "ops.replay_checks"
EXAMPLES = 5  # per kind, in the report row
PROCESSING = ("batch_id", "processed_time")  # when and in which batch a record was made: never compared
MERGED = ("event_count", "ingest_time")  # the events a record merged: depend on where batches are cut
REFERENCE = (
    "enriched", "symbol", "instrument_name", "exchange", "currency", "asset_class", "sector", "lot_size",
    "tick_size", "reference_version", "fx_rate_usd",
)  # fmt: skip
DERIVED = ("mid", "spread", "spread_bps", "trade_notional", "mid_usd", "last_price_usd", "trade_notional_usd")
IN_USD = ("mid_usd", "last_price_usd", "trade_notional_usd")  # follow the FX reference too
KEY = ("instrument_id", "event_time")


class Kind(StrEnum):
    MATCH = "match"
    DIFFERENT = "different"
    MISSING_LIVE = "missing in live"
    MISSING_REPLAY = "missing in replay"
    REFERENCE = "reference changed"
    BATCHING = "batching"


LEGITIMATE = (Kind.REFERENCE, Kind.BATCHING)


def compared_fields(columns: Iterable[str]) -> list[str]:
    """EnrichedEvent's fields the check compares: all but the key and the processing metadata."""
    return [c for c in columns if c not in PROCESSING and c not in KEY]


def classify(live: Mapping[str, Any] | None, replay: Mapping[str, Any] | None, differing: Iterable[str]) -> Kind:
    """What a difference between the live record and the replayed row of one (instrument, event time) is
    (module docstring); ``differing``: the compared fields whose values are not equal."""
    if live is None:
        return Kind.MISSING_LIVE
    if replay is None:
        return Kind.MISSING_REPLAY
    fields = set(differing)
    if not fields:
        return Kind.MATCH
    fill = {f for f in FILL_FIELDS if f in fields or f"{f}_as_of" in fields}
    reference_moved = live.get("reference_version") != replay.get("reference_version") or live.get(
        "fx_rate_usd"
    ) != replay.get("fx_rate_usd")
    if not fill and reference_moved and fields <= set(REFERENCE) | set(IN_USD):
        return Kind.REFERENCE
    # Another register (another as-of time) is another event's value: which events a row saw depends on where
    # the batches were cut. The same as-of time with another value is the same event read differently.
    rest = fields - fill - {f"{f}_as_of" for f in fill} - set(DERIVED) - set(MERGED)
    other_event = all(live.get(f"{f}_as_of") != replay.get(f"{f}_as_of") for f in fill)
    if not rest and ((fill and other_event) or (not fill and fields <= set(MERGED))):
        return Kind.BATCHING
    return Kind.DIFFERENT


@dataclass
class ReplayCheck:
    """One check's outcome: counts per kind and a few examples of each, for the report row and the log."""

    start: datetime
    end: datetime
    instruments: tuple[str, ...] | None
    live_topic: str
    live_rows: int = 0
    replay_rows: int = 0
    counts: dict[Kind, int] = field(default_factory=dict)
    examples: dict[Kind, list[dict[str, Any]]] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add(self, kind: Kind, live: Mapping[str, Any] | None, replay: Mapping[str, Any] | None,
            differing: Iterable[str]) -> None:  # fmt: skip
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            side = live or replay or {}
            shown.append({
                "instrument_id": side.get("instrument_id"),
                "event_time": str(side.get("event_time")),
                "fields": {f: {"live": _plain(live, f), "replay": _plain(replay, f)} for f in sorted(differing)},
            })  # fmt: skip

    @property
    def failures(self) -> int:
        """Rows the check cannot explain: different values, or a row on one side only."""
        return sum(self.counts.get(k, 0) for k in (Kind.DIFFERENT, Kind.MISSING_LIVE, Kind.MISSING_REPLAY))

    def line(self) -> str:
        counts = ", ".join(f"{self.counts.get(k, 0):,} {k.value}" for k in Kind)
        return (
            f"replay check {self.run_id} of {self.live_topic}, {self.start.isoformat()} to {self.end.isoformat()}: "
            f"{self.live_rows:,} live and {self.replay_rows:,} replayed (instrument, event time): {counts}"
        )

    def failure(self) -> str | None:
        """One sentence when the live output differs from the replay beyond what the reference or batching explain."""
        if not self.failures:
            return None
        kinds = (Kind.DIFFERENT, Kind.MISSING_LIVE, Kind.MISSING_REPLAY)
        kind = next(k for k in kinds if self.examples.get(k))
        first = self.examples[kind][0]
        what = ", ".join(first["fields"]) or kind.value
        return (
            f"The live output differs from its replay in {self.failures:,} (instrument, event time), e.g. "
            f"{first['instrument_id']} at {first['event_time']} ({what}): see {REPORT_TABLE} run {self.run_id}."
        )

    def examples_json(self) -> str:
        return json.dumps({k.value: v for k, v in self.examples.items() if k != Kind.MATCH}, default=str)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "live_topic": self.live_topic, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "instruments": self.instruments, "live_rows": self.live_rows,
            "replay_rows": self.replay_rows, "counts": {k.value: self.counts.get(k, 0) for k in Kind},
            "examples": json.loads(self.examples_json()),
        }  # fmt: skip


def _plain(side: Mapping[str, Any] | None, name: str) -> Any:
    if side is None:
        return None
    value = side.get(name)
    return value.isoformat() if isinstance(value, datetime) else value


def _decoded(frame: Any, schema_text: str, *extra: str) -> Any:
    """Confluent-framed EnrichedEvent values -> their fields (and ``extra`` columns of ``frame``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    record = from_avro(F.expr("substring(value, 6)"), schema_text).alias("record")
    return frame.select(record, *extra).select("record.*", *extra)


def _last_per_key(frame: Any, order: Any) -> Any:
    """The last row of each (instrument, event time) by ``order``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy(*KEY).orderBy(order)
    return frame.withColumn("_n", F.row_number().over(window)).where("_n = 1").drop("_n")


def compare_with_live(
    spark: Any,
    settings: Any,
    check: ReplayCheck,
    replayed: Any,
    schema_text: str,
    earliest_ms: int,
    latest_ms: int,
) -> ReplayCheck:
    """Compare ``replayed`` (the backfill's staged rows: framed values of the range) with the live topic's records
    of the same range and instruments, read from Kafka time ``earliest_ms`` to ``latest_ms``; fills ``check``."""
    from pyspark.sql import functions as F

    from tickflow.kafka_auth import BACKFILL_GROUPS, Principal
    from tickflow.spark import kafka_reader

    start_us, end_us = (int(t.timestamp() * 1_000_000) for t in (check.start, check.end))
    raw = (
        kafka_reader(
            spark,
            settings,
            check.live_topic,
            principal=Principal.BACKFILL,
            group_id_prefix=BACKFILL_GROUPS,
            streaming=False,
        )
        .option("startingTimestamp", str(earliest_ms))
        .option("startingOffsetsByTimestampStrategy", "latest")
        .option("endingTimestamp", str(latest_ms))
        .load()
    )
    live = _decoded(raw, schema_text, "offset")
    micros = F.unix_micros("event_time")
    live = live.where((micros >= start_us) & (micros < end_us))
    if check.instruments:
        live = live.where(F.col("instrument_id").isin(list(check.instruments)))
    live = _last_per_key(live, F.col("offset").desc()).drop("offset").withColumn("_side", F.lit("live"))
    replay = _decoded(replayed, schema_text)
    replay = _last_per_key(replay, F.col("batch_id").desc()).withColumn("_side", F.lit("replay"))
    live, replay = live.cache(), replay.cache()
    check.live_rows, check.replay_rows = live.count(), replay.count()

    fields = compared_fields(live.columns[:-1])
    joined = live.alias("l").join(replay.alias("r"), [F.col(f"l.{k}") == F.col(f"r.{k}") for k in KEY], "full_outer")
    differing = F.filter(
        F.array(*(F.when(~F.col(f"l.{c}").eqNullSafe(F.col(f"r.{c}")), F.lit(c)) for c in fields)),
        lambda name: name.isNotNull(),
    )
    both = F.col("l._side").isNotNull() & F.col("r._side").isNotNull()
    found = joined.select(F.struct("l.*").alias("live"), F.struct("r.*").alias("replay"), differing.alias("fields"))
    check.counts[Kind.MATCH] = found.where(both & (F.size("fields") == 0)).count()
    for row in found.where(~both | (F.size("fields") > 0)).toLocalIterator():
        live_row = row.live.asDict() if row.live["_side"] else None
        replay_row = row.replay.asDict() if row.replay["_side"] else None
        names = list(row.fields) if live_row and replay_row else []
        check.add(classify(live_row, replay_row, names), live_row, replay_row, names)
    live.unpersist()
    replay.unpersist()
    return check


def write_report_row(settings: Any, check: ReplayCheck) -> None:
    """One row of ``ops.replay_checks`` per check (hive_ddl/V008)."""
    from tickflow.warehouse import run_statements, sql_string

    instruments = ",".join(check.instruments) if check.instruments else "all"
    values = ", ".join([
        sql_string(check.run_id), f"TIMESTAMP '{check.checked_at:%Y-%m-%d %H:%M:%S}'",
        f"TIMESTAMP '{check.start:%Y-%m-%d %H:%M:%S.%f}'", f"TIMESTAMP '{check.end:%Y-%m-%d %H:%M:%S.%f}'",
        sql_string(instruments), sql_string(check.live_topic), str(check.live_rows), str(check.replay_rows),
        *(str(check.counts.get(kind, 0)) for kind in Kind), sql_string(check.examples_json()),
    ])  # fmt: skip
    run_statements(settings, [
        f"INSERT INTO {REPORT_TABLE} PARTITION (run_date = DATE '{check.checked_at:%Y-%m-%d}') VALUES ({values})"
    ])  # fmt: skip
