"""The stateful operator: per instrument, decode, validate and forward-fill a micro-batch.

Input rows are raw Kafka records grouped by the message key (the instrument id), so one
Python pass decodes, validates and fills, and nothing is decoded twice. Output rows are
of two kinds: ``filled`` (one per instrument and event time, see ``fill.py``) and
``dlq`` (the original bytes, where they came from, and why they were rejected). The
per-instrument state lives in Spark's state store (RocksDB), checkpointed with the
query, so it survives restarts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import (
    BinaryType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from tickflow.avro_codec import to_micros
from tickflow.stream.decode import Decoder, Limits, Rejected, registry_fetcher, validate
from tickflow.stream.fill import FILL_FIELDS, InstrumentState, fill_columns

FIELD_TYPES = {
    "bid_price": DoubleType(),
    "bid_size": LongType(),
    "ask_price": DoubleType(),
    "ask_size": LongType(),
    "last_price": DoubleType(),
    "close_price": DoubleType(),
    "reference_price": DoubleType(),
    "trade_id": StringType(),
    "trade_price": DoubleType(),
    "trade_size": LongType(),
    "trade_side": StringType(),
}
STATE_SCHEMA = StructType(
    [StructField(name, FIELD_TYPES[name]) for name in FILL_FIELDS]
    + [StructField(f"{name}_as_of", LongType()) for name in FILL_FIELDS]
    + [StructField(f"{name}_offset", LongType()) for name in FILL_FIELDS]
)
OUTPUT_SCHEMA = StructType(
    [
        StructField("kind", StringType(), False),
        StructField("instrument_id", StringType()),
        StructField("event_time", TimestampType()),
        StructField("event_count", IntegerType()),
        StructField("ingest_time", TimestampType()),
        *(StructField(name, FIELD_TYPES[name]) for name in FILL_FIELDS),
        *(StructField(f"{name}_as_of", TimestampType()) for name in FILL_FIELDS),
        StructField("dlq_key", StringType()),
        StructField("dlq_value", BinaryType()),
        StructField("dlq_topic", StringType()),
        StructField("dlq_partition", IntegerType()),
        StructField("dlq_offset", LongType()),
        StructField("dlq_reason", StringType()),
    ]
)


def state_to_row(state: InstrumentState) -> tuple[Any, ...]:
    return (
        *(state.values.get(n) for n in FILL_FIELDS),
        *(state.as_of.get(n) for n in FILL_FIELDS),
        *(state.offsets.get(n) for n in FILL_FIELDS),
    )


def row_to_state(row: tuple[Any, ...]) -> InstrumentState:
    n = len(FILL_FIELDS)
    state = InstrumentState()
    for i, name in enumerate(FILL_FIELDS):
        if row[n + i] is not None:
            state.values[name] = row[i]
            state.as_of[name] = int(row[n + i])
            state.offsets[name] = int(row[2 * n + i])
    return state


TIMESTAMP_COLUMNS = frozenset(f.name for f in OUTPUT_SCHEMA.fields if isinstance(f.dataType, TimestampType))


def _output(columns: dict[str, Any], rows: int) -> pd.DataFrame:
    """One DataFrame in OUTPUT_SCHEMA's column order, built once from plain columns: timestamps
    from µs as datetime64 (None -> NaT), absent columns as typed nulls (an all-NaN float column
    cannot become a string or timestamp column on the way to Arrow)."""
    out = {}
    for name in OUTPUT_SCHEMA.fieldNames():
        values = columns.get(name)
        if name in TIMESTAMP_COLUMNS:
            micros = np.array([None] * rows if values is None else values, dtype="datetime64[us]")
            out[name] = micros.astype("datetime64[ns]")
        elif values is None:
            out[name] = np.full(rows, None, dtype=object)
        elif isinstance(values, str):
            out[name] = np.full(rows, values, dtype=object)
        else:
            out[name] = np.array(values, dtype=object)
    return pd.DataFrame(out)


class ForwardFill(StatefulProcessor):
    """transformWithStateInPandas processor; constructed on the driver, run in the Python workers."""

    def __init__(self, reader_schema: dict[str, Any], registry_url: str, limits: Limits) -> None:
        self.reader_schema = reader_schema
        self.registry_url = registry_url
        self.limits = limits

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.state = handle.getValueState("fill", STATE_SCHEMA)
        self.decoder = Decoder(self.reader_schema, registry_fetcher(self.registry_url))

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
        (kafka_key,) = key
        raw = pd.concat(list(rows), ignore_index=True)
        now_us = time.time_ns() // 1000
        events, rejected = [], []
        for value, topic, partition, offset, timestamp in zip(
            raw["value"], raw["topic"], raw["partition"], raw["offset"], raw["timestamp"], strict=True
        ):
            try:
                record = self.decoder.decode(value)
                validate(record, kafka_key or None, now_us, self.limits)
            except Rejected as reason:
                rejected.append((kafka_key, value, topic, int(partition), int(offset), str(reason)))
                continue
            record["event_time"] = to_micros(record["event_time"])
            record["offset"] = int(offset)
            record["ingest_time"] = int(pd.Timestamp(timestamp).value // 1000)
            events.append(record)
        if rejected:
            names = ("dlq_key", "dlq_value", "dlq_topic", "dlq_partition", "dlq_offset", "dlq_reason")
            dlq = {name: list(values) for name, values in zip(names, zip(*rejected, strict=True), strict=True)}
            yield _output({**dlq, "kind": "dlq"}, len(rejected))
        if not events:
            return
        stored = self.state.get() if self.state.exists() else None
        prior = row_to_state(stored) if stored is not None else None
        state, filled = fill_columns(prior, events)
        self.state.update(state_to_row(state))
        yield _output({**filled, "kind": "filled", "instrument_id": kafka_key}, len(filled["event_time"]))

    def handleInitialState(self, key: Any, initialState: pd.DataFrame, timerValues: Any) -> None:
        """Restore from an exported snapshot: one row per instrument in STATE_SCHEMA's columns."""
        row = initialState.iloc[0]
        self.state.update(tuple(None if pd.isna(row[c]) else row[c] for c in STATE_SCHEMA.fieldNames()))

    def close(self) -> None:
        pass
