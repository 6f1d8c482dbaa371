"""Reconciliation of ``md:latest`` against what it should hold: the pure part (no HBase, Kafka or Hive).

Two expectations per instrument, both as the ``md:latest`` cells they imply (tickflow.hbase.layout):

- the **last record of the instrument in md.enriched** (by offset): the cells the sink wrote for it.
  It is exact: HBase must hold each of them, or a cell with a newer timestamp (a record with a newer
  event time came before a late one: HBase keeps the newest cell whatever the order). A cell absent is
  *missing*; one with an older timestamp, or the same timestamp and other bytes, is *stale*.
- the **latest state snapshot** (``ops.state_snapshots``): each filled field's register as of the
  snapshot, as the ``f:<field>`` cell at its as-of time. HBase must be at least as new (the same rules).

A cleared register (value null, as-of set: the trade fields after a cancel of their trade) is expected
like a value, as the empty cell the sink writes for it at its as-of: an empty cell there matches, no
cell is missing, an older cell (the cancelled trade's, say) is stale, and a value at the same time differs.

An instrument is *missing* when its row is absent or any expected cell is, else *stale* when any cell
is older or differs, else *matched*; a row that neither the topic nor the snapshot explains is *extra*
(reported, never deleted: a test's row, or an instrument that left the topic's retention before the
first snapshot). Repair re-puts the topic's last record, so it can fix what the topic explains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tickflow.fill.semantics import InstrumentState
from tickflow.hbase.layout import CLEARED, FILLED_FAMILY, EventLayout, encode

Cell = tuple[bytes, int]  # value, timestamp (ms)
Row = Mapping[bytes, Cell]  # b"family:qualifier" -> cell
REPORT_TABLE = "ops.hbase_reconciliation"
EXAMPLES = 5  # kept per kind in the report: enough to start looking, small enough for one Hive string


class Status(StrEnum):
    MATCHED = "matched"
    MISSING = "missing"
    STALE = "stale"
    EXTRA = "extra"


class Problem(StrEnum):
    ABSENT = "absent"
    OLDER = "older"
    DIFFERS = "differs"  # same timestamp, other bytes


class Expectation(StrEnum):
    """What a difference was found against."""

    TOPIC = "topic"  # the newest record of the instrument on md.enriched
    SNAPSHOT = "snapshot"  # the fill state's registers in a snapshot


@dataclass(frozen=True)
class Difference:
    column: str
    problem: Problem
    against: Expectation
    expected_ms: int
    found_ms: int | None

    def as_json(self) -> dict[str, Any]:
        return {"column": self.column, "problem": self.problem.value, "against": self.against.value,
                "expected_ms": self.expected_ms, "found_ms": self.found_ms}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    instrument_id: str
    status: Status
    differences: tuple[Difference, ...] = ()

    def as_json(self, limit: int = EXAMPLES) -> dict[str, Any]:
        found: dict[str, Any] = {"instrument_id": self.instrument_id}
        if self.status is Status.MISSING and not self.differences:
            found["row"] = "absent"
        if self.differences:
            found["differences"] = [d.as_json() for d in self.differences[:limit]]
            if len(self.differences) > limit:
                found["more_differences"] = len(self.differences) - limit
        return found


def record_cells(layout: EventLayout, record: Mapping[str, Any]) -> dict[bytes, Cell]:
    """The md:latest cells the sink writes for one enriched record (an empty cell per cleared register)."""
    return {
        column: (value, timestamp)
        for timestamp, cells in layout.latest_cells(record).items()
        for column, value in cells.items()
    }


def snapshot_cells(layout: EventLayout, state: InstrumentState, until_us: int | None = None) -> dict[bytes, Cell]:
    """The ``f:`` cells a snapshot's registers imply, a cleared register (value None) as the empty cell
    (fields observed after ``until_us`` are left out: the sink may not have written them yet)."""
    cells = {}
    for name, value in state.values.items():
        as_of = state.as_of[name]
        if name in layout.filled and (until_us is None or as_of <= until_us):
            raw = CLEARED if value is None else encode(layout.types[name], value)
            cells[f"{FILLED_FAMILY}:{name}".encode()] = (raw, as_of // 1000)
    return cells


def compare(expected: Mapping[bytes, Cell], row: Row, against: Expectation) -> list[Difference]:
    """What the row lacks or holds older than ``expected`` (a newer cell in HBase is fine)."""
    differences = []
    for column, (value, timestamp) in sorted(expected.items()):
        found = row.get(column)
        if found is None:
            problem: Problem | None = Problem.ABSENT
        elif found[1] < timestamp:
            problem = Problem.OLDER
        elif found[1] == timestamp and found[0] != value:
            problem = Problem.DIFFERS
        else:
            problem = None
        if problem is not None:
            at = None if found is None else found[1]
            differences.append(Difference(column.decode(), problem, against, timestamp, at))
    return differences


def classify(
    instrument_id: str,
    row: Row | None,
    topic: Mapping[bytes, Cell] | None,
    snapshot: Mapping[bytes, Cell] | None,
) -> Finding:
    """One instrument's status from its HBase row and what the topic and the snapshot expect of it."""
    if not row:
        return Finding(instrument_id, Status.MISSING)
    if topic is None and snapshot is None:
        return Finding(instrument_id, Status.EXTRA)
    differences = [
        *compare(topic or {}, row, Expectation.TOPIC),
        *compare(snapshot or {}, row, Expectation.SNAPSHOT),
    ]
    if any(d.problem is Problem.ABSENT for d in differences):
        return Finding(instrument_id, Status.MISSING, tuple(differences))
    if differences:
        return Finding(instrument_id, Status.STALE, tuple(differences))
    return Finding(instrument_id, Status.MATCHED)


