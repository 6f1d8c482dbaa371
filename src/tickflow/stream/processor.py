"""The stateful operator: forward-fill a micro-batch of decoded events, state in RocksDB.

The JVM decodes the Confluent-framed Avro before this runs (``from_avro``, one branch per
writer schema registered when the query started; see ``app.decoded_events``). Rows it could
not decode (not the wire format, a schema id it did not know, bad bytes) arrive with
``decoded = false`` and are decoded here with fastavro and the registry, so a writer schema
registered later still flows and everything else gets a precise reason.

Rows are grouped by a bucket of the instrument id, not by the instrument: one call fills
thousands of events of many instruments with whole-column operations (``fill.fill_frame``),
where a call per instrument would cost more than the fill itself. The per-instrument
registers live in a map state (instrument id -> STATE_SCHEMA) in Spark's state store,
checkpointed with the query, so they survive restarts. Output rows are of two kinds:
``filled`` (one per instrument and event time) and ``dlq`` (the original bytes, where they
came from, and why they were rejected).
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
from tickflow.stream.decode import Decoder, Limits, Rejected, registry_fetcher, reject_reasons
from tickflow.stream.fill import FILL_FIELDS, InstrumentState, fill_frame

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
        *(plain(state.values.get(n), n) for n in FILL_FIELDS),
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


INSTRUMENT_KEY = StructType([StructField("instrument_id", StringType())])
TIMESTAMP_COLUMNS = frozenset(f.name for f in OUTPUT_SCHEMA.fields if isinstance(f.dataType, TimestampType))
NULLABLE_INTEGERS = {f.name: "Int64" if isinstance(f.dataType, LongType) else "Int32"
                     for f in OUTPUT_SCHEMA.fields if isinstance(f.dataType, LongType | IntegerType)}  # fmt: skip
DLQ_COLUMNS = ("kafka_key", "value", "topic", "partition", "offset")  # + reason -> the dlq_* columns
EVENT_COLUMNS = (*DLQ_COLUMNS, "ingest_time")


def _output(columns: dict[str, Any], rows: int) -> pd.DataFrame:
    """One DataFrame in OUTPUT_SCHEMA's column order: timestamps from µs (NEVER -> NaT),
    integers as nullable integers (pandas hands nullable longs over as floats), absent columns
    as typed nulls (an all-NaN float column cannot become a string column on the way to Arrow)."""
    out: dict[str, Any] = {}
    for name in OUTPUT_SCHEMA.fieldNames():
        values = columns.get(name)
        if values is None:
            out[name] = np.full(rows, None, dtype=object)
        elif isinstance(values, str):
            out[name] = np.full(rows, values, dtype=object)
        elif name in TIMESTAMP_COLUMNS:  # int64 µs; NEVER is int64's minimum, which is datetime64's NaT
            out[name] = np.asarray(values, dtype=np.int64).view("datetime64[us]").astype("datetime64[ns]")
        elif name in NULLABLE_INTEGERS:
            out[name] = pd.array(values, dtype=NULLABLE_INTEGERS[name])
        else:
            out[name] = values
    return pd.DataFrame(out)


class ForwardFill(StatefulProcessor):
    """transformWithStateInPandas processor; constructed on the driver, run in the Python workers."""

    def __init__(self, reader_schema: dict[str, Any], registry_url: str, limits: Limits) -> None:
        self.reader_schema = reader_schema
        self.registry_url = registry_url
        self.limits = limits

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.state = handle.getMapState("fill", INSTRUMENT_KEY, STATE_SCHEMA)
        self.decoder = Decoder(self.reader_schema, registry_fetcher(self.registry_url))

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
        raw = pd.concat(list(rows), ignore_index=True)
        events, rejected = self._decode(raw)
        reasons = reject_reasons(events, time.time_ns() // 1000, self.limits)
        invalid = reasons != None  # noqa: E711 - elementwise on an object array
        if invalid.any():
            bad = events[invalid]
            rejected.append(bad[list(DLQ_COLUMNS)].assign(reason=reasons[invalid]))
        if rejected:
            dlq = pd.concat(rejected, ignore_index=True)
            yield _output(
                {"kind": "dlq", **{f"dlq_{c.removeprefix('kafka_')}": dlq[c].to_numpy() for c in dlq}}, len(dlq)
            )
        valid = events[~invalid]
        if valid.empty:
            return
        touched = set(valid["instrument_id"])
        priors = {k[0]: row_to_state(v) for k, v in self.state.iterator() if k[0] in touched}
        states, filled = fill_frame(priors, valid)
        for instrument_id, state in states.items():
            self.state.updateValue((instrument_id,), state_to_row(state))
        yield _output({**filled, "kind": "filled"}, len(filled["event_time"]))

    def _decode(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
        """Events (JVM-decoded, plus those fastavro decodes here) and the rejected rows with reasons."""
        decoded = raw["decoded"].to_numpy(dtype=bool)
        if decoded.all():
            return raw, []
        recovered, rejected = [], []
        for row in raw[~decoded].itertuples(index=False):
            try:
                record = self.decoder.decode(row.value)
            except Rejected as reason:
                rejected.append((row.kafka_key, row.value, row.topic, row.partition, row.offset, str(reason)))
                continue
            record["event_time"] = to_micros(record["event_time"])
            recovered.append({**record, **{c: getattr(row, c) for c in EVENT_COLUMNS}})
        frames = [raw[decoded]]
        if recovered:
            frames.append(pd.DataFrame(recovered))
        rejected_frame = pd.DataFrame(rejected, columns=[*DLQ_COLUMNS, "reason"])
        return pd.concat(frames, ignore_index=True), [rejected_frame] if rejected else []

    def handleInitialState(self, key: Any, initialState: pd.DataFrame, timerValues: Any) -> None:
        """Restore from an exported snapshot: rows of instrument_id + STATE_SCHEMA columns."""
        for _, row in initialState.iterrows():
            self.state.updateValue((row["instrument_id"],), tuple(plain(row[c], c) for c in STATE_SCHEMA.fieldNames()))

    def close(self) -> None:
        pass


LONG_FIELDS = frozenset(f.name for f in STATE_SCHEMA.fields if isinstance(f.dataType, LongType))


def plain(value: Any, field: str) -> Any:
    """Plain Python of a state field's type (numpy scalars, and pandas' floats for nullable longs)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    value = value.item() if hasattr(value, "item") else value
    return int(value) if field in LONG_FIELDS else value
