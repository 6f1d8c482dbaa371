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

No Spark here. :func:`fill_columns` applies events one by one, the contract read aloud;
:func:`fill_frame` computes the same with whole-column operations over many instruments at
once, and is what the stateful operator runs (one call per bucket of instruments).
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


FILL_TYPES = _optional_fields()  # bid_price: double, bid_size: long, ..., trade_side: enum
FILL_FIELDS = tuple(FILL_TYPES)
NEVER = np.iinfo(np.int64).min  # as-of time/offset of a field that was never set


@dataclass
class InstrumentState:
    """The stored registers of one instrument: value, as-of event time (µs) and offset per field."""

    values: dict[str, Any] = field(default_factory=dict)
    as_of: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> tuple[Any, int, int]:
        return self.values.get(name), self.as_of.get(name, NEVER), self.offsets.get(name, NEVER)


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
    the last event at time t, exactly max(prior, batch events <= t) per field: the contract.
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


def fill_frame(
    priors: Mapping[str, InstrumentState], events: pd.DataFrame
) -> tuple[dict[str, InstrumentState], dict[str, np.ndarray]]:
    """:func:`fill_columns` vectorised over a batch of many instruments: what the stateful operator runs.

    ``events`` has ``instrument_id``, ``event_id``, ``event_time`` and ``ingest_time`` (µs), ``offset``
    and the fill fields (null/NaN = says nothing); ``priors`` the stored state of its instruments.
    After de-duplication by ``event_id`` (first copy wins) and sorting by (instrument, event_time,
    offset), a field's register after row i is the greater, by (as-of, offset), of the prior register
    and the last row <= i of the same instrument that sets the field; a running maximum of row
    positions finds that row for every i at once. One output row per (instrument, event time): the
    last row of its group. Returns the new state of every instrument in the batch and the output
    columns. Same results as :func:`fill_columns` per instrument (unit tests hold them equal).
    """
    keep = np.flatnonzero(~events["event_id"].duplicated().to_numpy())
    codes, instruments = pd.factorize(events["instrument_id"].to_numpy()[keep])
    times = events["event_time"].to_numpy(dtype=np.int64)[keep]
    offsets = events["offset"].to_numpy(dtype=np.int64)[keep]
    order = np.lexsort((offsets, times, codes))
    pick = keep[order]  # rows of ``events`` in (instrument, event_time, offset) order, duplicates dropped
    codes, times, offsets = codes[order], times[order], offsets[order]
    ingest = events["ingest_time"].to_numpy(dtype=np.int64)[pick]
    rows = np.arange(len(pick))
    group_end = np.r_[(times[1:] != times[:-1]) | (codes[1:] != codes[:-1]), True]
    ends = np.flatnonzero(group_end)  # last row of each (instrument, event time)
    starts = np.r_[0, ends[:-1] + 1]
    out_codes = codes[ends]
    last_of_instrument = np.flatnonzero(np.r_[out_codes[1:] != out_codes[:-1], True])  # output row per code
    columns: dict[str, np.ndarray] = {
        "instrument_id": np.asarray(instruments, dtype=object)[out_codes],
        "event_time": times[ends],
        "event_count": (ends - starts + 1).astype(np.int32),
        "ingest_time": np.maximum.reduceat(ingest, starts),
    }
    states = {str(i): InstrumentState() for i in instruments}
    known = [priors.get(str(i)) for i in instruments]
    for name in FILL_FIELDS:
        registers = [p.get(name) if p is not None else (None, NEVER, NEVER) for p in known]
        prior_values = np.array([r[0] for r in registers] + [None], dtype=object)[:-1]
        prior_as_of = np.array([r[1] for r in registers], dtype=np.int64)[out_codes]
        prior_offset = np.array([r[2] for r in registers], dtype=np.int64)[out_codes]
        values = events[name].to_numpy()[pick] if name in events else np.full(len(pick), None)
        last = np.maximum.accumulate(np.where(~pd.isna(values), rows, -1))[ends]  # setting row, any instrument
        setter = np.maximum(last, 0)
        own = (last >= 0) & (codes[setter] == out_codes)  # ... of this instrument
        batch_as_of = np.where(own, times[setter], NEVER)
        batch_offset = np.where(own, offsets[setter], NEVER)
        batch_wins = own & (
            (batch_as_of > prior_as_of) | ((batch_as_of == prior_as_of) & (batch_offset >= prior_offset))
        )
        filled = values[setter]
        if not batch_wins.all():
            filled = filled.astype(object)  # the prior value, or None, where the batch has nothing newer
            filled[~batch_wins] = prior_values[out_codes[~batch_wins]]
        columns[name] = filled
        as_of = np.where(batch_wins, batch_as_of, prior_as_of)  # NEVER where never set
        offset = np.where(batch_wins, batch_offset, prior_offset)
        columns[f"{name}_as_of"] = as_of
        for row in last_of_instrument:
            if as_of[row] != NEVER:
                state = states[str(instruments[out_codes[row]])]
                state.values[name], state.as_of[name], state.offsets[name] = (
                    filled[row],
                    int(as_of[row]),
                    int(offset[row]),
                )
    return states, columns