def classify_all(
    rows: Mapping[str, Row],
    topic: Mapping[str, Mapping[bytes, Cell]],
    snapshot: Mapping[str, Mapping[bytes, Cell]],
) -> dict[str, Finding]:
    """Every instrument of HBase, the topic or the snapshot, by id."""
    instruments = sorted({*rows, *topic, *snapshot})
    return {i: classify(i, rows.get(i), topic.get(i), snapshot.get(i)) for i in instruments}


@dataclass(frozen=True)
class Report:
    """One reconciliation run: the row of ``ops.hbase_reconciliation``."""

    run_id: str
    checked_at: datetime  # UTC, naive (as Hive's TIMESTAMP holds it)
    snapshot_id: str | None
    topic: str
    counts: Mapping[Status, int]
    repaired: int
    remaining: int
    examples: Mapping[str, Any] = field(default_factory=dict)
    repair: bool = False  # whether a repair was asked for
    masked: int = 0  # re-put instruments still hidden by delete markers

    @property
    def instruments_checked(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        counts = ", ".join(f"{self.counts.get(s, 0)} {s.value}" for s in Status)
        return (
            f"hbase reconciliation {self.run_id}: {self.instruments_checked} instruments checked against {self.topic} "
            f"and snapshot {self.snapshot_id or '(none)'}: {counts}; {self.repaired} repaired, "
            f"{self.remaining} mismatches remain"
        )

    def failure(self) -> str | None:
        """One sentence when mismatches remain (the run then fails), else None."""
        if not self.remaining:
            return None
        kinds = f"{self.remaining} instruments of md:latest still missing or stale"
        where = f"examples in {REPORT_TABLE} run {self.run_id}"
        if self.masked:
            return (
                f"{kinds} after the repair, {self.masked} of them hidden by delete markers that only a flush and "
                f"major compaction of md:latest remove (HBase flushes within the hour): {where}."
            )
        if self.repair:
            return f"{kinds} after the repair (the topic cannot fix what only the snapshot expects): {where}."
        return f"{kinds}: {where}; trigger the run with repair=true to re-put them from the topic."

    def examples_json(self) -> str:
        return json.dumps(self.examples, sort_keys=True, separators=(",", ":"))


def build_report(
    run_id: str,
    checked_at: datetime,
    snapshot_id: str | None,
    topic: str,
    found: Mapping[str, Finding],
    after_repair: Mapping[str, Finding] | None = None,
    limit: int = EXAMPLES,
) -> Report:
    """The report of a run: counts as found, repaired = re-put instruments that now match, remaining =
    missing or stale after the repair (or as found, without one), and up to ``limit`` examples of each."""
    counts = {status: 0 for status in Status}
    for finding in found.values():
        counts[finding.status] += 1
    final = {**found, **(after_repair or {})}
    remaining = [f for f in final.values() if f.status in (Status.MISSING, Status.STALE)]
    repaired = sum(1 for i, f in (after_repair or {}).items() if f.status is Status.MATCHED and i in found)
    examples: dict[str, Any] = {
        status.value: [f.as_json(limit) for f in _first(found.values(), status, limit)]
        for status in (Status.MISSING, Status.STALE)
    }
    examples["extra"] = [f.instrument_id for f in _first(found.values(), Status.EXTRA, limit)]
    if after_repair is not None:
        examples["remaining"] = [f.as_json(limit) for f in remaining[:limit]]
    return Report(run_id, checked_at, snapshot_id, topic, counts, repaired, len(remaining),
                  {k: v for k, v in examples.items() if v}, after_repair is not None,
                  len(masked(after_repair or {})))  # fmt: skip


def _first(findings: Iterable[Finding], status: Status, limit: int) -> list[Finding]:
    return sorted((f for f in findings if f.status is status), key=lambda f: f.instrument_id)[:limit]


def to_repair(found: Mapping[str, Finding], topic: Mapping[str, object]) -> list[str]:
    """Instruments a re-put of the topic's last record can fix: missing or stale, and in the topic."""
    return [i for i, f in found.items() if f.status in (Status.MISSING, Status.STALE) and i in topic]


def masked(after_repair: Mapping[str, Finding]) -> list[str]:
    """Re-put instruments whose topic cells are still absent: only a delete marker hides a cell just put (it
    masks every put at or before its timestamp until a major compaction drops it, after a flush)."""
    return sorted(
        i
        for i, f in after_repair.items()
        if any(d.problem is Problem.ABSENT and d.against is Expectation.TOPIC for d in f.differences)
        or (f.status is Status.MISSING and not f.differences)
    )


def last_per_key(
    found: dict[str, tuple[int, bytes]], window: Iterable[tuple[str | None, int, bytes | None]]
) -> dict[str, tuple[int, bytes]]:
    """Merge one window of a partition, read after every later window: a key already found keeps its (later)
    record; of the others, the last record in the window is kept. Messages without a key or value are
    skipped (``(key, offset, value)`` in ascending offset order)."""
    in_window: dict[str, tuple[int, bytes]] = {}
    for key, offset, value in window:
        if key is not None and value is not None:
            in_window[key] = (offset, value)
    for key, last in in_window.items():
        found.setdefault(key, last)
    return found
