"""Forward-fill semantics, one instrument at a time (the fill contract of docs/architecture.md).

The state of an instrument is, per field, a last-writer-wins register: the value, the
event time it was observed at, and the Kafka offset of the event that set it (an
instrument lives on one partition, so the offset is its partition order). An event's
non-null field replaces the stored one when ``(event_time, offset)`` is greater or
equal: newer wins, and at equal time the later event in the partition wins. The final
state therefore does not depend on arrival order, and replaying events (duplicates,
restarts, backfills) changes nothing.

For each event time present in a batch, one output row holds the state after applying
the prior state and every batch event at or before that time. In-order input makes
this exactly "fill each column with its last non-null value"; events of several sources
with the same timestamp become one row; a late event's row carries the current values
with their own as-of times, so consumers see what is stale.

A trade cancel (MarketEvent v2's ``cancelled_trade_id``) is a field like the others (its register
is the instrument's last cancel) and, when it names the trade the trade registers hold, clears them:
trade_id, trade_price, trade_size and trade_side become null with the cancel's (event_time, offset),
so a cancelled trade is never shown as the last trade and a later trade replaces the cleared
registers as usual. A cancel of another trade (an older one, or one the registers never held)
changes nothing else. The trades source publishes a trade before its cancel (commit order, one
partition per instrument), which makes this exact; a trade arriving after a cancel of a later time
stays hidden until the next trade (docs/architecture.md, "Cancels").

No Spark here. :func:`fill_columns` applies events one by one, the contract read aloud; the stream's
operator (``io.tickflow.stream.fill.PartitionFill``, jvm/stream) computes the same, and unit tests
on both sides hold them to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tickflow.schemas import TOPIC_SCHEMAS, load
from tickflow.settings import REPO_ROOT
from tickflow.topics import EVENTS


def _optional_fields() -> dict[str, str]:
    """Every optional field of MarketEvent, with its Avro type ("enum" for enums): the fields that are
    forward-filled (docs/architecture.md). One list, from the schema the code ships with."""
    event = load(TOPIC_SCHEMAS[EVENTS.name], REPO_ROOT / "schemas").definition
    fields = {}
    for spec in event["fields"]:
        if isinstance(spec["type"], list) and "null" in spec["type"]:
            (kind,) = (t for t in spec["type"] if t != "null")
            fields[spec["name"]] = kind if isinstance(kind, str) else kind["type"]
    return fields


FILL_TYPES = _optional_fields()  # bid_price: double, bid_size: long, ..., trade_side: enum, cancelled_trade_id
FILL_FIELDS = tuple(FILL_TYPES)
CANCEL_FIELD = "cancelled_trade_id"  # a cancel names the trade_id it cancels (MarketEvent v2)
CANCELLED_FIELDS = ("trade_id", "trade_price", "trade_size", "trade_side")  # what a trade print sets; a cancel clears
NEVER = np.iinfo(np.int64).min  # as-of time/offset of a field that was never set


@dataclass
class InstrumentState:
    """The stored registers of one instrument: value, as-of event time (µs) and offset per field."""

    values: dict[str, Any] = field(default_factory=dict)
    as_of: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> tuple[Any, int, int]:
        return self.values.get(name), self.as_of.get(name, NEVER), self.offsets.get(name, NEVER)


def cancel(registers: dict[str, tuple[Any, int, int]], trade_id: str, t: int, offset: int) -> None:
    """A cancel of ``trade_id`` at (t, offset): when the trade registers hold that trade and are not newer than
    the cancel, they become null as of the cancel."""
    held = registers.get("trade_id")
    if held is None or held[0] != trade_id or (held[1], held[2]) > (t, offset):
        return
    for name in CANCELLED_FIELDS:
        stored = registers.get(name)
        if stored is not None and (stored[1], stored[2]) <= (t, offset):
            registers[name] = (None, t, offset)


def fill_batch(
    prior: InstrumentState | None, events: pd.DataFrame | Iterable[Mapping[str, Any]]
) -> tuple[InstrumentState, pd.DataFrame]:
    """:func:`fill_columns` with the output as a DataFrame."""
    records = events.to_dict("records") if isinstance(events, pd.DataFrame) else events
    state, columns = fill_columns(prior, records)
    return state, pd.DataFrame(columns)


def fill_columns(
    prior: InstrumentState | None, events: Iterable[Mapping[str, Any]]
) -> tuple[InstrumentState, dict[str, list[Any]]]:
    """Apply one batch of an instrument's events to its state.

    ``events`` have ``event_id``, ``event_time`` (µs), ``offset``, ``ingest_time`` (µs) and the
    fill fields (None/NaN = says nothing). Returns the new state and columns with one row per
    distinct event time, ascending, with the filled fields, ``<field>_as_of`` (µs or None),
    ``event_count`` and ``ingest_time`` (newest at that time).

    Applying the events one by one in (event_time, offset) order to the registers gives, after
    the last event at time t, exactly max(prior, batch events <= t) per field: the contract (and
    a cancel clears the trade registers it names, :func:`cancel`).
    Plain Python on purpose: per instrument a batch holds tens to hundreds of events, where
    pandas' per-call overhead costs more than the loop.
    """
    records = list(events)
    unique = list({r["event_id"]: r for r in reversed(records)}.values())  # first copy of each id
    unique.sort(key=lambda r: (r["event_time"], r["offset"]))
    registers: dict[str, tuple[Any, int, int]] = {}
    if prior is not None:
        registers = {name: (prior.values[name], prior.as_of[name], prior.offsets[name]) for name in prior.values}
    columns: dict[str, list[Any]] = {"event_time": [], "event_count": [], "ingest_time": []}
    columns.update({name: [] for name in FILL_FIELDS})
    columns.update({f"{name}_as_of": [] for name in FILL_FIELDS})
    count, newest_ingest = 0, NEVER
    for index, record in enumerate(unique):
        t, offset = int(record["event_time"]), int(record["offset"])
        for name in FILL_FIELDS:
            value = record.get(name)
            if value is None or value != value:  # None or NaN: the event says nothing about it
                continue
            stored = registers.get(name)
            if stored is None or (t, offset) >= (stored[1], stored[2]):
                registers[name] = (value, t, offset)
        cancelled = record.get(CANCEL_FIELD)
        if cancelled is not None:
            cancel(registers, cancelled, t, offset)
        count += 1
        newest_ingest = max(newest_ingest, int(record["ingest_time"]))
        if index + 1 < len(unique) and unique[index + 1]["event_time"] == record["event_time"]:
            continue
        columns["event_time"].append(t)
        columns["event_count"].append(count)
        columns["ingest_time"].append(newest_ingest)
        for name in FILL_FIELDS:
            value, as_of, _ = registers.get(name, (None, None, None))
            columns[name].append(value)
            columns[f"{name}_as_of"].append(as_of)
        count, newest_ingest = 0, NEVER
    state = InstrumentState(
        values={n: r[0] for n, r in registers.items()},
        as_of={n: r[1] for n, r in registers.items()},
        offsets={n: r[2] for n, r in registers.items()},
    )
    return state, columns
