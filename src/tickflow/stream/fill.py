"""Forward-fill semantics, one instrument at a time (the contract of DESIGN §4).

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

Pure pandas, no Spark: the stateful processor calls :func:`fill_batch` per key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

FILL_FIELDS = (
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "last_price",
    "close_price",
    "reference_price",
    "trade_id",
    "trade_price",
    "trade_size",
    "trade_side",
)
NEVER = np.iinfo(np.int64).min  # as-of time/offset of a field that was never set


@dataclass
class InstrumentState:
    """The stored registers of one instrument: value, as-of event time (µs) and offset per field."""

    values: dict[str, Any] = field(default_factory=dict)
    as_of: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> tuple[Any, int, int]:
        return self.values.get(name), self.as_of.get(name, NEVER), self.offsets.get(name, NEVER)


def fill_batch(prior: InstrumentState | None, events: pd.DataFrame) -> tuple[InstrumentState, pd.DataFrame]:
    """Apply one batch of an instrument's events to its state.

    ``events`` has ``event_id``, ``event_time`` (µs), ``offset``, ``ingest_time`` (µs) and the
    fill fields (None/NaN = says nothing). Returns the new state and one row per distinct
    event time, ascending, with the filled fields, ``<field>_as_of`` (µs or None),
    ``event_count`` and ``ingest_time`` (newest at that time).
    """
    prior = prior or InstrumentState()
    batch = events.drop_duplicates("event_id").sort_values(["event_time", "offset"], kind="stable")
    times = batch["event_time"].to_numpy(dtype=np.int64)
    offsets = batch["offset"].to_numpy(dtype=np.int64)
    # The last row of each event time carries everything at or before that time.
    last_of_time = np.r_[times[1:] != times[:-1], True]
    out = pd.DataFrame({"event_time": times[last_of_time]})
    grouped = batch.groupby("event_time", sort=True)
    out["event_count"] = grouped.size().to_numpy()
    out["ingest_time"] = grouped["ingest_time"].max().to_numpy()

    state = InstrumentState()
    for name in FILL_FIELDS:
        column = batch[name] if name in batch else pd.Series([None] * len(batch), index=batch.index)
        present = column.notna().to_numpy()
        # Running "last non-null so far" of value, time and offset, by forward-filling positions.
        position = np.where(present, np.arange(len(batch)), -1)
        position = np.maximum.accumulate(position)[last_of_time]
        has = position >= 0
        safe = np.where(has, position, 0)
        candidate_time = np.where(has, times[safe], NEVER)
        candidate_offset = np.where(has, offsets[safe], NEVER)
        candidate_value = column.to_numpy(dtype=object)[safe]

        prior_value, prior_time, prior_offset = prior.get(name)
        batch_wins = (candidate_time > prior_time) | (
            (candidate_time == prior_time) & (candidate_offset >= prior_offset)
        )
        batch_wins &= has
        values = np.where(batch_wins, candidate_value, prior_value)
        as_of = np.where(batch_wins, candidate_time, prior_time)
        out[name] = values
        out[f"{name}_as_of"] = [None if t == NEVER else int(t) for t in as_of]

        final_wins = bool(batch_wins[-1])
        final_value = candidate_value[-1] if final_wins else prior_value
        if final_value is not None and not (isinstance(final_value, float) and np.isnan(final_value)):
            state.values[name] = final_value
            state.as_of[name] = int(candidate_time[-1] if final_wins else prior_time)
            state.offsets[name] = int(candidate_offset[-1] if final_wins else prior_offset)
    return state, out
